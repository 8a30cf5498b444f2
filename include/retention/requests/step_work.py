"""What one step of a request does in its store: count it, purge it (audited), re-count it.

Three kinds of step (``request_states.KIND_*``): a *purge* of a tenant or subject selection
the store addresses itself; a purge of explicit object keys (a subject's recordings, whose
keys are read from its MySQL rows at planning, before those rows go); and the *expiry* of
backups, which cannot be addressed per subject: they expire by date, and only the days that
would outlive the request's due date are purged now. Records that also name another held
subject stay (a hold wins over an erasure), and are counted as withheld.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Iterator

from include.retention import metrics
from include.retention.ledger import audit
from include.retention.ledger.holds import list_holds
from include.retention.ledger.requests import Request
from include.retention.ledger.request_steps import Step, StepSpec, store_keys, stored_keys
from include.retention.policy import CosTarget, Policy, Target
from include.retention.reasons import request_rule
from include.retention.request_states import KIND_EXPIRY, KIND_KEYS
from include.retention.requests.steps import late_backup_days, late_backups
from include.retention.selections import Selection, SubjectSelection
from include.retention.stores.base import as_column_source, as_explicit_keys
from include.retention.subject_keys import held_object_keys, key_source, subject_object_keys
from include.retention.timeutil import UTC

if TYPE_CHECKING:
    from include.retention.airflow_context import RunRef
    from include.retention.results import PurgeResult
    from include.retention.stores.base import RetentionStore

@dataclass(frozen=True)
class StepOutcome:
    """What purging one step did: records deleted, records left at the re-count, how, and details."""

    deleted: int
    remaining: int
    method: str
    details: dict[str, Any]


log = logging.getLogger(__name__)


@dataclass
class StepWork:
    """Counts, purges and re-counts the steps of requests, each purge audited.

    :param run: the Airflow run and task doing the work (for the audit).
    :param run_after: the run's instant: which backups are late is decided by it.
    :param stores: store back ends by name (tests pass their own); built lazily otherwise.
    """

    policy: Policy
    run: RunRef
    run_after: datetime
    conn_id: str
    stores: dict[str, RetentionStore] = field(default_factory=dict)  # type: ignore[type-arg]

    def store(self, name: str) -> RetentionStore:  # type: ignore[type-arg]
        if name not in self.stores:
            from include.retention.stores import store_for

            self.stores[name] = store_for(name, self.policy.timezone)
        return self.stores[name]

    # ------------------------------------------------------------------ plan: count

    def planned_count(self, request: Request, spec: StepSpec, selection: Selection) -> int:
        """What the step would delete now; a keys step first resolves and remembers its keys."""
        target = self.policy.target(spec.qualified_name)
        if spec.kind == KIND_KEYS:
            assert isinstance(target, CosTarget)
            self._resolve_keys(request, spec, target, selection)
            held = self._held_keys(target, selection)
            return as_explicit_keys(self.store("cos")).count_keys(
                target, request.tenant_id, self._step_keys(request, spec.qualified_name, held)
            )
        if spec.kind == KIND_EXPIRY:
            late = self._late_backups(request, target)
            return self.store("cos").count(target, late) if late is not None else 0
        return self.store(spec.store).count(target, selection)

    def _resolve_keys(self, request: Request, spec: StepSpec, target: CosTarget, selection: Selection) -> None:
        """Remember the object keys the subject's rows point at, before those rows are deleted."""
        # Every key of the subject, held calls' too: the held ones are left out at purge time,
        # so that they go on a rerun once the hold is released.
        everything = selection.without_holds() if isinstance(selection, SubjectSelection) else selection
        keys = subject_object_keys(self.policy, target, everything, as_column_source(self.store("mysql")))
        n = store_keys(request.request_id, spec.qualified_name, keys, conn_id=self.conn_id)
        log.info("Request %s: %d object key(s) of %s resolved from %s", request.request_id, n,
                 spec.qualified_name, key_source(self.policy, target).qualified_name)

    # ------------------------------------------------------------------ execute: purge

    def purge_step(self, request: Request, step: Step, selection: Selection) -> StepOutcome:
        """Purge one step and re-count it at once."""
        target = self.policy.target(step.qualified_name)
        if step.kind == KIND_EXPIRY:
            return self._purge_expiry(request, target)
        held_keys: set[str] = set()
        if step.kind == KIND_KEYS:
            cos = as_explicit_keys(self.store("cos"))
            assert isinstance(target, CosTarget)
            held_keys = self._held_keys(target, selection)

            def keys() -> Iterator[str]:
                return self._step_keys(request, step.qualified_name, held_keys)

            result = self._audited(request, target, selection, lambda: cos.purge_keys(target, request.tenant_id, keys()),
                                   lambda: cos.count_keys(target, request.tenant_id, keys()))
            remaining = cos.count_keys(target, request.tenant_id, keys())
            details: dict[str, Any] = {"keys": sum(1 for _ in keys())}
        else:
            store = self.store(step.store)
            result = self._audited(request, target, selection, lambda: store.purge(target, selection),
                                   lambda: store.count(target, selection))
            remaining = store.verify(target, selection)
            details = {k: v for k, v in (result.details or {}).items() if k in ("indices", "partitions", "versioned")}
        withheld = self._withheld(target, selection, remaining, held_keys)
        if withheld:
            details["withheld_for_hold"] = withheld  # a count: the held subject is not named
        return StepOutcome(result.deleted, remaining, result.method, details)

    def _purge_expiry(self, request: Request, target: Target) -> StepOutcome:
        """Backups expire by date; those that would outlive the due date are purged now, by day."""
        assert isinstance(target, CosTarget) and target.prefix is not None
        expire_by, days = late_backup_days(target, request.due_at, self.run_after, self.policy.timezone)
        details: dict[str, Any] = {"backups_expire_by": expire_by.astimezone(UTC).isoformat(),
                                   "due_at": request.due_at.astimezone(UTC).isoformat(),
                                   "retention_days": target.retention.days}
        selection = self._late_backups(request, target, days)
        if selection is None:
            return StepOutcome(0, 0, "expires_by_date", details)
        store = self.store("cos")
        result = self._audited(request, target, selection, lambda: store.purge(target, selection),
                               lambda: store.count(target, selection), rule="late_backups")
        remaining = store.verify(target, selection)
        details.update({"purged_backup_days": [days[0].isoformat(), days[-1].isoformat()],
                        "why": "these backups would have outlived the due date"})
        return StepOutcome(result.deleted, remaining, "purge_late_backups", details)

    def _audited(
        self, request: Request, target: Target, selection: Selection, purge: Callable[[], PurgeResult],
        matched: Callable[[], int], rule: str = "",
    ) -> PurgeResult:
        rule = rule or request.request_type
        result = audit.audited_purge(purge, matched=matched, dry_run=False, run_id=self.run.run_id,
                                     dag_id=self.run.dag_id, task_id=self.run.task_id, target=target,
                                     selection=selection, ledger_conn_id=self.conn_id, why=self._why(request, rule))
        metrics.purge_finished(metrics.REQUEST, target, result, dry_run=False)
        return result

    def _why(self, request: Request, rule: str) -> audit.Why:
        """The request as the rule; the other subjects' holds whose records stay as what was kept out."""
        kept: dict[str, Any] = {}
        if request.request_type == "deletion":
            others = sorted(h.id for h in list_holds(tenant_id=request.tenant_id, conn_id=self.conn_id)
                            if h.subject_type and h.subject_hash != request.subject_hash)
            if others:
                kept["hold_ids"] = others
        return audit.Why(rule=request_rule(rule, request.request_id), withheld=kept)

    # ------------------------------------------------------------------ verify: re-count

    def recount_step(self, request: Request, step: Step, selection: Selection) -> int:
        """The final, independent re-count of a step: how many of its records remain."""
        target = self.policy.target(step.qualified_name)
        if step.kind == KIND_EXPIRY:
            expire_by = datetime.fromisoformat(step.details["backups_expire_by"])
            remaining = 0 if expire_by <= request.due_at else 1
            purged = step.details.get("purged_backup_days")
            if purged:
                first, last = (date.fromisoformat(d) for d in purged)
                days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
                late = self._late_backups(request, target, days)
                assert late is not None
                remaining += self.store("cos").verify(target, late)
            return remaining
        if step.kind == KIND_KEYS:
            assert isinstance(target, CosTarget)
            return as_explicit_keys(self.store("cos")).count_keys(
                target, request.tenant_id,
                self._step_keys(request, step.qualified_name, self._held_keys(target, selection)))
        return self.store(step.store).verify(target, selection)

    # ------------------------------------------------------------------ helpers

    def _late_backups(self, request: Request, target: Target, days: list[date] | None = None) -> Selection | None:
        """The backups that would outlive the due date (of ``days``, or as of the run), as whole day units."""
        assert isinstance(target, CosTarget)
        if days is None:
            days = late_backup_days(target, request.due_at, self.run_after, self.policy.timezone)[1]
        return late_backups(target, request.tenant_id, days, self.policy.timezone)

    def _held_keys(self, target: Target, selection: Selection) -> set[str]:
        """Object keys of the subject's rows that also name another held subject: they stay."""
        if not isinstance(selection, SubjectSelection) or not selection.exclude_subjects:
            return set()
        assert isinstance(target, CosTarget)
        return held_object_keys(self.policy, target, selection, as_column_source(self.store("mysql")))

    def _step_keys(self, request: Request, qualified_name: str, held: set[str]) -> Iterator[str]:
        """The keys a keys step purges: those resolved at planning, less the held ones."""
        return (k for k in stored_keys(request.request_id, qualified_name, conn_id=self.conn_id) if k not in held)

    def _withheld(self, target: Target, selection: Selection, remaining: int, held_keys: set[str]) -> int:
        """Records of the subject kept because they also name another held subject (0 without such holds)."""
        if not isinstance(selection, SubjectSelection) or not selection.exclude_subjects:
            return 0
        if isinstance(target, CosTarget) and target.subject_keys_from is not None:
            if not held_keys:
                return 0
            return int(as_explicit_keys(self.store("cos")).count_keys(target, selection.tenant, sorted(held_keys)))
        return self.store(target.store).count(target, selection.without_holds()) - remaining
