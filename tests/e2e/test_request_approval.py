"""Four eyes on a termination, in a real Airflow: api-server, scheduler, dag-processor, triggerer.

Three Airflow users (simple auth manager): alice triggers terminations through the REST API;
the run waits at ``approve`` (``awaiting_input``) with the tenant and the counts in its
"Required actions" entry; bob approves or rejects through the HITL REST API
(``PATCH .../taskInstances/approve/-1/hitlDetails``). One Airflow serves the module's tests;
its policy is the packaged one with terminations needing an approval.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Iterator

import pytest

from devservers.policies import write_policy_variant
from include.retention.policy import POLICY_PATH_ENV
from include.retention.pools import STORE_POOLS
from include.retention.request_states import REQUESTS_DAG_ID
from tests.e2e.airflow_processes import QUICK_SETTINGS, AirflowProcesses
from include.retention.requests.intake import submit
from tests.e2e.conftest import Stores, World, base_conf

pytestmark = [pytest.mark.slow]

USERS = ("alice", "bob")
WAIT = 300.0  # seconds for a run to reach a state; 10-40 s on a quiet machine
NO_RETRIES = f'''"""Test harness only: the requests DAG fails a task at once, without retries."""


def task_policy(task):
    if task.dag_id == "{REQUESTS_DAG_ID}":
        task.retries = 0
'''


class Cluster:
    """The running Airflow, with a bearer token per user."""

    def __init__(self, airflow: AirflowProcesses, passwords: dict[str, str]) -> None:
        self.airflow = airflow
        self.tokens = {user: self._token(user, password) for user, password in passwords.items()}

    def _token(self, user: str, password: str) -> str:
        status, body = self.airflow.call("POST", "/auth/token", {"username": user, "password": password})
        assert status in (200, 201), (status, body)
        return str(body["access_token"])

    def call(self, user: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.airflow.call(method, path, body, self.tokens[user])

    def trigger(self, user: str, conf: dict[str, Any]) -> str:
        status, body = self.call(user, "POST", f"/api/v2/dags/{REQUESTS_DAG_ID}/dagRuns",
                                 {"logical_date": None, "conf": conf})
        assert status == 200, body
        assert body["triggering_user_name"] == user
        return str(body["dag_run_id"])

    def run_path(self, run_id: str) -> str:
        from urllib.parse import quote

        return f"/api/v2/dags/{REQUESTS_DAG_ID}/dagRuns/{quote(run_id, safe='')}"

    def task_states(self, run_id: str) -> dict[str, str]:
        status, body = self.call("bob", "GET", self.run_path(run_id) + "/taskInstances")
        assert status == 200, body
        return {t["task_id"]: str(t["state"]) for t in body["task_instances"]}

    def wait(self, run_id: str, task_id: str | None, states: set[str]) -> str:
        """Until the run (``task_id`` None) or one of its tasks is in ``states``."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if task_id is None:
                state = str(self.call("bob", "GET", self.run_path(run_id))[1]["state"])
            else:
                state = self.task_states(run_id).get(task_id, "")
            if state in states:
                return state
            time.sleep(1)
        raise AssertionError(f"{task_id or 'run'} of {run_id} not in {states} within {WAIT:.0f} s: "
                             f"{self.task_states(run_id)}\n{self.airflow.log_tail('scheduler', 2000)}")

    def task_log(self, run_id: str, task_id: str, try_number: int = 1) -> str:
        status, body = self.call("bob", "GET", self.run_path(run_id)
                                 + f"/taskInstances/{task_id}/logs/{try_number}?full_content=true")
        return json.dumps(body.get("content") if isinstance(body, dict) else body)[-4000:]

    def wait_parked(self, run_id: str) -> None:
        """Until ``approve`` waits for its answer and the process that parked it has ended.

        Airflow 3.3.2 fails an answer that comes within about a second of the park: the
        scheduler re-queues the task, then hears the parked process end with "success" and
        marks the queued try FAILED ("finished with state success, but the task instance's
        state attribute is queued"). No person answers that fast; the test waits as long.
        """
        self.wait(run_id, "approve", {"awaiting_input"})
        parked = (f"Received executor event with state success for task instance TaskInstanceKey("
                  f"dag_id='{REQUESTS_DAG_ID}', task_id='approve', run_id='{run_id}'")
        deadline = time.monotonic() + WAIT
        while parked not in self.airflow.log_tail("scheduler", 10**8):
            assert time.monotonic() < deadline, self.airflow.log_tail("scheduler", 2000)
            time.sleep(0.5)

    def hitl(self, run_id: str) -> dict[str, Any]:
        status, body = self.call("bob", "GET", self.run_path(run_id) + "/taskInstances/approve/-1/hitlDetails")
        assert status == 200, body
        return dict(body)

    def answer(self, user: str, run_id: str, option: str, reason: str) -> tuple[int, Any]:
        return self.call(user, "PATCH", self.run_path(run_id) + "/taskInstances/approve/-1/hitlDetails",
                         {"chosen_options": [option], "params_input": {"reason": reason}})


@pytest.fixture(scope="module")
def cluster(stores: Stores, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("airflow-approval")
    policy = write_policy_variant(home / "policy.yaml", {"request_approval": {"required_for": ["termination"],
                                                                             "timeout_minutes": 30}})
    airflow = AirflowProcesses(home, {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:admin" for u in ("admin", *USERS)),
        **QUICK_SETTINGS,
        POLICY_PATH_ENV: str(policy),
    })
    passwords = {"admin": airflow.password, **{user: secrets.token_urlsafe(12) for user in USERS}}
    (home / "passwords.json").write_text(json.dumps(passwords))
    (home / "config").mkdir(exist_ok=True)
    (home / "config" / "airflow_local_settings.py").write_text(NO_RETRIES)
    try:
        airflow.start_api_server()
        for component in ("scheduler", "dag-processor", "triggerer"):
            airflow.start(component, component)
        airflow.wait_until_healthy()
        running = Cluster(airflow, passwords)
        for name in STORE_POOLS:
            status, body = running.call("alice", "POST", "/api/v2/pools", {"name": name, "slots": 4})
            assert status in (200, 201), body
        deadline = time.monotonic() + 180
        while running.call("alice", "GET", f"/api/v2/dags/{REQUESTS_DAG_ID}")[0] != 200:
            assert time.monotonic() < deadline, airflow.log_tail("dag-processor")
            time.sleep(0.5)
        status, body = running.call("alice", "PATCH", f"/api/v2/dags/{REQUESTS_DAG_ID}", {"is_paused": False})
        assert status == 200, body
        yield running
    finally:
        airflow.stop()


def request_of(reference: str) -> Any:
    from include.retention.ledger.requests import find_by_reference

    request = find_by_reference(reference)
    assert request is not None, reference
    return request


def approval_rows(request_id: str) -> list[Any]:
    """The answers recorded for the request, after checking its one ask names alice as the trigger."""
    from include.retention.ledger.approvals import decisions, request_scope

    rows = decisions(request_scope(request_id))
    asked = [(r.outcome, r.triggered_by, r.responded_by) for r in rows if r.outcome == "asked"]
    assert asked == [("asked", "alice", None)], rows
    return [r for r in rows if r.outcome != "asked"]


def waiting_termination(cluster: Cluster, world: World, label: str) -> tuple[str, str]:
    """alice triggers the termination of the world's tenant; the run waits at ``approve``."""
    reference = f"APR-{world.tenant}-{label}"
    run_id = cluster.trigger("alice", base_conf(request_type="termination", tenant_id=world.tenant,
                                                reference=reference))
    cluster.wait_parked(run_id)
    assert request_of(reference).state == "awaiting_approval"
    assert world.rows("agents") > 0  # nothing is deleted while the request waits
    return reference, run_id


def test_another_user_approves_and_the_termination_runs(cluster: Cluster, world: World) -> None:
    reference, run_id = waiting_termination(cluster, world, "ok")
    shown = cluster.hitl(run_id)
    assert shown["subject"].startswith(f"Approve the termination of tenant {world.tenant}?")
    assert f"- **Tenant:** {world.tenant}" in shown["body"] and "| agent_info |" in shown["body"]
    assert "- **Records to delete:** " in shown["body"] and "Nothing has been deleted yet" in shown["body"]
    assert "- **Triggered by:** alice" in shown["body"] and shown["options"] == ["Approve", "Reject"]
    assert cluster.task_states(run_id)["purge_mysql"] in ("None", "none", "")  # the purges wait behind it

    status, body = cluster.answer("bob", run_id, "Approve", "ticket 42 checked")

    assert status == 200, body
    assert cluster.wait(run_id, None, {"success", "failed"}) == "success", cluster.task_states(run_id)
    request = request_of(reference)
    assert request.state == "completed" and world.rows("agents") == 0
    [row] = approval_rows(request.request_id)
    assert (row.outcome, row.triggered_by, row.responded_by, row.reason) == (
        "approved", "alice", "bob", "ticket 42 checked")
    from include.retention.certificates.issue import load
    from include.retention.certificates.render import render_markdown

    stored = load(request.request_id)
    assert stored is not None
    approval = stored.document["certificate"]["approval"]
    assert (approval["approved_by"], approval["triggered_by"], approval["reason"]) == ("bob", "alice",
                                                                                       "ticket 42 checked")
    assert f"- **Approved:** approved by bob at {approval['approved_at']}" in render_markdown(stored.document)


def test_a_self_approval_is_refused_and_nothing_is_deleted(cluster: Cluster, world: World) -> None:
    agents = world.rows("agents")
    reference, run_id = waiting_termination(cluster, world, "self")

    status, body = cluster.answer("alice", run_id, "Approve", "looks fine to me")

    assert status == 200, body  # Airflow takes the answer; the approve task refuses it
    assert cluster.wait(run_id, None, {"success", "failed"}) == "failed"
    states = cluster.task_states(run_id)
    assert states["approve"] == "failed" and states["purge_mysql"] == "upstream_failed", states
    request = request_of(reference)
    assert request.state == "failed" and request.failed_step == "approve"
    assert "alice triggered this run and cannot approve it" in str(request.error), cluster.task_log(run_id, "approve")
    assert "a new run of the request asks again" in str(request.error)
    assert world.rows("agents") == agents
    [row] = approval_rows(request.request_id)
    assert (row.outcome, row.responded_by) == ("refused", "alice")


def test_a_rejection_ends_the_request_and_nothing_is_deleted(cluster: Cluster, world: World) -> None:
    agents = world.rows("agents")
    reference, run_id = waiting_termination(cluster, world, "no")

    status, body = cluster.answer("bob", run_id, "Reject", "the contract runs until March")

    assert status == 200, body
    assert cluster.wait(run_id, None, {"success", "failed"}) == "failed"
    request = request_of(reference)
    assert request.state == "rejected" and "the contract runs until March" in str(request.error), (
        request.error, cluster.task_log(run_id, "approve"))
    assert world.rows("agents") == agents
    [row] = approval_rows(request.request_id)
    assert (row.outcome, row.responded_by) == ("rejected", "bob")


def test_an_unanswered_approval_fails_the_request_and_mails_the_sla_address(world: World, inbox: Any) -> None:
    """No answer in time: the request stays open (failed at ``approve``) and the SLA address hears of it."""
    from types import SimpleNamespace

    from include.retention import sla
    from include.retention.approvals import TIMED_OUT, Decision
    from include.retention.crypto import RetentionCrypto
    from include.retention.ledger.requests import list_events, list_requests, transition
    from include.retention.policy import load_policy
    from include.retention.request_states import OPEN_STATES
    from include.retention.requests.approval import build_ask, settle, waiting

    policy = load_policy()
    run_after = datetime.now(UTC)
    run_id = f"manual__approval_timeout_{world.tenant}"
    conf = base_conf(request_type="termination", tenant_id=world.tenant, reference=f"APR-{world.tenant}-late")
    request = submit(policy, {**conf, "received_at": None}, run_after=run_after, run_id=run_id,
                     crypto=RetentionCrypto.from_connection()).request
    transition(request.request_id, "planned", run_id=run_id)
    the_plan = {"request_id": request.request_id, "mode": "execute", "request_type": "termination",
                "tenant_id": world.tenant, "due_at": request.due_at.isoformat(),
                "steps": [{"step": "agent_info.agents", "store": "mysql", "planned": world.rows("agents")}]}
    context = {"run_id": run_id, "dag_run": SimpleNamespace(run_after=run_after, triggering_user_name="alice")}
    ask = build_ask(policy, the_plan, "alice")
    waiting(policy, context, ask)

    waiting_now = list_requests(states=OPEN_STATES, mode="execute", tenant_id=world.tenant)
    owed = sla.classify(waiting_now, run_after, warning_days=policy.sla_warning_days, tz=policy.timezone)
    assert [r.state for r in waiting_now] == ["awaiting_approval"] and owed.open_requests == 1

    settle(policy, context, ask, Decision(TIMED_OUT, "alice", reason="no answer within 0:30:00"))

    [after] = list_requests(tenant_id=world.tenant)
    assert (after.state, after.failed_step) == ("failed", "approve") and after.state in OPEN_STATES
    assert "no approval: no answer within 0:30:00" in str(after.error) and after.due_at == request.due_at
    assert any(e.event == "approval" and "timed_out" in str(e.message) for e in list_events(request.request_id))
    [(subject, body)] = inbox.about(request.request_id)
    assert "was not approved in time" in subject and "nothing was deleted" in body
    assert world.tenant not in subject + body  # the e-mail names the request, nothing else
