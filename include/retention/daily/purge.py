"""Carry out planned purges: each spec deleted through its store, every attempt audited.

A purge task gets a batch of the plan's specs; the audit (``ledger/audit.py``) writes its
row before anything is deleted, so a killed worker leaves the ledger exact. The specs of one
target in a store that serves many selections in one pass (``OnePassPurge``: Redis) are
purged together in that one pass, each still audited in a row of its own.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

from include.retention import metrics
from include.retention.airflow_context import RunRef
from include.retention.crypto import RetentionCrypto
from include.retention.facts import LedgerFacts
from include.retention.ledger import audit
from include.retention.policy import Policy, Target
from include.retention.results import PurgeResult
from include.retention.selections import Selection, SubjectSelection, selection_from_doc
from include.retention.stores import store_for
from include.retention.stores.base import OnePassPurge, RetentionStore, as_explicit_keys

log = logging.getLogger(__name__)


def execute_specs(
    policy: Policy,
    specs: Iterable[Mapping[str, Any]],
    *,
    dry_run: bool,
    run: RunRef,
    crypto: RetentionCrypto,
    facts: LedgerFacts,
    override_reason: str = "",
    approved_by: str = "",
    stores: Mapping[str, RetentionStore] | None = None,  # type: ignore[type-arg]
) -> list[dict[str, Any]]:
    """Purge each spec, audit each attempt (also a failed or killed one), and return JSON results.

    Specs run in order, and the first failure stops the rest; a one-pass store's specs of one
    target run together where the first of them stood.

    :param stores: store back ends by store name, instead of each store's defaults.
    """
    subjects = facts.subject_lookup(crypto)
    stores = dict(stores or {})
    audit_args = {"dry_run": dry_run, "run_id": run.run_id, "dag_id": run.dag_id, "task_id": run.task_id,
                  "override_reason": override_reason or None}
    results = []
    for step in _steps(policy, specs, stores):
        target = policy.target(step[0]["target"])
        store = stores[target.store]
        selections = [selection_from_doc(spec["selection"], subjects) for spec in step]
        whys = [_why(spec, approved_by) for spec in step]
        if isinstance(store, OnePassPurge):
            one_pass = store

            def purge_all() -> list[PurgeResult]:
                return one_pass.purge_each(target, selections, dry_run=dry_run)

            def claimed() -> list[int]:
                return one_pass.count_claimed(target, selections)

            done = audit.audited_purges(purge_all, matched=claimed, target=target, selections=selections,
                                        whys=whys, **audit_args)
        else:
            [spec], [selection], [why] = step, selections, whys
            done = [_audited_one(store, target, spec, selection, why, audit_args)]
        for spec, result in zip(step, done):
            metrics.purge_finished(metrics.DAILY, target, result, dry_run=dry_run)
            log.info("%s %s: %d of %d planned (%s)", "Would delete" if dry_run else "Deleted",
                     target.qualified_name, result.deleted, spec["planned"], result.method)
            results.append({"spec": dict(spec), **result.as_dict()})
    return results


def _steps(policy: Policy, specs: Iterable[Mapping[str, Any]],
           stores: dict[str, RetentionStore]) -> list[list[Mapping[str, Any]]]:  # type: ignore[type-arg]
    """The specs in the order they run: one step per spec, but a one-pass store's specs of a
    target (other than explicit key lists) in one step, where the first of them stands."""
    steps: list[list[Mapping[str, Any]]] = []
    passes: dict[str, list[Mapping[str, Any]]] = {}
    for spec in specs:
        target = policy.target(spec["target"])
        store = stores.setdefault(target.store, store_for(target.store, policy.timezone))
        if "keys" not in spec and isinstance(store, OnePassPurge):
            if target.qualified_name not in passes:
                passes[target.qualified_name] = []
                steps.append(passes[target.qualified_name])
            passes[target.qualified_name].append(spec)
        else:
            steps.append([spec])
    return steps


def _why(spec: Mapping[str, Any], approved_by: str) -> audit.Why:
    return audit.Why(rule=spec.get("why", {}).get("rule"), withheld=spec.get("why", {}).get("withheld"),
                     approved_by=approved_by or None)


def _audited_one(store: RetentionStore, target: Target, spec: Mapping[str, Any],  # type: ignore[type-arg]
                 selection: Selection, why: audit.Why, audit_args: Mapping[str, Any]) -> PurgeResult:
    """One spec purged on its own, its attempt audited."""
    dry_run = bool(audit_args["dry_run"])
    if "keys" in spec:
        cos = as_explicit_keys(store)  # a subject's recordings: explicit keys from its call records
        assert isinstance(selection, SubjectSelection)
        tenant, object_keys = selection.tenant, spec["keys"]

        def purge() -> PurgeResult:
            return cos.purge_keys(target, tenant, object_keys, dry_run=dry_run)

        def matched() -> int:
            return int(cos.count_keys(target, tenant, object_keys))
    else:

        def purge() -> PurgeResult:
            return store.purge(target, selection, dry_run=dry_run)

        def matched() -> int:
            return store.count(target, selection)

    return audit.audited_purge(purge, matched=matched, target=target, selection=selection,
                               key_extra="keys" if "keys" in spec else "", why=why, **audit_args)
