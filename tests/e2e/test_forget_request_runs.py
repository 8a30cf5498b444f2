"""The SLA monitor's ``forget_runs``: finished ``deletion_requests`` runs of closed requests are
deleted through Airflow's REST API, so their conf (which holds the phone number) leaves the
metadata DB; runs of open requests, unfinished runs and runs the ledger never saw are kept.

A private ``airflow api-server`` (``tests/e2e/airflow_processes.py``, no scheduler) holds the
runs, created and finished through its REST API; the ledger is this session's on the shared
MariaDB (``ledger_db``: the least-privilege user), seeded with the run ids as a ``register``
task would record them.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest

from devservers.connections import DEV_KEYS
from include.retention.crypto import RetentionCrypto
from tests.e2e.airflow_processes import AirflowProcesses, running_api_server
from tests.fixtures.mysql import MySqlDatabase

pytestmark = [pytest.mark.servers, pytest.mark.slow]

UTC = timezone.utc
PHONE = "+6581230077"
DAG_RUNS = "/api/v2/dags/deletion_requests/dagRuns"
KEYS = RetentionCrypto(
    subject_hash_key=DEV_KEYS["subject_hash_key"].encode(),
    subject_encryption_key=DEV_KEYS["subject_encryption_key"].encode(),
    certificate_key=DEV_KEYS["certificate_key"].encode(),
)


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowProcesses]:
    with running_api_server(tmp_path_factory.mktemp("airflow-forget")) as server:
        yield server


def submit_run(server: AirflowProcesses, token: str, tenant: str, reference: str, state: str | None) -> tuple[str, dict[str, Any]]:
    """A deletion request for PHONE as a REST-triggered run, then set to ``state`` (None: left queued)."""
    conf = {"request_type": "deletion", "tenant_id": tenant, "subject_type": "phone_number", "subject_id": PHONE,
            "reference": reference, "requested_by": "dpo@example.test", "mode": "execute"}
    status, body = server.call("POST", DAG_RUNS, {"logical_date": None, "conf": conf}, token)
    assert status == 200, body
    run_id = str(body["dag_run_id"])
    if state is not None:
        status, body = server.call("PATCH", f"{DAG_RUNS}/{run_id}", {"state": state}, token)
        assert status == 200 and body["state"] == state, body
    return run_id, conf


def record_request(conf: dict[str, Any], run_id: str, as_of: datetime, *, end_state: str | None) -> None:
    """The ledger row ``register`` would write for this run, moved on to ``end_state``."""
    from include.retention.ledger.requests import transition
    from include.retention.requests.intake import submit
    from include.retention.policy import load_policy

    accepted = end_state != "rejected"  # an unknown tenant is refused at intake
    submission = submit(load_policy(), conf, run_after=as_of, run_id=run_id, crypto=KEYS,
                           tenant_exists=lambda _tenant: accepted)
    assert submission.outcome == ("new" if accepted else "rejected"), submission.message
    if end_state == "completed":
        for state in ("planned", "in_progress", "verifying", "completed"):
            transition(submission.request.request_id, state, run_id=run_id)


def dag_run_rows(server: AirflowProcesses) -> dict[str, str]:
    """run_id -> conf as stored in the private metadata DB (SQLite) of the api-server."""
    with sqlite3.connect(server.home / "airflow.db") as db:
        rows = db.execute("SELECT run_id, conf FROM dag_run WHERE dag_id = 'deletion_requests'").fetchall()
    return {str(run_id): conf if isinstance(conf, str) else json.dumps(conf) for run_id, conf in rows}


def test_finished_runs_of_closed_requests_are_deleted_and_the_rest_kept(
    api_server: AirflowProcesses, ledger_db: MySqlDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    from include.retention.airflow_runs import AirflowApi, ForgetReport, forget_request_runs

    token = api_server.token()
    started = datetime.now(UTC) - timedelta(seconds=1)
    tenant_base = f"97{secrets.randbelow(9000) + 1000}"
    runs: dict[str, str] = {}
    for case, run_state, end_state in [
        ("completed", "success", "completed"),
        ("rejected", "failed", "rejected"),
        ("open", "failed", None),  # failed run, request still open: the operator needs it
        ("queued", None, "completed"),  # not finished: never touched
        ("unknown", "success", "absent"),  # register never ran: the ledger has no event
    ]:
        tenant = f"{tenant_base}{len(runs):02d}"  # the tenants of this test only
        run_id, conf = submit_run(api_server, token, tenant, f"FORGET-{case}-{tenant}", run_state)
        runs[case] = run_id
        if end_state != "absent":
            record_request(conf, run_id, started, end_state=end_state)
    as_of = datetime.now(UTC) + timedelta(minutes=1)
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_AIRFLOW_API", json.dumps({
        "conn_type": "http", "host": "127.0.0.1", "port": api_server.port, "login": "admin",
        "password": api_server.password,
    }))
    api = AirflowApi.from_connection()

    # as of an instant before the runs ended: none of them is a candidate yet
    assert forget_request_runs(api, started - timedelta(hours=1)) == ForgetReport(deleted=0, kept=0, unknown=0)

    report = forget_request_runs(api, as_of)

    assert report == ForgetReport(deleted=2, kept=1, unknown=1)
    for case in ("completed", "rejected"):
        assert api_server.call("GET", f"{DAG_RUNS}/{runs[case]}", token=token)[0] == 404
    for case in ("open", "queued", "unknown"):
        status, body = api_server.call("GET", f"{DAG_RUNS}/{runs[case]}", token=token)
        assert status == 200, (case, status)
    rows = dag_run_rows(api_server)
    assert runs["completed"] not in rows and runs["rejected"] not in rows
    assert {run_id for run_id, conf in rows.items() if PHONE in conf} == {runs[c] for c in ("open", "queued", "unknown")}

    # idempotent: the next day's run finds nothing more to delete
    assert forget_request_runs(api, as_of + timedelta(days=1)) == ForgetReport(deleted=0, kept=1, unknown=1)
