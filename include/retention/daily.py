"""The daily purge of one category, as plain functions the DAG tasks call.

plan -> purge (mapped, per store) -> verify -> summary. What travels between tasks is JSON
without personal data: a subject appears only as its keyed hash and is resolved again from
the ledger by the task that needs it, so the DAGs run unchanged on any executor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

from include.retention.ledger import audit
from include.retention.airflow_context import RunRef
from include.retention.facts import LedgerFacts
from include.retention.crypto import RetentionCrypto
from include.retention.facts import LegalHold
from include.retention.expiry import plan_expired, plan_requests
from include.retention.policy import CosTarget, MySqlTarget, Policy, Target
from include.retention.stores import store_for
from include.retention.selections import (
    ExpiredSelection,
    Selection,
    SubjectSelection,
    TenantSelection,
    selection_from_doc,
    selection_to_doc,
)
from include.retention.results import PurgeResult
from include.retention.stores.base import RetentionStore, as_column_source, as_explicit_keys
from include.retention.subject_keys import held_object_keys, subject_object_keys

log = logging.getLogger(__name__)

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=timezone.utc)
DEFAULT_MAX_SHARE = 0.5
SPECS_PER_MAPPED_TASK = 25


class CircuitBreakerTripped(RuntimeError):
    """A run would delete more than it safely should; nothing was deleted."""


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class RunOptions:
    dry_run: bool = False
    max_share: float = DEFAULT_MAX_SHARE
    allow_large_purge: bool = False
    override_reason: str = ""


def _target_total(store: RetentionStore, target: Target, units: Sequence[Any]) -> int | None:  # type: ignore[type-arg]
    """Everything the target holds, for the circuit breaker; None where a store cannot say."""
    if not target.is_dated:
        return None
    return store.count(target, ExpiredSelection(before=FAR_FUTURE, units=tuple(u.name for u in units)))


def plan_category(
    policy: Policy,
    category_name: str,
    as_of: datetime,
    options: RunOptions,
    *,
    keys: RetentionCrypto,
    facts: LedgerFacts,
    stores: Mapping[str, RetentionStore] | None = None,  # type: ignore[type-arg]
) -> dict[str, Any]:
    """Plan one category's run: every selection due as of ``as_of``, counted, breaker-checked."""
    category = policy.category(category_name)
    tz = policy.timezone
    stores = dict(stores or {})
    specs: list[dict[str, Any]] = []
    skipped: list[str] = []
    breaker: list[dict[str, Any]] = []
    for target in category.targets:
        store = stores.setdefault(target.store, store_for(target.store, tz))
        units = store.dated_units(target) if target.is_dated else []
        by_age = plan_expired(target, as_of, tz, units, facts.overrides, facts.holds)
        by_request = plan_requests(category, target, as_of, facts.terminations, facts.deletions, facts.holds)
        skipped += [f"{target.qualified_name}: {why}" for why in by_age.skipped + by_request.skipped]
        planned_here = 0
        for purge in by_age.purges + by_request.purges:
            spec: dict[str, Any] = {
                "target": target.qualified_name,
                "store": target.store,
                "selection": selection_to_doc(purge.selection, keys),
                "reason": purge.reason,
            }
            withheld = 0
            if isinstance(purge.selection, SubjectSelection) and isinstance(target, CosTarget) and target.subject_keys_from:
                # Recordings carry no subject: take the keys the subject's call records point at.
                mysql = stores.setdefault("mysql", store_for("mysql", tz))
                spec["keys"] = subject_object_keys(policy, target, purge.selection, mysql)
                count = store.count_keys(target, purge.selection.tenant, spec["keys"]) if spec["keys"] else 0  # type: ignore[attr-defined]
                held_keys = held_object_keys(policy, target, purge.selection, mysql)
                withheld = store.count_keys(target, purge.selection.tenant, sorted(held_keys)) if held_keys else 0  # type: ignore[attr-defined]
            else:
                count = store.count(target, purge.selection)
                if isinstance(purge.selection, SubjectSelection) and purge.selection.exclude_subjects:
                    withheld = store.count(target, purge.selection.without_holds()) - count
            if withheld:
                # Counts only: the held subject is not named.
                spec["withheld"] = withheld
                skipped.append(f"{target.qualified_name}: {withheld} record(s) of subject "
                               f"{purge.selection.subject_hash[:12]} kept under another subject's legal hold")  # type: ignore[union-attr]
            if count == 0 and not isinstance(purge.selection, ExpiredSelection):
                continue  # a request sweep with nothing new to delete
            planned_here += count
            spec["planned"] = count
            specs.append(spec)
        total = _target_total(store, target, units) if planned_here else None
        share = (planned_here / total) if total else 0.0
        breaker.append({"target": target.qualified_name, "planned": planned_here, "total": total, "share": round(share, 4)})
        log.info("Planned %d record(s) in %s (%s of %s)", planned_here, target.qualified_name, f"{share:.1%}", total)
    tripped = [b for b in breaker if b["total"] and b["share"] > options.max_share]
    plan = {
        "category": category_name,
        "as_of": as_of.isoformat(),
        "dry_run": options.dry_run,
        "specs": specs,
        "skipped": skipped,
        "breaker": breaker,
        "override_reason": options.override_reason if options.allow_large_purge else "",
    }
    if tripped and not options.allow_large_purge:
        detail = "; ".join(f"{b['target']}: {b['planned']} of {b['total']} ({b['share']:.1%})" for b in tripped)
        raise CircuitBreakerTripped(
            f"refusing to purge more than {options.max_share:.0%} of a target: {detail}. Nothing was deleted. "
            "If this is intended (a first run over a long backlog), trigger with allow_large_purge=true "
            "and an override_reason; the override is recorded in the audit."
        )
    if tripped and not options.override_reason.strip():
        raise CircuitBreakerTripped("allow_large_purge needs an override_reason, which is recorded in the audit")
    return plan


def batches(specs: Sequence[dict[str, Any]], store: str, max_map_length: int) -> list[list[dict[str, Any]]]:
    """Specs of one store in groups, so that the mapped list stays under ``max_map_length``."""
    mine = [s for s in specs if s["store"] == store]
    if not mine:
        return []
    size = max(SPECS_PER_MAPPED_TASK, -(-len(mine) // max_map_length))
    return [mine[i : i + size] for i in range(0, len(mine), size)]


# --------------------------------------------------------------------------- executing


def subject_lookup(facts: LedgerFacts, keys: RetentionCrypto) -> dict[str, tuple[str, str, str]]:
    """hash -> (tenant, type, id) for every subject the ledger lets this run name."""
    out: dict[str, tuple[str, str, str]] = {}
    for d in facts.deletions:
        out[d.subject_hash] = (d.tenant, d.subject_type, d.subject_id)
    for h in facts.holds:
        if h.subject_type and h.subject_id:
            out[keys.subject_hash(h.tenant_id, h.subject_type, h.subject_id)] = (h.tenant_id, h.subject_type, h.subject_id)
    return out


def execute_specs(
    policy: Policy,
    specs: Iterable[Mapping[str, Any]],
    *,
    dry_run: bool,
    run: RunRef,
    keys: RetentionCrypto,
    facts: LedgerFacts,
    override_reason: str = "",
    stores: Mapping[str, RetentionStore] | None = None,  # type: ignore[type-arg]
) -> list[dict[str, Any]]:
    """Purge each spec, audit each attempt (also a failed or killed one), and return JSON results.

    :param stores: store back ends by store name, instead of each store's defaults.
    """
    subjects = subject_lookup(facts, keys)
    stores = dict(stores or {})
    results = []
    for spec in specs:
        target = policy.target(spec["target"])
        store = stores.setdefault(target.store, store_for(target.store, policy.timezone))
        selection = selection_from_doc(spec["selection"], subjects)
        if "keys" in spec:
            cos: Any = store  # only the COS store purges explicit keys (a subject's recordings)
            tenant, object_keys = selection.tenant, spec["keys"]  # type: ignore[union-attr]

            def purge() -> PurgeResult:
                return cos.purge_keys(target, tenant, object_keys, dry_run=dry_run)  # type: ignore[no-any-return]

            def matched() -> int:
                return int(cos.count_keys(target, tenant, object_keys))
        else:

            def purge() -> PurgeResult:
                return store.purge(target, selection, dry_run=dry_run)

            def matched() -> int:
                return store.count(target, selection)

        result = audit.audited_purge(
            purge, matched=matched, dry_run=dry_run, run_id=run.run_id, dag_id=run.dag_id, task_id=run.task_id,
            target=target, selection=selection, override_reason=override_reason or None,
            key_extra="keys" if "keys" in spec else "",
        )
        log.info("%s %s: %d of %d planned (%s)", "Would delete" if dry_run else "Deleted", target.qualified_name,
                 result.deleted, spec["planned"], result.method)
        results.append({"spec": dict(spec), **result.as_dict()})
    return results


def verify_plan(
    policy: Policy,
    plan: Mapping[str, Any],
    *,
    keys: RetentionCrypto,
    facts: LedgerFacts,
    stores: Mapping[str, RetentionStore] | None = None,  # type: ignore[type-arg]
) -> list[dict[str, Any]]:
    """An independent re-count of every planned selection; after a real run each must be 0.

    One back end per store for the whole check: a run can hold hundreds of specs (one per
    terminated tenant and target), and a new client per spec cost 3x the count itself.
    """
    subjects = subject_lookup(facts, keys)
    stores = dict(stores or {})
    checked, failures = [], []
    for spec in plan["specs"]:
        target = policy.target(spec["target"])
        store = stores.setdefault(target.store, store_for(target.store, policy.timezone))
        selection = selection_from_doc(spec["selection"], subjects)
        if "keys" in spec:
            remaining = store.count_keys(target, selection.tenant, spec["keys"])  # type: ignore[attr-defined, union-attr]
        else:
            remaining = store.verify(target, selection)
        row = {"target": spec["target"], "kind": spec["selection"]["kind"], "planned": spec["planned"], "remaining": remaining}
        checked.append(row)
        if not plan["dry_run"] and remaining:
            failures.append(row)
    if failures:
        raise RuntimeError(f"verification failed: records remain after the purge: {failures}")
    return checked


def summarize(plan: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """Counts per store and target for this run, from the audit ledger: the run's JSON result."""
    rows = [
        {"store": r.store, "target": f"{r.category}.{r.target}", "purges": r.purges, "planned": r.planned,
         "deleted": r.deleted, "failed": r.failed, "dry_runs": r.dry_runs}
        for r in audit.summary(run_id)
        if r.category == plan["category"]
    ]
    return {
        "category": plan["category"],
        "as_of": plan["as_of"],
        "dry_run": plan["dry_run"],
        "targets": rows,
        "deleted_total": sum(r["deleted"] for r in rows),
        "skipped": plan["skipped"],
        "breaker": plan["breaker"],
    }
