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

from include.retention.airflow_context import default_args
from include.retention.policy import load_policy
from include.retention.request_states import REQUESTS_DAG_ID

POLICY = load_policy()


@dag(
    dag_id="retention_sla_monitor",
    description="Daily: T-7 warnings, T-0 breach alerts, re-triggers of failed or stalled requests",
    doc_md=__doc__,
    schedule=CronTriggerTimetable("0 8 * * *", timezone=POLICY.timezone_name),  # 08:00 Singapore, office hours
    start_date=pendulum.datetime(2000, 1, 1, tz=POLICY.timezone_name),  # before any data: a run dated earlier would silently do nothing
    catchup=False,
    max_active_runs=1,
    default_args=default_args(execution_timeout=timedelta(minutes=30)),
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
        from include.retention import sla_tasks

        return sla_tasks.sweep(POLICY, get_current_context())

    @task
    def notify(swept: dict[str, Any]) -> dict[str, Any]:
        """E-mail each alert not sent yet (warning once; breach once a day), and record it."""
        from include.retention import sla_tasks

        return sla_tasks.notify(POLICY, swept, get_current_context())

    @task
    def to_retrigger(swept: dict[str, Any]) -> list[dict[str, Any]]:
        """The re-triggers, one mapped ``retrigger`` task each (none: the task is skipped)."""
        return list(swept["retrigger"])

    @task
    def forget_runs() -> dict[str, int]:
        """Delete the finished deletion_requests runs of closed requests (their conf holds the subject id)."""
        from include.retention import sla_tasks

        return sla_tasks.forget_runs(get_current_context())

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
