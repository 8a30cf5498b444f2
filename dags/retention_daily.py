"""
### Daily retention purge: one DAG per data category

Generated from `include/retention/policy.yaml`: `retention_log_data`, `retention_agent_info`,
`retention_call_data`, `retention_call_analytics`, `retention_configuration`.

Each run purges **everything expired as of its own `data_interval_end`** (the run's date at
midnight, Asia/Singapore), not only what expired that day, so the first run after an outage
catches up by itself, and a backfill of past dates deletes a subset of what today's run would.

**Tasks:** `plan` (expired units from what exists in each store, plus the ledger's open
termination and deletion requests, overrides and legal holds; circuit breaker) → `approve`
(waits under *Required actions* only when the breaker tripped and `on_breaker_trip` is
`ask`; otherwise it passes at once) → `purge_<store>` (mapped over batches, one Airflow pool per store) → `verify` (independent
re-count) → `summary` (JSON result, audit counts, Asset event `retention://<category>`).

**Run by hand:** Trigger DAG w/ config → `dry_run: true` counts and audits without deleting.
A run that would delete more than `max_share` of a target, or of one tenant's records in a
target (once at least `tenant_min_records`), stops before deleting anything. With
`on_breaker_trip: fail` (the policy's `circuit_breaker.on_trip` by default) the run fails at
once with the numbers: rerun with `allow_large_purge: true` and an `override_reason`. With
`ask`, the `approve` task shows the numbers under *Required actions*: Approve (with a reason)
lets the purges run, Reject ends the run with nothing deleted; the decision, who made it and
the reason go into the audit.

**Backfill** (one run per day, 1–10 November inclusive, oldest first):

    airflow backfill create --dag-id retention_call_data --max-active-runs 1 \
        --from-date 2026-11-01T00:00:00+08:00 --to-date 2026-11-10T00:00:00+08:00

then unpause the DAG; the scheduler runs them. Give the dates as midnight Asia/Singapore: a
bare date means midnight UTC and silently drops the first day. Keep `--max-active-runs 1`: a
backfill ignores the DAG's `max_active_runs=1` and would run 10 at once. The first run takes
the backlog, each later one only what expired on its own day; the audit has their rows under
run ids `backfill__<date>`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, CronTriggerTimetable, Param, dag, get_current_context, task

from include.retention.airflow_context import default_args
from include.retention.daily.approval import LargePurgeApproval
from include.retention.daily.batching import PARALLEL_PURGES_PER_RUN
from include.retention.policy import STORES, Category, Policy, load_policy

POLICY = load_policy()  # the one file read at parse time: the policy next to the code


def build_daily_dag(policy: Policy, category: Category) -> Any:
    """One category's daily DAG; tasks use ``policy`` (tests pass a modified one)."""
    stores = [s for s in STORES if any(t.store == s for t in category.targets)]

    @dag(
        dag_id=f"retention_{category.name}",
        description=f"Daily purge of {category.name}: {category.retention.describe()}",
        doc_md=__doc__,
        schedule=CronTriggerTimetable("0 0 * * *", timezone=policy.timezone_name),  # midnight, policy zone
        start_date=pendulum.datetime(2000, 1, 1, tz=policy.timezone_name),  # before any data: a run dated earlier would silently do nothing
        catchup=False,
        max_active_runs=1,
        default_args=default_args(execution_timeout=timedelta(hours=2)),
        tags=["retention", "daily", category.name, *stores],
        params={
            "dry_run": Param(False, type="boolean", description="Count and audit, delete nothing."),
            "max_share": Param(
                0.5, type="number", minimum=0.01, maximum=1.0,
                description="Circuit breaker: refuse to delete more than this share of any target.",
            ),
            "allow_large_purge": Param(
                False, type="boolean", description="Let a run past the circuit breaker (needs a reason)."
            ),
            "tenant_min_records": Param(
                1000, type="integer", minimum=1,
                description="Circuit breaker per tenant: also refuse to delete more than max_share of one tenant's "
                            "records in a target, once that is at least this many records.",
            ),
            "override_reason": Param("", type="string", maxLength=500, description="Why the breaker is overridden."),
            "on_breaker_trip": Param(
                policy.circuit_breaker.on_trip, type="string", enum=["fail", "ask"],
                description="When the breaker trips: fail at once, or ask a person under Required actions "
                            "(Approve/Reject, recorded in the audit) and wait.",
            ),
        },
        render_template_as_native_obj=True,
    )
    def daily() -> None:
        @task(execution_timeout=timedelta(minutes=30))
        def plan() -> dict[str, Any]:
            from include.retention.daily import tasks

            return tasks.plan(policy, category.name, get_current_context())

        def batches_task(store: str) -> Any:
            @task(task_id=f"batches_{store}", execution_timeout=timedelta(minutes=5))
            def batches(the_plan: dict[str, Any]) -> list[list[dict[str, Any]]]:
                from include.retention.daily import tasks

                return tasks.store_batches(the_plan, store)

            return batches

        def purge_task(store: str) -> Any:
            @task(task_id=f"purge_{store}", pool=f"retention_{store}",
                  max_active_tis_per_dagrun=PARALLEL_PURGES_PER_RUN)
            def purge(batch: list[dict[str, Any]], the_plan: dict[str, Any],
                      approval: dict[str, Any]) -> list[dict[str, Any]]:
                from include.retention.daily import tasks

                return tasks.purge(policy, batch, the_plan, get_current_context(), approval)

            return purge

        @task(trigger_rule="none_failed")
        def verify(the_plan: dict[str, Any]) -> list[dict[str, Any]]:
            from include.retention.daily import tasks

            return tasks.verify(policy, the_plan, get_current_context())

        @task(trigger_rule="none_failed", outlets=[Asset(f"retention://{category.name}")])
        def summary(the_plan: dict[str, Any], verified: list[dict[str, Any]]) -> dict[str, Any]:
            from include.retention.daily import tasks

            return tasks.summary(the_plan, verified, get_current_context())

        planned = plan()
        # Waits only when the breaker tripped and the run asks for approval (daily/approval.py).
        approval = LargePurgeApproval(policy=policy)
        planned >> approval
        purges = []
        for s in stores:
            batched = batches_task(s)(planned)
            approval >> batched
            purges.append(purge_task(s).partial(the_plan=planned, approval=approval.output).expand(batch=batched))
        checked = verify(planned)
        for p in purges:
            p >> checked
        summary(planned, checked)

    return daily()


for _category in POLICY.categories.values():
    globals()[f"retention_{_category.name}"] = build_daily_dag(POLICY, _category)
