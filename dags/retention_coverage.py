"""
### Coverage: a daily inventory of the stores against the retention policy

Finds personal data the policy does not know about. Each day it lists what the connections
reach and classifies every item as **covered** (a policy target names it), **exempt** (listed
in `include/retention/coverage_exemptions.yaml` with a reason and an owner) or **unknown**:

- **MySQL:** every table and column of the configured schemas (`information_schema`), through
  `retention_coverage_mysql` (a read-only account with `SELECT` on them; its schema, or the
  extra `coverage_schemas: [...]`), else `retention_mysql`, which sees only its granted tables;
- **Redis:** key families from a bounded `SCAN` sample (`redis_sample_keys`);
- **COS:** the bucket's top-level prefixes, from delimiter listings;
- **Elasticsearch:** indices, aliases and data streams.

Unknown items are flagged as likely personal data from their names (phone, number, email,
name, caller, callee, msisdn) and from a bounded sample of their values matching E.164 or
e-mail shapes: **counts only**, no sampled value is logged, stored or returned.

**Tasks:** `inventory_<store>` (one per store, in that store's pool) → `record` (classify, keep
in the ledger's `coverage_items` / `coverage_runs`) → `alert` (one e-mail listing the *new*
unknown items through the SLA monitor's notifier: `retention_smtp`, the address in
`retention_sla_email` or `$RETENTION_SLA_EMAIL`; each item is e-mailed once).

**Run by hand:** *Trigger DAG*, or from a shell `python -m include.retention.coverage check`
(add `--record` to keep the result). The dashboard's Coverage panel shows the last run.
An item is cleared by adding it to the policy or to the exemptions file.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task

from include.retention.airflow_context import default_args
from include.retention.policy import STORES, load_policy

POLICY = load_policy()


@dag(
    dag_id="retention_coverage",
    description="Daily: what the stores hold that the retention policy does not cover",
    doc_md=__doc__,
    schedule=CronTriggerTimetable("30 6 * * *", timezone=POLICY.timezone_name),  # 06:30 Singapore
    start_date=pendulum.datetime(2000, 1, 1, tz=POLICY.timezone_name),  # static, as every DAG of the package
    catchup=False,
    max_active_runs=1,
    default_args=default_args(execution_timeout=timedelta(minutes=30)),
    tags=["retention", "coverage"],
    params={
        "redis_sample_keys": Param(20_000, type="integer", minimum=1, maximum=1_000_000,
                                   description="At most this many Redis keys are scanned."),
        "mysql_rows": Param(200, type="integer", minimum=0, maximum=10_000,
                            description="Rows sampled of each unknown table or column."),
        "es_documents": Param(20, type="integer", minimum=0, maximum=1_000,
                              description="Documents sampled of each unknown index family or data stream."),
    },
)
def retention_coverage() -> None:
    @task
    def inventory(store: str) -> dict[str, Any]:
        """One store's items (names and counts, never a value)."""
        from include.retention.coverage import tasks

        return tasks.inventory(POLICY, store, get_current_context())

    @task
    def record(results: list[dict[str, Any]]) -> dict[str, Any]:
        """Classify every item and keep the result in the ledger; the new unknown items."""
        from include.retention.coverage import tasks

        return tasks.record(results, get_current_context())

    @task
    def alert(recorded: dict[str, Any]) -> dict[str, int]:
        """E-mail the new unknown items once, through the SLA monitor's notifier."""
        from include.retention.coverage import tasks

        return tasks.alert(recorded, get_current_context())

    listed = [inventory.override(task_id=f"inventory_{store}", pool=f"retention_{store}")(store) for store in STORES]
    alert(record(listed))


retention_coverage()
