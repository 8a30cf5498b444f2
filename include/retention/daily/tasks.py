"""The bodies of a daily DAG's tasks: each reads what it needs from its Airflow context and
calls one step of the daily path. The DAG file only wires these together.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Mapping

from include.retention import metrics
from include.retention.airflow_context import RunRef, as_of_from_context
from include.retention.crypto import RetentionCrypto
from include.retention.daily.approval import approved_by
from include.retention.daily.breaker import CircuitBreakerTripped, RunOptions
from include.retention.daily.batching import batches
from include.retention.daily.plan import plan_category
from include.retention.daily.purge import execute_specs
from include.retention.daily.verify import summarize, verify_plan
from include.retention.facts import LedgerFacts
from include.retention.ledger.facts import load_facts
from include.retention.policy import Policy
from include.retention.stores import ONE_PASS_STORES

log = logging.getLogger(__name__)


def _run(context: Mapping[str, Any]) -> tuple[datetime, RunOptions, RetentionCrypto, LedgerFacts]:
    """The run's instant and options, the secrets, and what the ledger says as of that instant."""
    as_of = as_of_from_context(context)
    crypto = RetentionCrypto.from_connection()
    return as_of, RunOptions.from_params(context["params"]), crypto, load_facts(as_of, crypto)


def plan(policy: Policy, category: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """Every selection due as of the run's instant, counted and breaker-checked.

    A tripped breaker fails the task at once, without retries: the same plan would trip it
    again, and the operator's answer (``allow_large_purge`` with a reason) is a new run.
    """
    from airflow.sdk.exceptions import AirflowFailException

    as_of, options, crypto, facts = _run(context)
    try:
        return plan_category(policy, category, as_of, options, crypto=crypto, facts=facts)
    except CircuitBreakerTripped as exc:
        metrics.breaker_tripped(category)
        raise AirflowFailException(str(exc)) from None


def store_batches(the_plan: Mapping[str, Any], store: str) -> list[list[dict[str, Any]]]:
    """This store's purges in batches, overlapping specs in one, at most Airflow's ``max_map_length``;
    a one-pass store's specs of a target (Redis) all in one, so that its task scans the target once."""
    from airflow.configuration import conf

    return batches(the_plan["specs"], store, conf.getint("core", "max_map_length", fallback=1024),
                   one_pass=ONE_PASS_STORES)


def purge(policy: Policy, batch: list[dict[str, Any]], the_plan: Mapping[str, Any],
          context: Mapping[str, Any], approval: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Purge one batch of specs, each attempt audited (with who approved it past the breaker)."""
    _as_of, options, crypto, facts = _run(context)
    approver, approval_reason = approved_by(approval)
    return execute_specs(policy, batch, dry_run=options.dry_run, run=RunRef.from_context(context), crypto=crypto,
                         facts=facts, override_reason=the_plan["override_reason"] or approval_reason,
                         approved_by=approver)


def verify(policy: Policy, the_plan: Mapping[str, Any], context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Re-count every planned selection; after a real run each must be 0."""
    _as_of, _options, crypto, facts = _run(context)
    return verify_plan(policy, the_plan, crypto=crypto, facts=facts)


def summary(the_plan: Mapping[str, Any], verified: list[dict[str, Any]], context: Mapping[str, Any]) -> dict[str, Any]:
    """The run's JSON result, from the audit ledger, also written to the task log."""
    result = summarize(the_plan, str(context["run_id"]))
    result["verified"] = verified
    log.info("Retention summary: %s", json.dumps(result, sort_keys=True))
    return result
