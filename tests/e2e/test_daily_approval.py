"""A large daily purge waits for a person: the circuit breaker's approval, on a real Airflow.

The policy here has a typo (call data and analytics kept 1 month instead of 6) and
``circuit_breaker.on_trip: ask``. The scheduler runs each daily DAG once unpaused (its latest
scheduled run); ``plan`` finds far more than half of the targets expired, and ``approve``
waits under "Required actions". Through the REST API, as an operator would:

- approved with a reason: the purges run, the end state is the (typo) policy's, and every
  audit row of the run names the approver and the reason;
- rejected: the run fails and nothing is deleted.
"""

from __future__ import annotations

import urllib.parse
from datetime import date, datetime
from typing import Any, Iterator

import pytest
import yaml

from include.retention.policy import DEFAULT_POLICY_PATH, Policy, load_policy
from include.retention.timeutil import local_day, wall_clock
from tests.e2e.live_airflow import LiveAirflow, live_airflow_running
from tests.e2e.test_daily_dags import expected_after, only, seeded_world, snapshot

pytestmark = [pytest.mark.servers, pytest.mark.slow]

RUN_TIMEOUT = 400.0


@pytest.fixture(scope="module")
def typo_policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    doc = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    for category in ("call_data", "call_analytics"):
        doc["categories"][category]["retention"] = {"months": 1, "extendable": True}  # typo: 1 instead of 6
    doc["circuit_breaker"] = {"on_trip": "ask", "approval_timeout_minutes": 30, "approvers": []}
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_policy(path)


@pytest.fixture(scope="module")
def world(servers, airflow_db, typo_policy: Policy) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    today = local_day(wall_clock(), typo_policy.timezone)  # the scheduler's latest run is for today
    # 6 months of history (not 9: quicker to seed): the typo (1 month) expires 5/6 of each of the
    # four normal tenants' records, over half of every target although two tenants keep theirs.
    with seeded_world(servers, today, months=6) as seeded:
        yield seeded


@pytest.fixture(scope="module")
def airflow(world: dict[str, Any], typo_policy: Policy, tmp_path_factory: pytest.TempPathFactory,
            ) -> Iterator[LiveAirflow]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RETENTION_POLICY_PATH", str(typo_policy.path))  # the DAG files read it when parsed
        with live_airflow_running(tmp_path_factory.mktemp("airflow-approval")) as live:
            yield live


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def scheduled_run(airflow: LiveAirflow, dag_id: str) -> str:
    """Unpause ``dag_id``; the scheduler creates its latest scheduled run. Its run id."""
    import time

    status, body = airflow.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    assert status == 200, body
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        status, body = airflow.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=-id&limit=5")
        assert status == 200, body
        if body["dag_runs"]:
            return str(body["dag_runs"][0]["dag_run_id"])
        time.sleep(1)
    raise AssertionError(f"no run of {dag_id} within {RUN_TIMEOUT:.0f} s\n{airflow.diagnostics()}")


def wait_for_question(airflow: LiveAirflow, dag_id: str, run_id: str) -> dict[str, Any]:
    """The approve task's pending question, once it waits."""
    import time

    path = f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/approve/-1/hitlDetails"
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        status, body = airflow.call("GET", path)
        if status == 200 and body and not body.get("response_received") \
                and task_states(airflow, dag_id, run_id).get("approve") == "awaiting_input":
            # Airflow 3.3.2 fails an answer that comes within about a second of the park (the
            # scheduler re-queues the task, then hears the parked process end with success):
            # wait until the scheduler has heard it, as a person always would.
            parked = ("Received executor event with state success for task instance TaskInstanceKey("
                      f"dag_id='{dag_id}', task_id='approve', run_id='{run_id}'")
            while parked not in airflow.airflow.log_tail("scheduler", 10**8):
                assert time.monotonic() < deadline, airflow.airflow.log_tail("scheduler", 2000)
                time.sleep(0.5)
            return dict(body)
        states = task_states(airflow, dag_id, run_id)
        assert states.get("plan") != "failed" and states.get("approve") != "failed", states
        time.sleep(1)
    raise AssertionError(f"approve of {run_id} did not ask within {RUN_TIMEOUT:.0f} s: "
                         f"{task_states(airflow, dag_id, run_id)}\n{airflow.diagnostics()}")


def answer(airflow: LiveAirflow, dag_id: str, run_id: str, option: str, reason: str) -> None:
    status, body = airflow.call("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/approve/-1/hitlDetails",
                                {"chosen_options": [option], "params_input": {"reason": reason}})
    assert status == 200, body


def task_states(airflow: LiveAirflow, dag_id: str, run_id: str) -> dict[str, str]:
    status, body = airflow.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances?limit=100")
    assert status == 200, body
    return {t["task_id"]: str(t["state"]) for t in body["task_instances"] if t.get("map_index", -1) in (-1, 0)}


def wait_finished(airflow: LiveAirflow, dag_id: str, run_id: str) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        status, body = airflow.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}")
        assert status == 200, body
        if body["state"] in ("success", "failed"):
            return dict(body)
        time.sleep(1)
    raise AssertionError(f"{run_id} not finished: {task_states(airflow, dag_id, run_id)}\n{airflow.diagnostics()}")


def run_day(airflow: LiveAirflow, dag_id: str, run_id: str) -> date:
    status, body = airflow.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}")
    assert status == 200, body
    return local_day(datetime.fromisoformat(body["data_interval_end"]), load_policy().timezone)


def audit_of(dag_id: str, run_id: str) -> list[dict[str, Any]]:
    from include.retention.ledger.db import connect, plain_cursor

    with connect() as conn:
        cur = plain_cursor(conn)
        cur.execute("SELECT target, deleted, dry_run, outcome, override_reason, approved_by FROM purge_audit "
                    "WHERE dag_id = %s AND run_id = %s", (dag_id, run_id))
        cols = ["target", "deleted", "dry_run", "outcome", "override_reason", "approved_by"]
        return [dict(zip(cols, row)) for row in cur.fetchall()]


def decisions(scope_prefix: str) -> list[tuple[str, str | None, str | None]]:
    from include.retention.ledger.db import connect, plain_cursor

    with connect() as conn:
        cur = plain_cursor(conn)
        cur.execute("SELECT outcome, responded_by, reason FROM approvals WHERE scope LIKE %s ORDER BY id",
                    (scope_prefix + "%",))
        return [(str(o), r, why) for o, r, why in cur.fetchall()]


def test_an_approved_large_purge_runs_and_the_audit_names_the_approver(
    airflow: LiveAirflow, world: dict[str, Any], typo_policy: Policy
) -> None:
    dag_id = "retention_call_data"
    before = snapshot(typo_policy, world["ns"])
    run_id = scheduled_run(airflow, dag_id)
    question = wait_for_question(airflow, dag_id, run_id)
    assert "call_data.call_records" in question["body"] and "Would delete" in question["body"]
    assert question["options"] == ["Approve", "Reject"]
    assert snapshot(typo_policy, world["ns"]) == before, "nothing is deleted while it waits"

    answer(airflow, dag_id, run_id, "Approve", "first run after the migration, checked with the DPO")
    finished = wait_finished(airflow, dag_id, run_id)

    assert finished["state"] == "success", task_states(airflow, dag_id, run_id)
    day = run_day(airflow, dag_id, run_id)
    assert only(snapshot(typo_policy, world["ns"]), "call_data") == only(expected_after(typo_policy, before, day),
                                                                           "call_data")
    rows = [r for r in audit_of(dag_id, run_id) if not r["dry_run"]]
    assert rows and sum(r["deleted"] for r in rows) > 0
    assert all(r["approved_by"] == "admin" and r["outcome"] == "ok" for r in rows), rows
    assert all(r["override_reason"] == "approved by admin: first run after the migration, checked with the DPO"
               for r in rows)
    assert decisions(f"daily:call_data:{run_id}") == [
        ("asked", None, None), ("approved", "admin", "first run after the migration, checked with the DPO")]


def test_a_rejected_large_purge_deletes_nothing(airflow: LiveAirflow, world: dict[str, Any],
                                                typo_policy: Policy) -> None:
    dag_id = "retention_call_analytics"
    before = snapshot(typo_policy, world["ns"])
    run_id = scheduled_run(airflow, dag_id)
    wait_for_question(airflow, dag_id, run_id)

    answer(airflow, dag_id, run_id, "Reject", "the policy says 6 months: a typo")
    finished = wait_finished(airflow, dag_id, run_id)

    assert finished["state"] == "failed"
    states = task_states(airflow, dag_id, run_id)
    assert states["approve"] == "failed" and states["plan"] == "success", states
    assert snapshot(typo_policy, world["ns"]) == before
    assert audit_of(dag_id, run_id) == []
    assert decisions(f"daily:call_analytics:{run_id}") == [
        ("asked", None, None), ("rejected", "admin", "the policy says 6 months: a typo")]
