"""A whole local Airflow over the e2e stores: api-server (with the retention dashboard plugin),
scheduler (LocalExecutor), dag-processor and triggerer, each in its own process group.

For tests whose runs the real scheduler carries out (``test_requests_in_airflow.py``); one
Airflow per module, since starting one costs most of a minute here. The connections are the
session's private stores (the ``stores`` fixture: its databases, bucket, Redis db and keys),
so the dashboard reads the ledger the runs write.

Only ``deletion_requests`` is unpaused: the daily DAGs and the SLA monitor stay paused, so
nothing else runs. A cluster policy in the private home (``config/airflow_local_settings.py``)
turns the requests DAG's retries off, as ``conftest.load_dag`` does for ``dag.test()``: a
failed task fails at once instead of waiting minutes for its retry.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from include.retention.request_states import REQUESTS_DAG_ID
from tests.e2e.airflow_processes import QUICK_SETTINGS, AirflowProcesses
from tests.e2e.conftest import ROOT

RUN_TIMEOUT = 300.0  # seconds for one request run; about 10-40 s here, more on a busy machine
FINISHED = {"success", "failed"}
NO_RETRIES_POLICY = f'''"""Test harness only: the requests DAG fails a task at once, without retries."""


def task_policy(task):
    if task.dag_id == "{REQUESTS_DAG_ID}":
        task.retries = 0
'''


@dataclass
class LiveAirflow:
    """The running Airflow and an admin token for its REST API."""

    airflow: AirflowProcesses
    token: str

    @property
    def base(self) -> str:
        return self.airflow.base

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.airflow.call(method, path, body, self.token)

    def trigger(self, conf: dict[str, Any]) -> str:
        status, body = self.call("POST", f"/api/v2/dags/{REQUESTS_DAG_ID}/dagRuns", {"logical_date": None, "conf": conf})
        assert status == 200, body
        return str(body["dag_run_id"])

    def run(self, run_id: str) -> dict[str, Any]:
        status, body = self.call("GET", f"/api/v2/dags/{REQUESTS_DAG_ID}/dagRuns/{quote(run_id)}")
        assert status == 200, body
        return dict(body)

    def runs(self) -> list[dict[str, Any]]:
        status, body = self.call("GET", f"/api/v2/dags/{REQUESTS_DAG_ID}/dagRuns?order_by=-id&limit=50")
        assert status == 200, body
        return list(body["dag_runs"])

    def task_states(self, run_id: str) -> dict[str, str]:
        status, body = self.call("GET", f"/api/v2/dags/{REQUESTS_DAG_ID}/dagRuns/{quote(run_id)}/taskInstances")
        assert status == 200, body
        return {t["task_id"]: str(t["state"]) for t in body["task_instances"]}

    def wait_finished(self, run_id: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
        """The run once it is ``success`` or ``failed``; AssertionError with the logs after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run["state"] in FINISHED:
                return run
            time.sleep(1)
        raise AssertionError(f"run {run_id} not finished within {timeout:.0f} s: {self.task_states(run_id)}\n"
                             f"{self.diagnostics()}")

    def wait_task(self, run_id: str, task_id: str, states: set[str], timeout: float = RUN_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.task_states(run_id).get(task_id)
            if state in states:
                return str(state)
            time.sleep(1)
        raise AssertionError(f"{task_id} of {run_id} not in {states} within {timeout:.0f} s: "
                             f"{self.task_states(run_id)}\n{self.diagnostics()}")

    def task_log(self, run_id: str, task_id: str, try_number: int = 1) -> str:
        path = (f"/api/v2/dags/{REQUESTS_DAG_ID}/dagRuns/{quote(run_id)}/taskInstances/{task_id}/logs/{try_number}"
                "?full_content=true")
        status, body = self.call("GET", path)
        assert status == 200, body
        content = body.get("content") if isinstance(body, dict) else body
        return json.dumps(content)  # structured lines: the message, and the error's detail

    def diagnostics(self) -> str:
        parts = [f"{name} log tail:\n{self.airflow.log_tail(name, 2000)}" for name in ("scheduler", "api-server")]
        return "\n\n".join(parts)


def quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def wait_for_dag(airflow: AirflowProcesses, token: str, timeout: float = 180.0) -> None:
    """Until the dag-processor has parsed ``deletion_requests`` (the api-server then knows it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if airflow.call("GET", f"/api/v2/dags/{REQUESTS_DAG_ID}", token=token)[0] == 200:
            return
        time.sleep(0.5)
    raise AssertionError(f"{REQUESTS_DAG_ID} not parsed within {timeout:.0f} s: {airflow.log_tail('dag-processor')}")


@contextlib.contextmanager
def live_airflow_running(home: Path) -> Iterator[LiveAirflow]:
    """Start the four components over the stores already wired in this process's environment."""
    airflow = AirflowProcesses(home, {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),  # the retention dashboard
        "AIRFLOW__API__BASE_URL": "",  # set below, once the port is known
        **QUICK_SETTINGS,
    })
    airflow.env["AIRFLOW__API__BASE_URL"] = airflow.base
    # What a deployment defines for the SLA monitor: the register task notes a refusal on its run with it.
    airflow.env["AIRFLOW_CONN_RETENTION_AIRFLOW_API"] = json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": airflow.port, "login": "admin",
         "password": airflow.password})
    (home / "config").mkdir(exist_ok=True)
    (home / "config" / "airflow_local_settings.py").write_text(NO_RETRIES_POLICY)
    try:
        airflow.start_api_server()
        airflow.start("scheduler", "scheduler")
        airflow.start("dag-processor", "dag-processor")
        airflow.start("triggerer", "triggerer")
        airflow.wait_until_healthy()
        token = airflow.token()
        airflow.create_pools(token)
        wait_for_dag(airflow, token)
        status, body = airflow.call("PATCH", f"/api/v2/dags/{REQUESTS_DAG_ID}", {"is_paused": False}, token)
        assert status == 200, body
        yield LiveAirflow(airflow, token)
    finally:
        airflow.stop()
