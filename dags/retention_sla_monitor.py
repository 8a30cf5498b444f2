"""
### SLA monitor of termination and deletion requests (daily)

Every request is due 30 days after it was received. Each day, as of its own run time, this
DAG sweeps the open requests in the ledger (accepted for execution, not completed):

- **warning** e-mail once, 7 days or less before the due date (T-7);
- **breach** e-mail on the due date (T-0) and again every day after, until it completes;
- **re-trigger** of failed requests and of stalled ones (no run holds them any more): a new
  `deletion_requests` run with `resume: true`, which skips the verified steps.

**Tasks:** `sweep` (which alerts and re-triggers are owed; also drops the encrypted subject
of requests whose window has closed) → `notify` (`SmtpNotifier` on the `retention_smtp`
connection; each alert is recorded, so a rerun sends nothing twice) and `retrigger`
(`TriggerDagRunOperator`, one mapped task per request, run id
`sla_retrigger__<request>__<day>` so it happens at most once a day).

`forget_runs` deletes, through Airflow's REST API, the finished `deletion_requests` runs of
closed requests: Airflow keeps a run's conf, which holds the subject id, for as long as the
run exists. It needs the connection `retention_airflow_api` (http: the api-server's
host/port/schema or `extra.base_url`, and a user allowed to delete DAG runs); without it the
task is **skipped** and says so (alternative: `airflow db clean --tables dag_run --dag-ids
deletion_requests ... --skip-archive`).

**Configure:** the recipient in the Airflow Variable `retention_sla_email` (or the
environment variable `RETENTION_SLA_EMAIL`), read at run time; the SMTP server in the
connection `retention_smtp`. The e-mails carry the request id and the days left only.

**Run by hand:** *Trigger DAG*; `stall_hours` sets how long an unfinished request may sit
without a run before it is re-triggered (a run's own lease is its 6 h timeout).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task

from include.retention.policy import load_policy
from include.retention.requests.legacy import DAG_ID as REQUESTS_DAG_ID

POLICY = load_policy()

DEFAULT_ARGS = {
    "owner": "data-retention",
    "retries": 3,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(hours=1),
    "execution_timeout": timedelta(minutes=30),
}


@dag(
    dag_id="retention_sla_monitor",
    description="Daily: T-7 warnings, T-0 breach alerts, re-triggers of failed or stalled requests",
    doc_md=__doc__,
    schedule=CronTriggerTimetable("0 8 * * *", timezone=POLICY.timezone_name),  # 08:00 Singapore, office hours
    start_date=pendulum.datetime(2026, 1, 1, tz=POLICY.timezone_name),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["retention", "requests", "sla"],
    params={
        "stall_hours": Param(6, type="number", minimum=1, maximum=72,
                             description="An unfinished request no run has touched for this long is re-triggered."),
    },
)
def retention_sla_monitor() -> None:
    @task
    def sweep() -> dict[str, Any]:
        """Which alerts and re-triggers the open requests are owed as of this run."""
        from include.retention.requests import legacy as rq
        from include.retention import sla
        from include.retention.airflow_context import as_of_from_context

        context = get_current_context()
        as_of = as_of_from_context(context)
        stall = timedelta(hours=float(context["params"]["stall_hours"]))
        open_requests = rq.list_requests(states=rq.OPEN_STATES, mode="execute")
        owed = sla.classify(open_requests, as_of, warning_days=POLICY.sla_warning_days, tz=POLICY.timezone,
                            stall_after=stall)
        forgotten = rq.forget_closed_subjects(as_of)
        return {
            "as_of": as_of.isoformat(),
            "open": owed.open_requests,
            "alerts": [{"request_id": a.request_id, "kind": a.kind, "days_left": a.days_left} for a in owed.alerts],
            "retrigger": [{"trigger_run_id": r.trigger_run_id, "conf": dict(r.conf)} for r in owed.retriggers],
            "retrigger_reasons": {r.request_id: r.reason for r in owed.retriggers},
            "subjects_forgotten": forgotten,
        }

    @task
    def notify(swept: dict[str, Any]) -> dict[str, Any]:
        """E-mail each alert not sent yet (warning once; breach once a day), and record it."""
        from datetime import datetime

        from include.retention import sla

        alerts, as_of = swept["alerts"], swept["as_of"]
        if not alerts:
            return {"sent": 0}
        context = get_current_context()
        day = sla.local_day(datetime.fromisoformat(as_of), POLICY.timezone)
        owed = [sla.Alert(a["request_id"], a["kind"], int(a["days_left"])) for a in alerts]
        pending = sla.due_alerts(owed, day, sla.sent_alerts(sorted({a.request_id for a in owed})))
        to = sla.recipient() if pending else ""
        for alert in pending:
            sla.send(alert, context, to=to)
            sla.record_alert(alert, day, run_id=str(context["run_id"]))
        return {"sent": len(pending), "already_sent": len(owed) - len(pending)}

    @task
    def to_retrigger(swept: dict[str, Any]) -> list[dict[str, Any]]:
        """The re-triggers, one mapped ``retrigger`` task each (none: the task is skipped)."""
        return list(swept["retrigger"])

    @task
    def forget_runs() -> dict[str, int]:
        """Delete the finished deletion_requests runs of closed requests (their conf holds the subject id)."""
        from include.retention import airflow_runs
        from include.retention.airflow_context import as_of_from_context

        api = airflow_runs.AirflowApi.from_connection()  # skipped, with the reason, when it is not defined
        return airflow_runs.forget_request_runs(api, as_of_from_context(get_current_context())).as_dict()

    swept = sweep()
    notify(swept)
    forget_runs()
    TriggerDagRunOperator.partial(
        task_id="retrigger",
        trigger_dag_id=REQUESTS_DAG_ID,
        logical_date=None,
        skip_when_already_exists=True,
        wait_for_completion=False,
        openlineage_inject_parent_info=False,
    ).expand_kwargs(to_retrigger(swept))


retention_sla_monitor()
