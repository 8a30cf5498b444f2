"""The demo's surfaces: ``scripts/airflow.sh`` (a local Airflow with its UI and the retention
dashboard), the demo's short summary over a real run, and ``scripts/env.sh``'s AIRFLOW_HOME rule.

The UI runs in a private ``AIRFLOW_HOME`` (``RETENTION_AIRFLOW_HOME``) on a spare port
(``RETENTION_UI_PORT``) over the test namespace, so it never meets a user's instance or the
demo's data; it is stopped the way ``scripts/stop.sh`` stops it (``airflow_ui down``), without
``devservers down``, which would stop the servers the other tests share.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import datetime, time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.e2e.conftest import ROOT, migrated_template

pytestmark = pytest.mark.servers

DAG_IDS = {"deletion_requests", "retention_sla_monitor", "retention_log_data", "retention_agent_info",
           "retention_call_data", "retention_call_analytics", "retention_configuration"}


def _spare_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _call(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw.strip().startswith((b"{", b"[")) else raw.decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


# --------------------------------------------------------------------------- scripts/airflow.sh


@pytest.fixture
def ui_home(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A private home with a migrated metadata DB, its environment, and a stop on the way out."""
    home = tmp_path / "airflow-ui"
    home.mkdir()
    shutil.copyfile(migrated_template(), home / "airflow.db")
    env = {**os.environ, "RETENTION_AIRFLOW_HOME": str(home), "RETENTION_UI_PORT": str(_spare_port())}
    try:
        yield home, env
    finally:
        down(env)


def down(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """What scripts/stop.sh does for the UI: env.sh, then ``airflow_ui down``."""
    return subprocess.run(["bash", "-c", "source scripts/env.sh demo && python -m devservers.airflow_ui down"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_airflow_sh_starts_the_ui_with_login_dags_and_dashboard_and_stop_leaves_nothing(ui_home) -> None:  # type: ignore[no-untyped-def]
    home, env = ui_home
    base = f"http://127.0.0.1:{env['RETENTION_UI_PORT']}"
    started = subprocess.run([str(ROOT / "scripts" / "airflow.sh"), "--namespace", "test"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=400)
    assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
    assert f"AIRFLOW_HOME={home} (from RETENTION_AIRFLOW_HOME)" in started.stderr
    printed = started.stdout
    generated = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
    assert f"Airflow UI:  {base}/" in printed
    assert f"admin / {generated['admin']}" in printed  # the login, with the password it generated
    assert f"{base}/plugin/retention" in printed and f"{base}/retention/" in printed

    status, health = _call(base, "GET", "/api/v2/monitor/health")
    assert status == 200
    assert {k: health[k]["status"] for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")} == {
        "metadatabase": "healthy", "scheduler": "healthy", "triggerer": "healthy", "dag_processor": "healthy"}
    status, body = _call(base, "POST", "/auth/token", {"username": "admin", "password": generated["admin"]})
    assert status in (200, 201), body
    token = body["access_token"]
    assert _call(base, "POST", "/auth/token", {"username": "admin", "password": "wrong"})[0] == 401

    status, body = _call(base, "GET", "/api/v2/dags?limit=100", token=token)
    assert status == 200, body
    dags = {d["dag_id"]: d for d in body["dags"]}
    assert DAG_IDS <= set(dags)
    assert dags["deletion_requests"]["is_paused"] is False  # a run triggered in the UI runs
    assert dags["retention_call_data"]["is_paused"] is True  # nothing purges on its own

    status, summary = _call(base, "GET", "/retention/api/summary", token=token)
    assert status == 200 and "requests" in summary, summary
    status, page = _call(base, "GET", "/retention/", token=token)
    assert status == 200 and "<html" in page.lower()
    assert _call(base, "GET", "/retention/api/summary")[0] == 401  # the dashboard is not open to anyone

    pid_files = sorted((home / "ui" / "pids").glob("*.pid"))
    assert [p.stem for p in pid_files] == sorted(["api-server", "scheduler", "dag-processor", "triggerer"])
    pids = [int(p.read_text()) for p in pid_files]

    again = subprocess.run([sys.executable, "-m", "devservers.airflow_ui", "up", "--namespace", "test"], cwd=ROOT,
                           env={**env, "AIRFLOW_HOME": str(home)}, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "already running" in again.stdout, again.stdout + again.stderr
    assert sorted(int(p.read_text()) for p in pid_files) == sorted(pids)

    stopped = down(env)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped: triggerer, dag-processor, scheduler, api-server" in stopped.stdout
    assert [pid for pid in pids if _alive(pid)] == []
    assert [pid for pid in pids if _group_members(pid)] == []  # nor any child in their process groups
    assert list((home / "ui" / "pids").glob("*.pid")) == []
    again = down(env)
    assert "stopped: nothing" in again.stdout


# --------------------------------------------------------------------------- the demo's summary


def test_the_demo_summary_is_short_matches_the_ledger_and_the_task_logs_go_to_the_file(  # type: ignore[no-untyped-def]
        servers, airflow_db, policy, tmp_path, capfd) -> None:
    from devservers.demo_report import RunResult, failed_runs, format_summary, output_to_file, store_totals
    from include.retention.ledger.db import connect, plain_cursor
    from tests.e2e.test_daily_dags import AS_OF, EXTENDED, HELD, seeded_world

    log_file = tmp_path / "demo.log"
    with seeded_world(servers, AS_OF, tenants=("7712", EXTENDED, HELD)):  # three tenants: cheap enough
        capfd.readouterr()
        from devservers.airflow_local import load_dags, run_dag

        logical = datetime.combine(AS_OF, time.min, tzinfo=policy.timezone)
        with output_to_file(log_file) as console:
            run = run_dag(load_dags()["retention_call_data"], logical_date=logical)
            print("to the terminal", file=console)
        results = [RunResult("retention_call_data", "retention_call_data", run.run_id, str(run.state), 1.5,
                             str(run.state) == "success")]
        lines = format_summary(results, store_totals([run.run_id]))
        with connect() as conn:
            cur = plain_cursor(conn)
            cur.execute("SELECT store, SUM(deleted), COUNT(*) FROM purge_audit WHERE run_id = %s GROUP BY store",
                        (run.run_id,))
            ledger = {str(store): (int(deleted), int(n)) for store, deleted, n in cur.fetchall()}
    terminal = capfd.readouterr()
    assert str(run.state) == "success" and failed_runs(results) == []
    assert 3 <= len(lines) < 60
    assert set(ledger) == {"cos", "mysql"} and all(deleted > 0 for deleted, _ in ledger.values())
    shown = {}
    for line in lines[2:]:
        match = re.search(r"\b(mysql|redis|cos|elasticsearch)\s+([\d,]+)\s+(\d+)\s+0\s+[\d.]+s$", line)
        if match:
            shown[match[1]] = (int(match[2].replace(",", "")), int(match[3]))
    assert shown == ledger, "\n".join(lines)
    assert lines[2].startswith("retention_call_data  success")

    task_logs = log_file.read_text()
    assert "to the terminal" in terminal.out and "to the terminal" not in task_logs
    for task_id in ("plan", "purge", "verify"):  # Airflow's task logs of the run, in the file
        assert re.search(rf"task_id='{task_id}[^']*'", task_logs), task_id
    assert "Pushing xcom" not in terminal.out + terminal.err and "task_id=" not in terminal.out + terminal.err


# --------------------------------------------------------------------------- scripts/env.sh


@pytest.mark.parametrize("setup, mode, expected, said", [
    pytest.param("export AIRFLOW_HOME=/srv/their-airflow", "test", ".run/airflow-test",
                 "AIRFLOW_HOME=/srv/their-airflow from your shell is not used", id="exported-home-is-not-used"),
    pytest.param("AIRFLOW_HOME=/srv/their-airflow", "demo", ".run/airflow-demo",
                 "AIRFLOW_HOME=/srv/their-airflow from your shell is not used", id="unexported-home-is-not-used"),
    pytest.param("unset AIRFLOW_HOME", "test", ".run/airflow-test", "(the project's test home)", id="no-home"),
    pytest.param("export RETENTION_AIRFLOW_HOME=/srv/chosen AIRFLOW_HOME=/srv/their-airflow", "test", "/srv/chosen",
                 "(from RETENTION_AIRFLOW_HOME)", id="explicit-override"),
])
def test_env_sh_uses_the_projects_home_unless_told_and_says_which(setup: str, mode: str, expected: str,
                                                                  said: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("AIRFLOW_HOME", "RETENTION_AIRFLOW_HOME")}
    script = f"{setup}; source scripts/env.sh {mode} && bash -c 'echo \"$AIRFLOW_HOME\"'"
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    home = expected if expected.startswith("/") else str(ROOT / expected)
    assert result.stdout.strip() == home  # exported: what every child (demo.sh, pytest, airflow) sees
    assert f"[env] AIRFLOW_HOME={home} " in result.stderr and said in result.stderr


def test_env_sh_refuses_a_mode_that_is_not_a_name() -> None:
    result = subprocess.run(["bash", "-c", "source scripts/env.sh ../x; echo status=$?"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert "status=2" in result.stdout and "bad mode" in result.stderr
