"""Carry out planned purges: each spec deleted through its store, every attempt audited.

A purge task gets a batch of the plan's specs; the audit (``ledger/audit.py``) writes its
row before anything is deleted, so a killed worker leaves the ledger exact.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

from include.retention import metrics
from include.retention.airflow_context import RunRef
from include.retention.crypto import RetentionCrypto
from include.retention.facts import LedgerFacts
from include.retention.ledger import audit
from include.retention.policy import Policy
from include.retention.results import PurgeResult
from include.retention.selections import SubjectSelection, selection_from_doc
from include.retention.stores import store_for
from include.retention.stores.base import RetentionStore, as_explicit_keys

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

    :param stores: store back ends by store name, instead of each store's defaults.
    """
    subjects = facts.subject_lookup(crypto)
    stores = dict(stores or {})
    results = []
    for spec in specs:
        target = policy.target(spec["target"])
        store = stores.setdefault(target.store, store_for(target.store, policy.timezone))
        selection = selection_from_doc(spec["selection"], subjects)
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

        result = audit.audited_purge(
            purge, matched=matched, dry_run=dry_run, run_id=run.run_id, dag_id=run.dag_id, task_id=run.task_id,
            target=target, selection=selection, override_reason=override_reason or None,
            key_extra="keys" if "keys" in spec else "",
            why=audit.Why(rule=spec.get("why", {}).get("rule"), withheld=spec.get("why", {}).get("withheld"),
                          approved_by=approved_by or None),
        )
        metrics.purge_finished(metrics.DAILY, target, result, dry_run=dry_run)
        log.info("%s %s: %d of %d planned (%s)", "Would delete" if dry_run else "Deleted", target.qualified_name,
                 result.deleted, spec["planned"], result.method)
        results.append({"spec": dict(spec), **result.as_dict()})
    return results
