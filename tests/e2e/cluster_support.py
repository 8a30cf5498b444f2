"""The local distributed Airflow of ``scripts/cluster.sh`` for e2e tests, over a test's stores.

``running_cluster`` starts what ``devservers.cluster.up`` starts (PostgreSQL metadata DB of
its own, Redis broker db 15, api-server, scheduler, dag-processor, triggerer, two Celery
workers) in a private home, with the test's ``AIRFLOW_CONN_*`` and a few settings a test
needs and a deployment would not choose:

- a task instance whose worker stops heartbeating is failed after 20 s (default 300 s);
- a failed task is retried after 2 s (the DAGs' own delay is 5 minutes, growing), through a
  cluster policy in the home's ``config/airflow_local_settings.py``; the retry count stays;
- the worker's supervisor wakes every second (default 5 s), so short tasks finish sooner;
- the scheduler looks for orphaned task instances every 10 s (default 300 s).

:class:`Cluster` is its REST API as an operator uses it (trigger, unpause, read task
instances), plus the faults: SIGKILL a component's process group, start it again.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as day_start
from pathlib import Path
from typing import Any, Iterator

from devservers import airflow_ui, cluster
from devservers.procs import Endpoint, spare_port, wait_for_port
from tests.e2e.airflow_processes import QUICK_SETTINGS

RUN_TIMEOUT = 600.0  # seconds for a run; tens of seconds here, more on a busy machine
FINISHED = {"success", "failed"}

TEST_SETTINGS = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
    **QUICK_SETTINGS,
}
QUICK_RETRY_POLICY = '''"""Test harness only: retry a failed task after 2 s (the DAGs wait minutes), same count."""
from datetime import timedelta


def task_policy(task):
    task.retry_delay = timedelta(seconds=2)
    task.retry_exponential_backoff = False
'''


def quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


@dataclass
class Cluster:
    """A running cluster and an admin token for its REST API."""

    instance: airflow_ui.Instance
    token: str
    #: the Celery queue its tasks go through (a cluster of its own per test session: the
    #: broker's Redis db is the one ``cluster.sh up`` uses too)
    queue: str

    @property
    def home(self) -> Path:
        return Path(self.instance.home)

    @property
    def workers(self) -> tuple[str, ...]:
        return tuple(self.instance.workers)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, answer = airflow_ui.rest(self.instance, method, path, body, self.token)
        if status == 401:  # the token expired during a long module: log in again
            self.token = airflow_ui.admin_token(self.instance)
            status, answer = airflow_ui.rest(self.instance, method, path, body, self.token)
        return status, answer

    # ------------------------------------------------------------------ runs

    def wait_parsed(self, dag_id: str, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.call("GET", f"/api/v2/dags/{dag_id}")[0] == 200:
                return
            time.sleep(0.5)
        raise AssertionError(f"{dag_id} not parsed within {timeout:.0f} s\n{self.diagnostics()}")

    def unpause(self, dag_id: str) -> None:
        self.wait_parsed(dag_id)
        status, body = self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        assert status == 200, body

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, logical_date: str | None = None) -> str:
        self.wait_parsed(dag_id)
        status, body = self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                                 {"logical_date": logical_date, "conf": conf or {}})
        assert status == 200, body
        return str(body["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        status, body = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}")
        assert status == 200, body
        return dict(body)

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        status, body = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100&order_by=logical_date")
        assert status == 200, body
        return list(body["dag_runs"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run, mapped ones included (one row per map index)."""
        status, body = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances?limit=1000")
        assert status == 200, body
        return list(body["task_instances"])

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        """Every try of one task instance (``/tries``: the earlier ones, then the current)."""
        path = (f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances/{task_id}"
                + (f"/{map_index}" if map_index >= 0 else "") + "/tries")
        status, body = self.call("GET", path)
        assert status == 200, body
        return list(body["task_instances"])

    def states(self, dag_id: str, run_id: str) -> dict[str, str]:
        return {f"{t['task_id']}[{t['map_index']}]" if t["map_index"] >= 0 else t["task_id"]: str(t["state"])
                for t in self.task_instances(dag_id, run_id)}

    def wait_finished(self, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(dag_id, run_id)
            if run["state"] in FINISHED:
                return run
            time.sleep(1)
        raise AssertionError(f"{dag_id} {run_id} not finished within {timeout:.0f} s: {self.states(dag_id, run_id)}"
                             f"\n{self.diagnostics()}")

    def wait_running(self, dag_id: str, run_id: str, task_id: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
        """The first task instance of ``task_id`` (any map index) once it runs on a worker."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ti in self.task_instances(dag_id, run_id):
                if ti["task_id"] == task_id and ti["state"] == "running" and ti.get("hostname"):
                    return ti
            time.sleep(0.3)
        raise AssertionError(f"{task_id} of {run_id} did not run within {timeout:.0f} s: {self.states(dag_id, run_id)}")

    # ------------------------------------------------------------------ faults

    def kill(self, component: str) -> None:
        """SIGKILL the component and every process below it, as when its host is lost (a
        worker's task runners have process groups of their own: they die too)."""
        airflow_ui.stop_component(self.home, component, lose_host=True)

    def start(self, component: str) -> None:
        """Start a component again, with the same environment, and wait until it serves."""
        offsets = {component: airflow_ui.log_size(self.home, component)} if component in self.workers else {}
        airflow_ui.start_component(self.instance, component)
        airflow_ui.wait_until_healthy(self.instance, log_offsets=offsets)

    def move_to_broker(self, url: str) -> None:
        """Stop the scheduler and the workers and start them again on another Celery broker, as
        an operator moving from Redis to RabbitMQ does; back once both workers consume."""
        moved = ("scheduler", *self.workers)
        for component in moved:
            airflow_ui.stop_component(self.home, component)
        self.instance = dataclasses.replace(self.instance, broker_url=url)
        offsets = {worker: airflow_ui.log_size(self.home, worker) for worker in self.workers}
        for component in moved:
            airflow_ui.start_component(self.instance, component)
        airflow_ui.wait_until_healthy(self.instance, log_offsets=offsets)

    def log_tail(self, component: str, chars: int = 3000) -> str:
        path = airflow_ui.log_path(self.home, component)
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def diagnostics(self) -> str:
        return "\n\n".join(f"{c} log tail:\n{self.log_tail(c, 1500)}" for c in ("scheduler", *self.workers))


def midnight(day: date, tz: Any) -> str:
    """A daily DAG's logical date for ``day``: midnight in the policy zone."""
    return datetime.combine(day, day_start.min, tzinfo=tz).isoformat()


@contextmanager
def running_cluster(home: Path, env: dict[str, str], tag: str) -> Iterator[Cluster]:
    """Start a cluster in ``home`` over the stores ``env`` wires (``AIRFLOW_CONN_*``); stopped
    on exit, its metadata database dropped."""
    from devservers import postgres

    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "airflow_local_settings.py").write_text(QUICK_RETRY_POLICY)
    database = f"retention_airflow_e2e_{tag}"
    queue = f"retention_e2e_{tag}"
    try:
        instance = cluster.up(home, namespace="test", port=spare_port(), database=database, fresh=True,
                              extra={**TEST_SETTINGS, "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue, **env},
                              unpause=False)
        yield Cluster(instance, airflow_ui.admin_token(instance), queue)
    finally:
        airflow_ui.down(home)
        postgres.drop_database(postgres.ensure(), database)


#: The cluster world's Redis db: its tenants' keys never meet another session's (db 9) while
#: both run at once (``scripts/test.sh`` runs this module beside the rest of the suite).
CLUSTER_REDIS_DB = 10


@contextmanager
def private_elasticsearch(shared: Endpoint, home: Path) -> Iterator[Endpoint]:
    """An Elasticsearch stand-in of the cluster world's own, on a spare port, so that its
    per-tenant log indices never meet those of a session running at the same time; the shared
    endpoint itself when it is a real cluster (``ELASTICSEARCH_URL``: one cluster for all)."""
    if shared.extra.get("kind") != "stand-in":
        yield shared
        return
    port = spare_port()
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "es-standin.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "devservers.es_standin_server", "--port", str(port)],
                                cwd=Path(__file__).resolve().parents[2], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, seconds=30, what="the cluster world's Elasticsearch stand-in", log=home / "es-standin.log")
        yield dataclasses.replace(shared, port=port, owned=True)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

