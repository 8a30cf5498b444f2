"""
### Ledger checkpoint (daily)

Signs the head of each of the ledger's hash chains (`purge_audit`, `request_events`,
`certificates`, `decisions`: their length and last hash) with the certificate key and puts
the checkpoint in COS under `ledger-checkpoints/<ledger database>/<day>/` (the bucket of the
`retention_cos` connection). Where the bucket has Object Lock enabled the object is kept in
COMPLIANCE mode for 400 days; where it has not, or the server does not implement it (Swift),
the checkpoint says so in its signed body. See docs/PROOF.md.

It refuses to sign when an earlier checkpoint's head is no longer in its chain (rows cut off
or a chain recomputed): run `python -m include.retention.ledger verify` to see where.

**Tasks:** `checkpoint`. **Connections:** `retention_ledger`, `retention_cos`, `retention_keys`.

**Run by hand:** *Trigger DAG*, or `python -m include.retention.ledger checkpoint`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task

from include.retention.airflow_context import default_args
from include.retention.policy import load_policy

POLICY = load_policy()


@dag(
    dag_id="retention_ledger_checkpoint",
    description="Daily: a signed checkpoint of the ledger's hash chains in COS",
    doc_md=__doc__,
    schedule=CronTriggerTimetable("30 23 * * *", timezone=POLICY.timezone_name),  # after the day's purges
    start_date=pendulum.datetime(2026, 1, 1, tz=POLICY.timezone_name),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(execution_timeout=timedelta(minutes=30)),
    tags=["retention", "ledger", "proof"],
)
def retention_ledger_checkpoint() -> None:
    @task
    def checkpoint() -> dict[str, Any]:
        """Sign the chains' heads and put them in COS (Object Lock where the bucket has it)."""
        from include.retention.ledger.checkpoints import checkpoint_task

        return checkpoint_task(get_current_context(), POLICY.timezone)

    checkpoint()


retention_ledger_checkpoint()
