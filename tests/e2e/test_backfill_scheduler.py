"""Outage and backfill with the real scheduler: ``airflow backfill create`` over the 10 days
D-9 .. D (D = today in the policy zone), executed by a running scheduler with the LocalExecutor.

A private ``AIRFLOW_HOME`` (copy of the migrated metadata DB, the four store pools,
``parallelism=4``) runs ``api-server`` (also the Execution API of the task runners),
``scheduler`` and ``dag-processor``, each in its own process group, stopped by the fixture
before the assertions (and on any failure). The connections point at a private world on the
shared MariaDB and S3 server, seeded by ``test_daily_dags.seeded_world`` while Airflow starts:
one normal tenant, one on legal hold and one with extended retention, 7 months of history
(call_data is MySQL rows plus COS recordings and backups).

The backfill is created with the command the DAG's ``doc_md`` and the README give an operator:
dates as midnight in the policy zone (a bare date is midnight UTC, which shifts a daily
midnight-Singapore schedule by one run) and ``--max-active-runs 1`` (a backfill ignores the
DAG's own ``max_active_runs``; its default is 10 concurrent runs).
"""

from __future__ import annotations

import sqlite3
import time as clock
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Iterator

import pytest

from include.retention.policy import Policy
from tests.e2e.airflow_processes import AirflowProcesses
from tests.e2e.test_daily_dags import (
    EXTENDED,
    HELD,
    NORMAL,
    audit_rows,
    expected_after,
    new_namespace,
    only,
    seeded_world,
    snapshot,
)

pytestmark = [pytest.mark.servers, pytest.mark.slow]

DAG_ID = "retention_call_data"
DAYS = 10
# One tenant of each kind, and history just long enough that the first day already has
# something expired: every run lists fewer prefixes, and seeding is quick.
TENANTS = (NORMAL[0], EXTENDED, HELD)
MONTHS = 7
RUNS_TIMEOUT = 600.0  # seconds for all runs to finish; 150 s measured on a busy 2-core machine
TERMINAL = {"success", "failed"}


@dataclass
class Backfill:
    """What the backfill did, gathered before the Airflow processes stopped."""

    days: list[date]
    runs: list[dict[str, Any]]  # the DAG's runs from the REST API, in logical-date order
    before: dict[str, Counter[tuple[str, str]]]
    after: dict[str, Counter[tuple[str, str]]]
    airflow: AirflowProcesses


def diagnostics(airflow: AirflowProcesses) -> str:
    """For a failure message: the scheduler's log tail and the tails of task logs with an error."""
    parts = [f"scheduler log tail:\n{airflow.log_tail('scheduler')}"]
    for path in sorted((airflow.home / "logs").rglob("*.log")):
        text = path.read_text(errors="replace")
        if '"level":"error"' in text or "ERROR" in text:
            parts.append(f"{path.relative_to(airflow.home)}:\n{text[-1500:]}")
    return "\n\n".join(parts)[-8000:]


def midnight(day: date, policy: Policy) -> str:
    return datetime.combine(day, time.min, tzinfo=policy.timezone).isoformat()


def dag_runs(airflow: AirflowProcesses, token: str) -> list[dict[str, Any]]:
    status, body = airflow.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=100&order_by=logical_date", token=token)
    assert status == 200, body
    return list(body["dag_runs"])


def wait_for_dag(airflow: AirflowProcesses, timeout: float = 180.0) -> None:
    """Until the dag-processor has stored the serialized DAG (read from the metadata DB, so
    that the backfill can be created before the api-server answers)."""
    deadline = clock.monotonic() + timeout
    while clock.monotonic() < deadline:
        with closing(sqlite3.connect(f"file:{airflow.home / 'airflow.db'}?mode=ro", uri=True)) as db:
            if db.execute("SELECT 1 FROM serialized_dag WHERE dag_id = ?", (DAG_ID,)).fetchone():
                return
        clock.sleep(0.5)
    raise AssertionError(f"{DAG_ID} was not parsed within {timeout:.0f} s: {airflow.log_tail('dag-processor')}")


def create_backfill(airflow: AirflowProcesses, *args: str, attempts: int = 3) -> None:
    """``airflow backfill create``; again when SQLite was locked by another component meanwhile
    (the metadata DB of this harness is SQLite: a deployment's PostgreSQL does not lock so)."""
    for attempt in range(1, attempts + 1):
        try:
            airflow.cli("backfill", "create", *args)
            return
        except AssertionError as exc:
            if "database is locked" not in str(exc) or attempt == attempts:
                raise
            clock.sleep(5)


@pytest.fixture(scope="module")
def backfill(servers: dict[str, Any], policy: Policy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backfill]:
    from devservers import connections

    # D is today in the policy zone, read now (not once per session): had a session crossed
    # midnight there, unpausing would also start a scheduled run for the new day.
    today = datetime.now(policy.timezone).date()
    days = [today - timedelta(days=n) for n in range(DAYS - 1, -1, -1)]
    ns = new_namespace()
    airflow = AirflowProcesses(tmp_path_factory.mktemp("airflow-backfill"), {
        **connections.airflow_connections(servers, ns),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",  # parse once: the files do not change
    })
    # Unwinds in reverse: the seeding thread is joined, Airflow stops, then the world is dropped.
    with ExitStack() as stack, ThreadPoolExecutor(1) as seeder:
        stack.callback(airflow.stop)
        airflow.start_api_server()
        airflow.start("scheduler", "scheduler")
        airflow.start("dag-processor", "dag-processor")
        seeding = seeder.submit(stack.enter_context,
                                seeded_world(servers, today, ns=ns, tenants=TENANTS, months=MONTHS))
        wait_for_dag(airflow)
        airflow.wait_until_healthy()
        # Created while the DAG is still paused, so that unpausing it does not also start
        # the scheduled run for D: its logical date is taken by the backfill's run.
        create_backfill(airflow, "--dag-id", DAG_ID, "--from-date", midnight(days[0], policy),
                        "--to-date", midnight(days[-1], policy), "--max-active-runs", "1")
        token = airflow.token()
        airflow.create_pools(token)
        seeding.result()
        stack.callback(airflow.stop)
        before = snapshot(policy, ns)
        status, body = airflow.call("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False}, token)
        assert status == 200, body

        deadline = clock.monotonic() + RUNS_TIMEOUT
        runs = dag_runs(airflow, token)
        while not (len(runs) >= DAYS and all(r["state"] in TERMINAL for r in runs)):
            if clock.monotonic() > deadline:
                states = Counter(str(r["state"]) for r in runs)
                raise AssertionError(f"runs not finished within {RUNS_TIMEOUT:.0f} s ({dict(states)}):\n"
                                     f"{diagnostics(airflow)}")
            clock.sleep(2)
            runs = dag_runs(airflow, token)
        airflow.stop()  # before the assertions: the stores are read at rest
        yield Backfill(days, runs, before, snapshot(policy, ns), airflow)


# --------------------------------------------------------------------------- tests


def test_every_day_ran_once_as_a_backfill_run_in_date_order(backfill: Backfill, policy: Policy) -> None:
    runs = backfill.runs
    assert [r["state"] for r in runs] == ["success"] * DAYS, diagnostics(backfill.airflow)
    assert all(r["run_type"] == "backfill" and r["dag_run_id"].startswith("backfill__") for r in runs), runs
    as_of = [datetime.fromisoformat(r["data_interval_end"]).astimezone(policy.timezone) for r in runs]
    assert [(d.date(), d.time()) for d in as_of] == [(day, time.min) for day in backfill.days]
    # --max-active-runs 1: each run started after the previous one ended.
    for earlier, later in zip(runs, runs[1:]):
        assert later["start_date"] >= earlier["end_date"], (earlier, later)


def test_the_stores_end_at_the_policy_state_of_the_last_day(backfill: Backfill, policy: Policy) -> None:
    before, after = backfill.before, backfill.after
    assert only(after, "call_data") == only(expected_after(policy, before, backfill.days[-1]), "call_data")
    assert {k: v for k, v in after.items() if not k.startswith("call_data.")} == {
        k: v for k, v in before.items() if not k.startswith("call_data.")
    }, "only call_data's DAG ran"
    for name in ("call_data.call_records", "call_data.recordings"):
        assert {k: v for k, v in after[name].items() if k[0] in (HELD, EXTENDED)} == {
            k: v for k, v in before[name].items() if k[0] in (HELD, EXTENDED)
        }, f"{name}: held and extended tenants keep everything"
        assert sum(v for k, v in after[name].items() if k[0] in NORMAL) < sum(
            v for k, v in before[name].items() if k[0] in NORMAL
        ), f"{name}: normal tenants lost their expired days"


def test_the_audit_counts_each_deletion_once(backfill: Backfill, policy: Policy) -> None:
    """Each run deleted exactly what expired on its own day: what earlier runs deleted is not
    counted again, and the audit's sum over all runs is what left the stores."""
    before, after = only(backfill.before, "call_data"), only(backfill.after, "call_data")
    previous = before
    deleted_by_target: Counter[str] = Counter()
    for day, run in zip(backfill.days, backfill.runs):
        rows = audit_rows(run["dag_run_id"])
        assert rows, f"no audit rows for {run['dag_run_id']}: {diagnostics(backfill.airflow)}"
        assert {(r["outcome"], bool(r["dry_run"])) for r in rows} == {("ok", False)}, rows
        deleted: Counter[str] = Counter()
        for r in rows:
            deleted[f"call_data.{r['target']}"] += int(r["deleted"])
        expected = only(expected_after(policy, before, day), "call_data")
        newly_expired = Counter({name: sum(previous[name].values()) - sum(expected[name].values()) for name in before})
        assert +deleted == +newly_expired, f"run for {day}"
        deleted_by_target += deleted
        previous = expected
    removed = Counter({name: sum(before[name].values()) - sum(after[name].values()) for name in before})
    assert deleted_by_target == +removed
    assert sum(removed.values()) > 0
