"""The bodies of the ``retention_coverage`` DAG's tasks. The DAG file only wires these.

``inventory`` (one mapped task per store, in that store's pool) lists and samples a store;
``record`` classifies everything and keeps it in the ledger; ``alert`` e-mails the new
unknown items once and remembers it. What travels in XCom is names and counts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Sequence

from include.retention.airflow_context import as_of_from_context
from include.retention.coverage import alerting, run
from include.retention.coverage.exemptions import load_exemptions
from include.retention.coverage.items import Finding
from include.retention.policy import Policy
from include.retention.timeutil import wall_clock


def inventory(policy: Policy, store: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """One store's items and what its listing saw."""
    settings = run.Settings.from_params(context.get("params") or {})
    result = run.inventory_store(store, policy, load_exemptions(), settings)
    result["details"]["started_at"] = wall_clock().isoformat()  # when the listing ran, for the run's row
    return result


def record(results: Sequence[Mapping[str, Any]], context: Mapping[str, Any]) -> dict[str, Any]:
    """Classify every store's items and keep them in the ledger; the new unknown items."""
    starts = [r["details"].get("started_at") for r in results if r["details"].get("started_at")]
    started = min((datetime.fromisoformat(s) for s in starts), default=wall_clock())
    return run.record(list(results), load_exemptions(), run_id=str(context["run_id"]),
                      as_of=as_of_from_context(context), started_at=started)


def alert(recorded: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, int]:
    """E-mail the new unknown items (once each) through the SLA notifier, and remember it."""
    from include.retention import sla
    from include.retention.ledger.coverage import mark_alerted

    new = [Finding.from_json(f) for f in recorded.get("new_unknown", ())]
    if not new:
        return {"alerted": 0}
    alerting.send(new, context, to=sla.recipient())
    mark_alerted([f.id for f in new])
    return {"alerted": len(new)}
