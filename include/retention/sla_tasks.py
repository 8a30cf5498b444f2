"""The bodies of the ``retention_sla_monitor`` DAG's tasks. The DAG file only wires these.

``sweep`` decides what the open requests are owed (``sla.classify``, pure) and forgets the
subject tokens of closed windows; ``notify`` sends what has not been sent yet and records
it; ``forget_runs`` deletes the finished request runs of closed requests from Airflow.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Mapping

from include.retention import metrics, sla
from include.retention.airflow_context import as_of_from_context
from include.retention.ledger.alerts import record_alert, sent_alerts
from include.retention.ledger.requests import forget_closed_subjects, list_requests
from include.retention.policy import Policy
from include.retention.request_states import OPEN_STATES
from include.retention.timeutil import days_left, local_day


def sweep(policy: Policy, context: Mapping[str, Any]) -> dict[str, Any]:
    """Which alerts and re-triggers the open requests are owed as of this run."""
    as_of = as_of_from_context(context)
    stall = timedelta(hours=float(context["params"]["stall_hours"]))
    open_requests = list_requests(states=OPEN_STATES, mode="execute")
    owed = sla.classify(open_requests, as_of, warning_days=policy.sla_warning_days, tz=policy.timezone,
                        stall_after=stall)
    forgotten = forget_closed_subjects(as_of)
    least = min((days_left(r.due_at, as_of) for r in open_requests), default=policy.request_window_days)
    metrics.sla_swept(owed.open_requests, least)
    return {
        "as_of": as_of.isoformat(),
        "open": owed.open_requests,
        "min_days_left": least,
        "alerts": [{"request_id": a.request_id, "kind": a.kind, "days_left": a.days_left} for a in owed.alerts],
        "retrigger": [{"trigger_run_id": r.trigger_run_id, "conf": dict(r.conf)} for r in owed.retriggers],
        "retrigger_reasons": {r.request_id: r.reason for r in owed.retriggers},
        "subjects_forgotten": forgotten,
    }


def notify(policy: Policy, swept: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """E-mail each alert not sent yet (warning once; breach once a day), and record it."""
    alerts, as_of = swept["alerts"], swept["as_of"]
    if not alerts:
        return {"sent": 0}
    day = local_day(datetime.fromisoformat(as_of), policy.timezone)
    owed = [sla.Alert(a["request_id"], a["kind"], int(a["days_left"])) for a in alerts]
    pending = sla.due_alerts(owed, day, sent_alerts(sorted({a.request_id for a in owed})))
    to = sla.recipient() if pending else ""
    for alert in pending:
        sla.send(alert, context, to=to)
        record_alert(alert.request_id, alert.kind, alert.days_left, day, run_id=str(context["run_id"]))
        metrics.sla_alert_sent(alert.kind)
    return {"sent": len(pending), "already_sent": len(owed) - len(pending)}


def forget_runs(context: Mapping[str, Any]) -> dict[str, int]:
    """Delete the finished deletion_requests runs of closed requests (their conf holds the subject id)."""
    from include.retention import airflow_runs

    api = airflow_runs.AirflowApi.from_connection()  # skipped, with the reason, when it is not defined
    return airflow_runs.forget_request_runs(api, as_of_from_context(context)).as_dict()
