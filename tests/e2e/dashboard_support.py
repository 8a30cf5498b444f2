"""A real Airflow api-server with the retention dashboard plugin, on a seeded private ledger.

Shared by ``test_dashboard_api.py`` and ``test_dashboard_browser.py``: one server per test
session (reference-counted, since both modules import the fixture), started as a
subprocess in its own process group with its own ``AIRFLOW_HOME`` (SQLite), the project's
``plugins/`` folder, and ``retention_ledger`` pointing at a private database
``dash_<random>`` that the fixture seeds and drops. The Airflow metadata DB is migrated
once into ``.run/dashboard-e2e/`` (per Airflow version) and copied for each session, then
seeded with daily-DAG runs.

Also :func:`ensure_browser`: Debian ``chromium`` and ``chromium-driver``, apt-installed when
missing and running as root.
"""

from __future__ import annotations

import contextlib
import fcntl
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
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CACHE_DIR = ROOT / ".run" / "dashboard-e2e"
ARTIFACTS = ROOT / "artifacts"
UTC = timezone.utc
ZONE = ZoneInfo("Asia/Singapore")  # the policy's calendar
BROWSER_PACKAGES = ("chromium", "chromium-driver")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
START_TIMEOUT_S = 150.0


# --------------------------------------------------------------------------- browser


def ensure_browser() -> tuple[str, str]:
    """Paths of chromium and chromedriver; apt-installs Debian's packages when root and missing."""
    chromium = shutil.which("chromium") or (CHROMIUM if os.path.exists(CHROMIUM) else None)
    driver = shutil.which("chromedriver") or (CHROMEDRIVER if os.path.exists(CHROMEDRIVER) else None)
    if chromium and driver:
        return chromium, driver
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"needs Debian packages: sudo apt-get install -y {' '.join(BROWSER_PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *BROWSER_PACKAGES]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)
    return ensure_browser()


# --------------------------------------------------------------------------- seeded data


def _naive(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class SeededRequest:
    reference: str
    request_id: str
    tenant_id: str
    state: str
    request_type: str
    received_days_ago: float
    subject_type: str | None = None
    error: str | None = None
    mode: str = "execute"
    closed_days_ago: float = 2.0  # completed or rejected this long ago

    def received_at(self, now: datetime) -> datetime:
        return now - timedelta(days=self.received_days_ago)


#: Half-day offsets keep the whole-day numbers stable while the test runs: due 30 days after receipt,
#: days left rounded up as the SLA monitor counts them.
REQUESTS = (
    SeededRequest("TCK-BREACH", "req-breach", "1001", "in_progress", "termination", 33.5),  # 3 days over
    SeededRequest("TCK-AMBER", "req-amber", "1002", "planned", "deletion", 24.5, "agent"),  # 5.5 days left: 6
    SeededRequest("TCK-GREEN", "req-green", "1001", "received", "deletion", 1.5, "phone_number"),  # 29 days left
    SeededRequest("TCK-FAILED", "req-failed", "1003", "failed", "deletion", 9.5, "agent",
                  "PartialPurgeError: cos.recordings: 3 of 7 batches failed"),  # 21 days left
    SeededRequest("TCK-DONE", "req-done", "1001", "completed", "termination", 12.5),
    SeededRequest("TCK-PREVIEW", "req-preview", "1002", "planned", "deletion", 40.5, "agent",
                  mode="preview"),  # past its due date, but a preview deletes nothing and has no SLA
    SeededRequest("TCK-REJECTED", "req-rejected", "1004", "rejected", "deletion", 2.5, "agent",
                  "tenant 1004 is not a known tenant"),
    SeededRequest("TCK-OLD", "req-old", "1005", "completed", "termination", 70.5,
                  closed_days_ago=45.0),  # closed before the default view's 30 days
)
EXPECTED_DAYS_LEFT = {"TCK-BREACH": -3, "TCK-AMBER": 6, "TCK-GREEN": 29, "TCK-FAILED": 21}
EXPECTED_OPEN_ORDER = ["TCK-BREACH", "TCK-AMBER", "TCK-FAILED", "TCK-GREEN", "TCK-PREVIEW"]
#: The default view ("recent"): the open ones, then those closed in the last 30 days, by due date.
EXPECTED_RECENT_ORDER = [*EXPECTED_OPEN_ORDER, "TCK-DONE", "TCK-REJECTED"]


@dataclass(frozen=True)
class SeededPurge:
    category: str
    days_ago: int  # local (policy) days before today; the purge finished at local noon
    deleted: int
    dry_run: bool = False
    outcome: str = "ok"
    tenant_id: str | None = None


PURGES = (
    SeededPurge("call_data", 3, 1200),
    SeededPurge("call_data", 3, 34, tenant_id="1001"),
    SeededPurge("call_data", 10, 500),
    SeededPurge("agent_info", 3, 77, tenant_id="1001"),
    SeededPurge("call_analytics", 45, 4321),
    SeededPurge("log_data", 0, 9),
    SeededPurge("call_data", 5, 5, outcome="failed"),
    SeededPurge("call_data", 3, 99999, dry_run=True),  # a dry run deletes nothing: never counted
    SeededPurge("call_data", 120, 88888),  # outside the 90 days
)
#: What the plot and totals must show for the seeds above (90 days, real purges only).
EXPECTED_TOTALS = {"call_data": 1200 + 34 + 500 + 5, "agent_info": 77, "call_analytics": 4321, "log_data": 9,
                   "configuration": 0}
EXPECTED_DAY3_CALL_DATA = 1234

#: (dag_id, run_id, state, days ago, failed task ids): the last run of each daily DAG and failures.
DAG_RUNS = (
    ("retention_call_data", "scheduled__seed-1", "success", 2.0, ()),
    ("retention_call_data", "scheduled__seed-2", "failed", 1.0, ("purge_cos",)),
    ("retention_agent_info", "scheduled__seed-3", "success", 1.0, ()),
    ("retention_log_data", "scheduled__seed-4", "failed", 3.0, ("verify",)),
    ("retention_log_data", "manual__seed-5", "success", 0.5, ()),
    ("retention_call_analytics", "scheduled__seed-6", "failed", 40.0, ("plan",)),  # outside the 30 days
)


def seed_ledger(uri_env: dict[str, str], db: Any, now: datetime) -> None:
    """Migrate the private ledger (``retention_ledger`` from ``uri_env``) and write the seeds."""
    from include.retention.ledger.db import connect, plain_cursor
    from include.retention.ledger.migrations import migrate

    with pytest.MonkeyPatch.context() as mp:
        for key, value in uri_env.items():
            mp.setenv(key, value)
        migrate()
    rows = []
    for r in REQUESTS:
        received = r.received_at(now)
        due = received + timedelta(days=30)
        done = r.state in ("completed", "rejected")
        rows.append({
            "request_id": r.request_id, "reference": r.reference, "request_type": r.request_type,
            "tenant_id": r.tenant_id, "subject_type": r.subject_type,
            "subject_hash": ("ab" * 32) if r.subject_type else None,
            "subject_enc": "gAAAA-not-a-real-token" if r.subject_type else None,
            "categories": json.dumps(["call_data", "agent_info"]), "received_at": _naive(received),
            "due_at": _naive(due), "state": r.state, "requested_by": "ops-team", "mode": r.mode,
            "error": r.error, "created_at": _naive(received), "updated_at": _naive(now - timedelta(hours=1)),
            "completed_at": _naive(now - timedelta(days=r.closed_days_ago)) if done else None,
        })
    db.insert("requests", rows)
    db.execute("UPDATE requests SET failed_step = 'call_data.recordings' WHERE request_id = 'req-failed'")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in uri_env.items():
            mp.setenv(key, value)
        seed_certificate("req-done", now)
    today = now.astimezone(ZONE).date()
    audit = []
    for i, p in enumerate(PURGES):
        finished = datetime.combine(today - timedelta(days=p.days_ago), datetime.min.time(), tzinfo=ZONE)
        finished += timedelta(hours=12)
        if finished > now:  # today's purge: keep it in the past, still on today's local date
            finished = max(datetime.combine(today, datetime.min.time(), tzinfo=ZONE), now - timedelta(minutes=5))
        audit.append({
            "run_id": f"scheduled__seed-{i}", "dag_id": f"retention_{p.category}", "task_id": "purge_mysql",
            "category": p.category, "target": "seeded", "store": "mysql",
            "selection_kind": "tenant" if p.tenant_id else "expired", "tenant_id": p.tenant_id,
            "units_count": 1, "planned": p.deleted, "deleted": p.deleted, "verified_remaining": 0,
            "method": "seed", "dry_run": p.dry_run, "duration_s": 0.5, "outcome": p.outcome,
            "error": "seeded failure" if p.outcome == "failed" else None, "details": "{}",
            "started_at": _naive(finished - timedelta(seconds=1)), "finished_at": _naive(finished),
            # Why, as the planner writes it (reasons.py): on the first purge only.
            "rule": json.dumps({"rule": "policy", "months": 6}) if i == 0 else None,
            "withheld": json.dumps({"tenants": [{"tenant": "1600999", "why": "legal_hold", "hold_ids": [4]}]})
            if i == 0 else None,
        })
    db.insert("purge_audit", audit)


def seed_certificate(request_id: str, now: datetime) -> None:
    """A signed certificate for a completed request, built by the request flow's own code, in the ledger."""
    from devservers.connections import DEV_KEYS
    from include.retention.certificates.document import build, sign
    from include.retention.certificates.issue import cos_key
    from include.retention.ledger.db import connect, plain_cursor
    from include.retention.ledger.requests import get_request
    from include.retention.crypto import RetentionCrypto
    from include.retention.policy import load_policy

    request = get_request(request_id)
    assert request is not None
    keys = RetentionCrypto(*(DEV_KEYS[k].encode() for k in ("subject_hash_key", "subject_encryption_key",
                                                            "certificate_key")))
    issued = now - timedelta(days=2)
    body = build(load_policy(), request, [], [], verified_at=issued, issued_at=issued)
    document = sign(body, keys)
    with connect() as conn:
        plain_cursor(conn).execute(
            "INSERT INTO certificates (request_id, certificate_id, issued_at, key_id, signature, cos_bucket, cos_key,"
            " document) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (request_id, body["certificate_id"], _naive(issued), document["signature"]["key_id"],
             document["signature"]["value"], "cc-test", cos_key(request_id),
             json.dumps(document, sort_keys=True)),
        )


def seed_dag_runs(sqlite_path: Path, now: datetime) -> None:
    """Daily-DAG runs and failed task instances, written straight into the SQLite metadata DB."""
    conn = sqlite3.connect(sqlite_path)
    try:
        for dag_id, run_id, state, days_ago, failed in DAG_RUNS:
            after = _naive(now - timedelta(days=days_ago))
            stamp = after.strftime("%Y-%m-%d %H:%M:%S.%f")
            ended = (after + timedelta(minutes=7)).strftime("%Y-%m-%d %H:%M:%S.%f")
            conn.execute(
                "INSERT INTO dag_run (dag_id, run_id, run_type, state, run_after, logical_date, queued_at,"
                " start_date, end_date, created_at, updated_at, clear_number, span_status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 'ended')",
                (dag_id, run_id, run_id.split("__")[0], state, stamp, stamp, stamp, stamp, ended, stamp, ended),
            )
            for task_id in failed:
                conn.execute(
                    "INSERT INTO task_instance (id, task_id, dag_id, run_id, map_index, state, try_number,"
                    " max_tries, pool, pool_slots, start_date, end_date, span_status)"
                    " VALUES (?, ?, ?, ?, -1, 'failed', 1, 3, 'default_pool', 1, ?, ?, 'ended')",
                    (uuid.uuid4().hex, task_id, dag_id, run_id, stamp, ended),
                )
        conn.commit()
    finally:
        conn.close()


# --------------------------------------------------------------------------- metadata DB


def airflow_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow")


def template_metadata_db() -> Path:
    """A migrated, empty SQLite metadata DB for this Airflow version, built once and reused."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    template = CACHE_DIR / f"airflow-{airflow_version()}.db"
    with open(CACHE_DIR / "template.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions at once build it once
        if not template.exists():
            home = CACHE_DIR / f"migrate-{os.getpid()}"
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir()
            env = {**base_env(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}"}
            result = subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], env=env, capture_output=True,
                                    text=True, timeout=300)
            if result.returncode != 0:
                raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
            shutil.move(str(home / "airflow.db"), template)
            shutil.rmtree(home, ignore_errors=True)
    return template


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PYTHONPATH": str(ROOT) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    return env


# --------------------------------------------------------------------------- the server


@dataclass
class DashboardServer:
    base_url: str
    home: Path
    log: Path
    passwords: dict[str, str]
    ledger: Any  # tests.fixtures.mysql.MySqlDatabase
    ledger_env: dict[str, str]
    seeded_at: datetime
    process: subprocess.Popen[bytes] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url + path

    def token(self, user: str = "admin") -> str:
        import httpx

        response = httpx.post(self.url("/auth/token"), json={"username": user, "password": self.passwords[user]},
                              timeout=30)
        response.raise_for_status()
        return str(response.json()["access_token"])

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(server: DashboardServer, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.process is not None
        if server.process.poll() is not None:
            raise RuntimeError(f"api-server exited with {server.process.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.url("/api/v2/monitor/health"), timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"api-server not healthy within {timeout:.0f}s:\n{server.log_tail()}")


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, SIGKILL what is left after 8 s (its workers are children).

    uvicorn finishes within a second of SIGTERM, but the ``airflow`` process then lingers
    for about 15 s at exit; the grace period only needs to cover the first.
    """
    if process.poll() is not None:
        return
    pgid = os.getpgid(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        process.wait(timeout=8)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def dashboard_server(mariadb_endpoint: Any, workdir: Path) -> Iterator[DashboardServer]:
    """Seed a private ledger, start ``airflow api-server`` with the plugin, yield it; stop and drop."""
    from tests.fixtures.mysql import MySqlDatabase

    t0 = time.monotonic()
    now = datetime.now(UTC)
    ledger_db = MySqlDatabase(mariadb_endpoint, f"dash_{secrets.token_hex(4)}")
    ledger_env = {"AIRFLOW_CONN_RETENTION_LEDGER": ledger_db.uri}
    home = workdir / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    passwords = {"admin": secrets.token_urlsafe(12), "viewer": secrets.token_urlsafe(12)}
    (home / "passwords.json").write_text(json.dumps(passwords))
    server = DashboardServer(base_url="", home=home, log=workdir / "api-server.log", passwords=passwords,
                             ledger=ledger_db, ledger_env=ledger_env, seeded_at=now)
    try:
        seed_ledger(ledger_env, ledger_db, now)
        server.timings["ledger"] = time.monotonic() - t0
        shutil.copyfile(template_metadata_db(), home / "airflow.db")
        seed_dag_runs(home / "airflow.db", now)
        server.timings["metadata_db"] = time.monotonic() - t0
        port = free_port()
        server.base_url = f"http://127.0.0.1:{port}"
        env = {
            **base_env(home),
            **ledger_env,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__AUTH_MANAGER":
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API__BASE_URL": server.base_url,
        }
        with open(server.log, "wb") as log:
            server.process = subprocess.Popen(
                [str(VENV_BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(port),
                 "--apps", "core", "--workers", "1"],
                env=env, cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped as a whole
            )
        _wait_healthy(server, START_TIMEOUT_S)
        server.timings["healthy"] = time.monotonic() - t0
        yield server
    finally:
        if server.process is not None:
            stop_process_group(server.process)
        ledger_db.execute(f"DROP DATABASE IF EXISTS `{ledger_db.name}`")


class _Shared:
    """One server for every module that asks in this session (fixtures imported twice are two fixtures)."""

    server: DashboardServer | None = None
    users = 0
    stack: contextlib.ExitStack | None = None


@pytest.fixture(scope="session")
def dashboard(mariadb_endpoint: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardServer]:
    if _Shared.server is None:
        stack = contextlib.ExitStack()
        _Shared.server = stack.enter_context(dashboard_server(mariadb_endpoint, tmp_path_factory.mktemp("dashboard")))
        _Shared.stack = stack
    _Shared.users += 1
    try:
        yield _Shared.server
    finally:
        _Shared.users -= 1
        if _Shared.users == 0 and _Shared.stack is not None:
            stack, _Shared.stack, _Shared.server = _Shared.stack, None, None
            stack.close()


def today_local(now: datetime) -> date:
    return now.astimezone(ZONE).date()


def quoted(value: str) -> str:
    return quote(value, safe="")
