"""After the purges: an independent re-count of every planned selection, and the run's summary."""

from __future__ import annotations

from typing import Any, Mapping

from include.retention.crypto import RetentionCrypto
from include.retention.facts import LedgerFacts
from include.retention.ledger import audit
from include.retention.policy import Policy
from include.retention.selections import Selection, SubjectSelection, selection_from_doc
from include.retention.stores import store_for
from include.retention.stores.base import RetentionStore, as_explicit_keys


def verify_plan(
    policy: Policy,
    plan: Mapping[str, Any],
    *,
    crypto: RetentionCrypto,
    facts: LedgerFacts,
    stores: Mapping[str, RetentionStore] | None = None,  # type: ignore[type-arg]
) -> list[dict[str, Any]]:
    """An independent re-count of every planned selection; after a real run each must be 0.

    One back end per store for the whole check: a run can hold hundreds of specs (one per
    terminated tenant and target), and a new client per spec cost 3x the count itself. A
    target's selections are re-counted together (``verify_each``): Redis scans a target once.
    """
    subjects = facts.subject_lookup(crypto)
    stores = dict(stores or {})
    remaining: dict[int, int] = {}
    by_target: dict[str, list[tuple[int, Selection]]] = {}  # what each target re-counts in one go
    for index, spec in enumerate(plan["specs"]):
        target = policy.target(spec["target"])
        store = stores.setdefault(target.store, store_for(target.store, policy.timezone))
        selection = selection_from_doc(spec["selection"], subjects)
        if "keys" in spec:
            assert isinstance(selection, SubjectSelection)
            remaining[index] = as_explicit_keys(store).count_keys(target, selection.tenant, spec["keys"])
        else:
            by_target.setdefault(target.qualified_name, []).append((index, selection))
    for name, wanted in by_target.items():
        target = policy.target(name)
        counts = stores[target.store].verify_each(target, [selection for _index, selection in wanted])
        remaining.update((index, count) for (index, _selection), count in zip(wanted, counts))
    checked, failures = [], []
    for index, spec in enumerate(plan["specs"]):
        row = {"target": spec["target"], "kind": spec["selection"]["kind"], "planned": spec["planned"],
               "remaining": remaining[index]}
        checked.append(row)
        if not plan["dry_run"] and row["remaining"]:
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
