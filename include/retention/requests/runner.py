"""Carrying out one accepted request inside one run: plan its steps, purge them store by store, verify.

1. :meth:`Runner.plan` writes one step per (category, store target) and counts each; a
   subject's recording keys are resolved from MySQL here, before any row is deleted.
2. :meth:`Runner.execute_store` purges one store's steps and verifies each at once; a step
   that is already ``verified`` is never touched again, so a rerun resumes where the last
   one failed.
3. :meth:`Runner.verify` re-counts every step independently; all zero moves the request to
   ``verifying``, and the certificate completes it.

A legal hold placed after the request was accepted stops its purges. The request's state
moves only as ``request_states`` allows; what a step does in its store is ``step_work``'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from include.retention.facts import LegalHold
from include.retention.ledger.db import LEDGER_CONN_ID
from include.retention.ledger.holds import list_holds
from include.retention.ledger.requests import Request, get_request, record_event, release, transition
from include.retention.ledger.request_steps import Step, StepSpec, ensure_steps, list_steps, update_step
from include.retention.policy import STORES, Policy
from include.retention.redaction import scrub
from include.retention.request_states import KIND_EXPIRY, STEP_FAILED, STEP_PENDING, STEP_RUNNING, STEP_VERIFIED
from include.retention.requests.step_work import StepWork
from include.retention.requests.steps import in_plan_order, plan_steps
from include.retention.results import PartialPurgeError
from include.retention.selections import Selection, SubjectSelection, TenantSelection
from include.retention.timeutil import wall_clock

if TYPE_CHECKING:
    from include.retention.airflow_context import RunRef
    from include.retention.crypto import RetentionCrypto
    from include.retention.stores.base import RetentionStore

log = logging.getLogger(__name__)


class RequestBlocked(RuntimeError):
    """A legal hold placed after the request was accepted stops its purges."""


class RequestStepFailed(RuntimeError):
    """One or more steps failed; the request is ``failed`` and a rerun resumes it."""


class RequestIncomplete(RuntimeError):
    """Verification found steps not verified or records left: the request is ``failed``."""


@dataclass
class Runner:
    """Carries out one request inside one run: plan, purge per store, verify.

    :param run: the Airflow run and task doing the work (for the audit and the ledger).
    :param run_after: the run's instant; decisions use it, never the worker's clock.
    :param stores: store back ends by name (tests pass their own); built lazily otherwise.
    """

    policy: Policy
    crypto: RetentionCrypto
    run: RunRef
    run_after: datetime
    conn_id: str = LEDGER_CONN_ID
    stores: dict[str, RetentionStore] = field(default_factory=dict)  # type: ignore[type-arg]
    work: StepWork = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.work = StepWork(self.policy, self.run, self.run_after, self.conn_id, self.stores)

    # ------------------------------------------------------------------ the request

    def request(self, request_id: str) -> Request:
        request = get_request(request_id, conn_id=self.conn_id)
        if request is None:
            raise LookupError(f"no request {request_id} in the ledger")
        return request

    def specs(self, request: Request) -> tuple[list[StepSpec], list[str]]:
        return plan_steps(self.policy, request.request_type, request.tenant_id, request.subject_type,
                          request.categories)

    def ordered_steps(self, request: Request) -> list[Step]:
        """The request's steps in the policy's order."""
        return in_plan_order(self.specs(request)[0], list_steps(request.request_id, conn_id=self.conn_id))

    def selection(self, request: Request) -> Selection:
        if request.request_type == "termination":
            return TenantSelection(request.tenant_id)
        if not request.subject_enc or not request.subject_type or not request.subject_hash:
            raise LookupError(f"request {request.request_id} no longer holds its subject (window closed?)")
        subject_id = self.crypto.decrypt_subject(request.subject_enc)
        if self.crypto.subject_hash(request.tenant_id, request.subject_type, subject_id) != request.subject_hash:
            raise ValueError(f"request {request.request_id}: the subject token does not match its hash")
        # Records that also name another held subject of the tenant stay (a hold wins over an
        # erasure); a hold on this subject itself blocks the request (blocking_holds).
        others_held = frozenset(
            (hold.tenant_id, hold.subject_type, held_id)
            for hold in list_holds(tenant_id=request.tenant_id, conn_id=self.conn_id)
            if hold.subject_type and hold.subject_hash != request.subject_hash
            and (held_id := hold.opened(self.crypto).subject_id) is not None
        )
        return SubjectSelection(request.tenant_id, request.subject_type, subject_id, request.subject_hash, others_held)

    def blocking_holds(self, request: Request) -> list[LegalHold]:
        """Active holds that forbid this request's purges (checked again right before deleting)."""
        out = []
        for hold in list_holds(tenant_id=request.tenant_id, conn_id=self.conn_id):
            if request.request_type == "termination" or hold.whole_tenant or hold.subject_hash == request.subject_hash:
                out.append(hold)
        return out

    def check_backups_free(self, request: Request) -> None:
        """Backups are kept whole while any hold on the tenant is active: they cannot expire for the request."""
        tenant_holds = list_holds(tenant_id=request.tenant_id, conn_id=self.conn_id)
        if tenant_holds:
            ids = ", ".join(f"#{h.id}" for h in tenant_holds)
            raise RequestBlocked(
                f"backups of tenant {request.tenant_id} are kept whole while legal hold {ids} is active, so they "
                "do not expire; the request completes once the hold is released"
            )

    def fail(self, request: Request, step: str | None, message: str) -> Request:
        return transition(request.request_id, "failed", run_id=self.run.run_id, error=message[:4000],
                          failed_step=step, conn_id=self.conn_id)

    # ------------------------------------------------------------------ plan

    def plan(self, request_id: str) -> dict[str, Any]:
        """Write the steps, resolve object keys, count what each step would delete; ``planned``."""
        request = self.request(request_id)
        holds = self.blocking_holds(request)
        if holds:
            ids = ", ".join(f"#{h.id}" for h in holds)
            self.fail(request, None, f"blocked by legal hold {ids}: nothing was deleted; the request resumes when "
                                     "the hold is released")
            raise RequestBlocked(f"request {request_id} is blocked by legal hold {ids}; nothing was deleted")
        specs, notes = self.specs(request)
        ensure_steps(request_id, specs, conn_id=self.conn_id)
        steps = {s.qualified_name: s for s in list_steps(request_id, conn_id=self.conn_id)}
        selection = self.selection(request)
        out_steps = []
        try:
            for spec in specs:
                step = steps[spec.qualified_name]
                if step.state == STEP_VERIFIED:
                    out_steps.append({**step.as_dict(), "skipped": "verified earlier"})
                    continue
                planned = self.work.planned_count(request, spec, selection)
                update_step(request_id, spec.qualified_name, planned=planned, conn_id=self.conn_id)
                out_steps.append({"step": spec.qualified_name, "store": spec.store, "kind": spec.kind,
                                  "location": spec.location, "planned": planned, "state": step.state})
        except Exception as exc:
            message = scrub(f"planning failed: {type(exc).__name__}: {exc}", selection)
            self.fail(request, None, message + " (nothing was deleted)")
            raise
        transition(request_id, "planned", run_id=self.run.run_id, conn_id=self.conn_id,
                   message=f"{len(specs)} step(s) planned" + (" (preview: nothing is deleted)"
                                                               if request.mode == "preview" else ""))
        if request.mode == "preview":
            release(request_id, conn_id=self.conn_id)  # a preview run is done with the request here
        total = sum(s["planned"] or 0 for s in out_steps if "skipped" not in s)
        log.info("Request %s: %d step(s), %d record(s) to delete%s", request_id, len(specs), total,
                 " (preview)" if request.mode == "preview" else "")
        return {
            "request_id": request_id,
            "mode": request.mode,
            "request_type": request.request_type,
            "tenant_id": request.tenant_id,
            "subject_type": request.subject_type,
            "subject_hash": request.subject_hash,
            "due_at": request.due_at.isoformat(),
            "steps": out_steps,
            "planned_total": total,
            "not_applicable": notes,
            "stores": sorted({s.store for s in specs}, key=STORES.index),
        }

    # ------------------------------------------------------------------ purge

    def execute_store(self, request_id: str, store: str) -> dict[str, Any]:
        """Purge and verify this store's steps that are not verified yet; raise if any fails."""
        request = self.request(request_id)
        all_steps = self.ordered_steps(request)
        steps = [s for s in all_steps if s.store == store]
        todo = [s for s in steps if s.state != STEP_VERIFIED]
        skipped = [s.qualified_name for s in steps if s.state == STEP_VERIFIED]
        if not todo:
            return {"store": store, "done": [], "skipped_verified": skipped}
        holds = self.blocking_holds(request)
        if holds:
            ids = ", ".join(f"#{h.id}" for h in holds)
            self.fail(request, todo[0].qualified_name, f"blocked by legal hold {ids}: nothing more was deleted")
            raise RequestBlocked(f"request {request_id} is blocked by legal hold {ids}")
        # A failed step stays visible (the request ``failed``, naming it) until a retry of it
        # succeeds; the other stores' steps go ahead meanwhile.
        if request.state != "in_progress" and self._failing_step(request, all_steps) is None:
            request = transition(request_id, "in_progress", run_id=self.run.run_id, conn_id=self.conn_id)
        selection = self.selection(request)
        done, failures = [], []
        for step in todo:
            name = step.qualified_name
            update_step(request_id, name, state=STEP_RUNNING, run_id=self.run.run_id, add_attempt=True,
                        conn_id=self.conn_id)
            try:
                if step.kind == KIND_EXPIRY:
                    self.check_backups_free(request)
                outcome = self.work.purge_step(request, step, selection)
            except Exception as exc:  # noqa: BLE001 - recorded on the step, re-raised below
                partial = exc.deleted if isinstance(exc, PartialPurgeError) else 0
                message = scrub(f"{type(exc).__name__}: {exc}", selection)
                update_step(request_id, name, state=STEP_FAILED, error=message, add_deleted=partial,
                            conn_id=self.conn_id)
                record_event(request_id, "step_failed", run_id=self.run.run_id, message=f"{name}: {message}",
                             conn_id=self.conn_id)
                log.error("Request %s: step %s failed: %s", request_id, name, message)
                failures.append((name, message))
                continue
            deleted, remaining = outcome.deleted, outcome.remaining
            state = STEP_VERIFIED if remaining == 0 else STEP_FAILED
            error = None if remaining == 0 else f"{remaining} record(s) remain after the purge"
            update_step(request_id, name, state=state, verified_remaining=remaining, method=outcome.method,
                        error=error, verified_at=wall_clock() if remaining == 0 else None, add_deleted=deleted,
                        details=outcome.details, conn_id=self.conn_id)
            log.info("Request %s: %s deleted %d, %d remain", request_id, name, deleted, remaining)
            done.append({"step": name, "deleted": deleted, "remaining": remaining, "method": outcome.method})
            if remaining:
                failures.append((name, str(error)))
        if failures:
            first, message = failures[0]
            self.fail(request, first, f"step {first} failed: {message}"
                      + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""))
            raise RequestStepFailed(
                f"request {request_id}: {len(failures)} step(s) of {store} failed, first {first}: {message}. "
                "Verified steps are kept; a rerun resumes the rest."
            )
        if request.state == "failed":  # the steps of this store that had failed are verified now
            request = self.request(request_id)
            still = self._failing_step(request, self.ordered_steps(request))
            if still is None:
                transition(request_id, "in_progress", run_id=self.run.run_id, conn_id=self.conn_id,
                           message=f"the failed step(s) of {store} are verified")
            elif still.qualified_name != request.failed_step:
                self.fail(request, still.qualified_name, f"step {still.qualified_name} failed: {still.error}")
        return {"store": store, "done": done, "skipped_verified": skipped}

    @staticmethod
    def _failing_step(request: Request, steps: list[Step]) -> Step | None:
        """The step that keeps a ``failed`` request failed: the one it names while that is not
        verified, else the first other failed one; None when no step failed (or not ``failed``)."""
        if request.state != "failed":
            return None
        named = [s for s in steps if s.qualified_name == request.failed_step and s.state != STEP_VERIFIED]
        failed = [s for s in steps if s.state == STEP_FAILED]  # the named one may be running its retry
        return (named or failed or [None])[0]

    # ------------------------------------------------------------------ verify

    def verify(self, request_id: str) -> dict[str, Any]:
        """Independent re-count of every step; all verified and zero: ``verifying``."""
        request = self.request(request_id)
        steps = self.ordered_steps(request)
        expected = {spec.qualified_name for spec in self.specs(request)[0]}
        missing = sorted(expected - {s.qualified_name for s in steps})
        if missing:
            message = f"step(s) never planned: {', '.join(missing)}"
            self.fail(request, missing[0], message)
            release(request_id, conn_id=self.conn_id)
            raise RequestIncomplete(f"request {request_id} failed: {message}. A rerun plans them.")
        unfinished = [s for s in steps if s.state != STEP_VERIFIED]
        if unfinished:
            failed = [s for s in unfinished if s.state == STEP_FAILED] or unfinished
            first = failed[0]
            message = (f"{len(unfinished)} step(s) not verified; first {first.qualified_name} ({first.state}"
                       + (f": {first.error}" if first.error else "") + ")")
            self.fail(request, first.qualified_name, message)
            release(request_id, conn_id=self.conn_id)
            raise RequestIncomplete(f"request {request_id} failed: {message}. A rerun resumes it.")
        transition(request_id, "verifying", run_id=self.run.run_id, conn_id=self.conn_id)
        selection = self.selection(request)
        checked, leftovers = [], []
        for step in steps:
            remaining = self.work.recount_step(request, step, selection)
            checked.append({"step": step.qualified_name, "remaining": remaining})
            if remaining:
                leftovers.append(step.qualified_name)
                update_step(request_id, step.qualified_name, state=STEP_PENDING, verified_remaining=remaining,
                            error=f"{remaining} record(s) found at the final verification", conn_id=self.conn_id)
        if leftovers:
            message = f"final verification found records in {', '.join(leftovers)}"
            self.fail(request, leftovers[0], message)
            release(request_id, conn_id=self.conn_id)
            raise RequestIncomplete(f"request {request_id} failed: {message}; a rerun purges them")
        verified_at = wall_clock()
        record_event(request_id, "verified", run_id=self.run.run_id, conn_id=self.conn_id,
                     message=f"{len(steps)} step(s) re-counted: 0 records remain")
        return {"request_id": request_id, "verified_at": verified_at.isoformat(), "steps": checked}
