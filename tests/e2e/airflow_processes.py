"""Real Airflow processes for e2e tests: a private ``AIRFLOW_HOME``, its CLI, and long-running
components (api-server, scheduler, dag-processor) each in its own process group.

The home holds a copy of the migrated SQLite metadata DB (``migrated_template``), a known
password for the simple auth manager and a private JWT secret; the api-server listens on a
spare port and is also the Execution API the LocalExecutor's task runners call. Every
process is stopped by its process group (TERM, then KILL after 3 s), even when a test fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from include.retention.pools import STORE_POOLS
from tests.e2e.conftest import ROOT, migrated_template

START_TIMEOUT = 180.0  # seconds; the api-server answers in 12-20 s on a quiet 2-core machine
#: Seconds between SIGTERM and SIGKILL of a process group. Short: a test Airflow is thrown away,
#: and on TERM the triggerer waits 10 s for its trigger runner before it exits.
STOP_GRACE = 3.0
#: What every test Airflow that runs tasks changes so that its runs move on: the dag-processor
#: parses once (the files do not change), the scheduler heartbeats every 2 s, and a task's
#: supervisor wakes every second instead of every 5 s (``[workers] min_heartbeat_interval``):
#: it notices its task has finished only when it wakes, so each task instance cost up to 5 s more.
QUICK_SETTINGS = {
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AirflowProcesses:
    """A private Airflow installation: ``cli()`` runs a command, ``start()`` a component.

    :param home: an empty directory to become ``AIRFLOW_HOME``.
    :param env: extra environment for every process (``AIRFLOW_CONN_*``, config overrides).
    """

    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.password = secrets.token_urlsafe(12)
        self.base = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        (home / "plugins").mkdir(parents=True, exist_ok=True)
        (home / "passwords.json").write_text(json.dumps({"admin": self.password}))
        db = home / "airflow.db"
        shutil.copyfile(migrated_template(), db)
        with sqlite3.connect(db) as conn:  # WAL: scheduler, dag-processor and api-server write at once
            conn.execute("PRAGMA journal_mode=WAL")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")},
            "AIRFLOW_HOME": str(home),
            # Writers wait for each other up to 60 s (sqlite's default, 5 s, is too short when
            # the machine is busy: "database is locked").
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db}?timeout=60",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),  # none: the tests are about Airflow's own parts
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base}/execution/",
            # The scheduler serves task logs on 8793 by default: a spare port, beside any other Airflow
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }

    # ------------------------------------------------------------------ commands

    def cli(self, *args: str, timeout: float = 300) -> str:
        """Run ``airflow <args>`` in this home; its stdout, or AssertionError with its stderr."""
        result = subprocess.run([sys.executable, "-m", "airflow", *args], env=self.env, capture_output=True,
                                text=True, timeout=timeout, cwd=self.home)
        assert result.returncode == 0, f"airflow {' '.join(args)} exited {result.returncode}: {result.stderr[-3000:]}"
        return result.stdout

    def create_store_pools(self) -> None:
        """The four store pools, in one ``airflow pools import`` (each CLI call costs seconds of imports)."""
        pools = self.home / "store-pools.json"
        pools.write_text(json.dumps({name: {"slots": slots, "description": "retention store pool"}
                                     for name, slots in STORE_POOLS.items()}))
        self.cli("pools", "import", str(pools))

    def reserialize(self) -> None:
        self.cli("dags", "reserialize")

    # ------------------------------------------------------------------ components

    def start(self, name: str, *args: str) -> None:
        """Start ``airflow <args>`` in its own process group, logging to ``<home>/<name>.log``."""
        with open(self.home / f"{name}.log", "wb") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=self.home, start_new_session=True,
            )

    def start_api_server(self) -> None:
        self.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1")

    def wait_until_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Until the api-server answers its health check; fails early if a component exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}: {self.log_tail(name)}")
            try:
                if self.call("GET", "/api/v2/monitor/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"api-server did not answer within {timeout:.0f} s: {self.log_tail('api-server')}")

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        """TERM every component's process group, then KILL what is left after ``STOP_GRACE``
        (they fork workers); a second call does nothing."""
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + STOP_GRACE
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:  # the group may outlive its leader (task runners, uvicorn workers)
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
        self.procs.clear()

    # ------------------------------------------------------------------ REST

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw or b"null")
            except ValueError:
                return exc.code, raw.decode(errors="replace")

    def token(self) -> str:
        status, body = self.call("POST", "/auth/token", {"username": "admin", "password": self.password})
        assert status in (200, 201), (status, body)
        return str(body["access_token"])

    def create_pools(self, token: str, slots: int = 4) -> None:
        """The ``retention_<store>`` pools the purge tasks run in."""
        for name in STORE_POOLS:
            status, body = self.call("POST", "/api/v2/pools", {"name": name, "slots": slots}, token)
            assert status in (200, 201), body


@contextmanager
def running_api_server(home: Path) -> Iterator[AirflowProcesses]:
    """An api-server alone (no scheduler) over the project's DAGs, serialized into ``home``;
    stopped by its process group on exit."""
    server = AirflowProcesses(home)
    server.reserialize()
    try:
        server.start_api_server()
        server.wait_until_healthy()
        yield server
    finally:
        server.stop()
