"""Forget the ``deletion_requests`` runs of finished requests: their conf holds the subject id.

A deletion request arrives as the conf of a ``deletion_requests`` DAG run, and Airflow keeps
``dag_run.conf`` in its metadata DB for as long as the run exists, so the phone number or
agent id a request erased would stay in Airflow. A task cannot rewrite a run's conf nor reach
the metadata DB (Task SDK), so the SLA monitor deletes such runs through Airflow's public
REST API (``DELETE /api/v2/dags/deletion_requests/dagRuns/{dag_run_id}``), logged in with the
connection ``retention_airflow_api``.

A run is deleted when it is finished (``success`` or ``failed``, ended by the monitor run's
instant) and every request it touched is closed in the ledger: ``completed`` or ``rejected``,
or a ``preview`` never executed whose 30-day window has passed. The ledger's
``request_events`` name the run of every submission, resubmission, conflict and claim, so the
run is matched without reading its conf. Runs of open requests are kept (the operator still
needs them), and so are runs the ledger has never seen (their register task never ran):
``airflow db clean --tables dag_run --dag-ids deletion_requests`` removes those.

The conf is never read, logged or returned.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from include.retention.ledger.db import LEDGER_CONN_ID
from include.retention.ledger.requests import closed_by_run
from include.retention.request_states import REQUESTS_DAG_ID

log = logging.getLogger(__name__)

AIRFLOW_API_CONN_ID = "retention_airflow_api"
FINISHED_RUN_STATES = ("success", "failed")
PAGE_SIZE = 100  # Airflow's default [api] maximum_page_limit
TIMEOUT = 30.0  # seconds per HTTP call
NOTE_MAX_CHARS = 1000  # Airflow's limit on a run's note
DB_CLEAN_ALTERNATIVE = (
    "airflow db clean --tables dag_run --dag-ids deletion_requests --clean-before-timestamp <date> "
    "--skip-archive --yes"
)


class AirflowApiError(RuntimeError):
    """Airflow's REST API answered with an unexpected status."""


@dataclass(frozen=True)
class ForgetReport:
    """What one sweep did with the finished runs of ``deletion_requests``.

    :param deleted: runs deleted (their request is closed).
    :param kept: runs kept because a request they touched is still open.
    :param unknown: runs the ledger has no event of (kept; ``airflow db clean`` removes them).
    """

    deleted: int
    kept: int
    unknown: int

    def as_dict(self) -> dict[str, int]:
        return {"deleted": self.deleted, "kept": self.kept, "unknown": self.unknown}


class AirflowApi:
    """A minimal client of Airflow 3's public REST API: a JWT from ``POST /auth/token``, then
    ``/api/v2`` calls with it. No I/O until the first call.

    :param base_url: the api-server, e.g. ``http://airflow-api:8080``.
    """

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._username = username
        self._password = password
        self._token: str | None = None

    @classmethod
    def from_connection(cls, conn_id: str = AIRFLOW_API_CONN_ID) -> AirflowApi:
        """The client the connection describes: ``extra.base_url``, else ``schema://host:port``
        (``schema`` defaults to http), with its login and password.

        :raises AirflowSkipException: the connection is not defined (the sweep is skipped,
            never green by omission); the message names the ``airflow db clean`` alternative.
        """
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException, AirflowSkipException

        try:
            conn = BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            raise AirflowSkipException(
                f"connection {conn_id!r} is not defined: the deletion_requests runs of finished requests "
                f"(their conf holds the subject id) are NOT deleted. Define it (an http connection to the "
                f"Airflow api-server with a user allowed to delete DAG runs), or remove old runs with "
                f"`{DB_CLEAN_ALTERNATIVE}`."
            ) from None
        base_url = str(conn.extra_dejson.get("base_url") or "")
        if not base_url:
            if not conn.host:
                raise ValueError(f"connection {conn_id!r} needs a host or extra.base_url")
            host = conn.host if "://" in conn.host else f"{conn.schema or 'http'}://{conn.host}"
            base_url = f"{host}:{conn.port}" if conn.port else host
        if not conn.login or not conn.password:
            raise ValueError(f"connection {conn_id!r} needs a login and a password")
        return cls(base_url, conn.login, conn.password)

    def _send(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> tuple[int, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        if auth:
            headers["Authorization"] = f"Bearer {self._login()}"
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            exc.read()  # the detail may quote the request; it is not logged
            return exc.code, None

    def _login(self) -> str:
        if self._token is None:
            status, body = self._send("POST", "/auth/token", {"username": self._username, "password": self._password},
                                      auth=False)
            if status not in (200, 201) or not isinstance(body, dict) or "access_token" not in body:
                raise AirflowApiError(f"POST /auth/token answered {status}: check the connection's login and password")
            self._token = str(body["access_token"])
        return self._token

    def finished_run_ids(self, dag_id: str, ended_by: datetime) -> list[str]:
        """Ids of the runs of ``dag_id`` in ``success`` or ``failed`` that ended by ``ended_by``,
        oldest first; every page is read before anything is deleted (deleting shifts offsets)."""
        run_ids: list[str] = []
        offset = 0
        while True:
            query = urllib.parse.urlencode(
                {"state": list(FINISHED_RUN_STATES), "end_date_lte": ended_by.isoformat(), "order_by": "id",
                 "limit": PAGE_SIZE, "offset": offset},
                doseq=True,
            )
            path = f"/api/v2/dags/{urllib.parse.quote(dag_id, safe='')}/dagRuns?{query}"
            status, body = self._send("GET", path)
            if status != 200 or not isinstance(body, dict):
                raise AirflowApiError(f"GET dagRuns of {dag_id} answered {status}")
            page = body.get("dag_runs") or []
            run_ids += [str(run["dag_run_id"]) for run in page]  # only the id: the conf is dropped here
            offset += len(page)
            if not page or offset >= int(body.get("total_entries") or 0):
                return run_ids

    def set_run_note(self, dag_id: str, run_id: str, note: str) -> None:
        """Set a run's note (shown under the run's header in the UI); at most 1,000 characters."""
        path = f"/api/v2/dags/{urllib.parse.quote(dag_id, safe='')}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
        status, _ = self._send("PATCH", path + "?update_mask=note", {"note": note[:NOTE_MAX_CHARS]})
        if status != 200:
            raise AirflowApiError(f"PATCH the note of run {run_id} of {dag_id} answered {status}")

    def delete_run(self, dag_id: str, run_id: str) -> bool:
        """Delete one finished run; False if it is already gone."""
        path = f"/api/v2/dags/{urllib.parse.quote(dag_id, safe='')}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
        status, _ = self._send("DELETE", path)
        if status == 404:
            return False
        if status not in (200, 204):
            raise AirflowApiError(f"DELETE run {run_id} of {dag_id} answered {status}")
        return True


def forget_request_runs(api: AirflowApi, as_of: datetime, *, conn_id: str = LEDGER_CONN_ID) -> ForgetReport:
    """Delete the finished ``deletion_requests`` runs (ended by ``as_of``) whose requests are
    all closed in the ledger; keep the others. A rerun deletes nothing more."""
    run_ids = api.finished_run_ids(REQUESTS_DAG_ID, as_of)
    closed = closed_by_run(run_ids, as_of, chunk=PAGE_SIZE, conn_id=conn_id)
    deleted = kept = unknown = 0
    for run_id in run_ids:
        if run_id not in closed:
            unknown += 1
        elif not closed[run_id]:
            kept += 1
        elif api.delete_run(REQUESTS_DAG_ID, run_id):
            deleted += 1
    report = ForgetReport(deleted=deleted, kept=kept, unknown=unknown)
    log.info("deletion_requests runs as of %s: %d deleted, %d kept (open requests), %d unknown to the ledger",
             as_of.isoformat(), report.deleted, report.kept, report.unknown)
    return report
