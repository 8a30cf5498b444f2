"""Submitting a request through Airflow's REST API, against a running ``airflow api-server``.

The server runs as a subprocess in its own process group, on a spare port, with its own
``AIRFLOW_HOME`` (a copy of the migrated metadata DB, the project's DAGs serialized into it
by ``airflow dags reserialize``, and a known password for the simple auth manager). It is
stopped by its process group when the module ends. No scheduler runs: the test checks that
the run is created with its conf, and that invalid conf is refused with a 4xx and a reason.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.e2e.conftest import ROOT, migrated_template

pytestmark = [pytest.mark.slow]

START_TIMEOUT = 180.0  # seconds; the api-server answers in 12-20 s on a quiet 2-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ApiServer:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.password = secrets.token_urlsafe(12)
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        (home / "plugins").mkdir(parents=True, exist_ok=True)
        (home / "passwords.json").write_text(json.dumps({"admin": self.password}))
        shutil.copyfile(migrated_template(), home / "airflow.db")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")},
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),  # this test is about the REST API alone
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "PYTHONPATH": str(ROOT),
        }

    def reserialize(self) -> None:
        result = subprocess.run([sys.executable, "-m", "airflow", "dags", "reserialize"], env=self.env,
                                capture_output=True, text=True, timeout=300, cwd=self.home)
        assert result.returncode == 0, result.stderr[-3000:]

    def start(self) -> None:
        log = open(self.home / "api-server.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.home,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"api-server exited: {self.log_tail()}")
            try:
                if self.call("GET", "/api/v2/monitor/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"api-server did not answer within {START_TIMEOUT:.0f} s: {self.log_tail()}")

    def log_tail(self) -> str:
        path = self.home / "api-server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        """TERM the process group, then KILL it after 15 s (the server forks workers)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass

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


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = ApiServer(tmp_path_factory.mktemp("airflow-api"))
    server.reserialize()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def conf(**values: Any) -> dict[str, Any]:
    base = {"request_type": "deletion", "tenant_id": "1600123", "subject_type": "agent", "subject_id": "a1",
            "reference": f"REST-{secrets.token_hex(3)}", "requested_by": "dpo@example.test", "mode": "preview"}
    base.update(values)
    return base


def test_a_request_is_submitted_through_the_rest_api(api_server: ApiServer) -> None:
    token = api_server.token()
    submitted = conf()

    status, body = api_server.call("POST", "/api/v2/dags/deletion_requests/dagRuns",
                                   {"logical_date": None, "conf": submitted}, token)

    assert status == 200, body
    assert body["dag_id"] == "deletion_requests" and body["state"] == "queued"
    assert body["logical_date"] is None and body["conf"]["reference"] == submitted["reference"]
    status, run = api_server.call("GET", f"/api/v2/dags/deletion_requests/dagRuns/{body['dag_run_id']}",
                                  token=token)
    assert status == 200 and run["conf"]["mode"] == "preview"


@pytest.mark.parametrize(
    "change, field",
    [
        pytest.param({"tenant_id": "16001*"}, "tenant_id", id="wildcard-tenant"),
        pytest.param({"request_type": "erase"}, "request_type", id="unknown-request-type"),
        pytest.param({"mode": "force"}, "mode", id="unknown-mode"),
        pytest.param({"categories": ["billing"]}, "categories", id="unknown-category"),
        pytest.param({"reference": None}, "reference", id="missing-reference"),
    ],
)
def test_invalid_conf_is_refused_with_a_reason(api_server: ApiServer, change: dict[str, Any], field: str) -> None:
    token = api_server.token()
    bad = {k: v for k, v in conf(**change).items() if v is not None or k != "reference"}

    status, body = api_server.call("POST", "/api/v2/dags/deletion_requests/dagRuns",
                                   {"logical_date": None, "conf": bad}, token)

    assert 400 <= status < 500, (status, body)
    assert field in json.dumps(body), body


def test_the_api_refuses_an_anonymous_trigger(api_server: ApiServer) -> None:
    status, _ = api_server.call("POST", "/api/v2/dags/deletion_requests/dagRuns",
                                {"logical_date": None, "conf": conf()})
    assert status in (401, 403)
