"""Submitting a request through Airflow's REST API, against a running ``airflow api-server``.

The server runs as a subprocess in its own process group, on a spare port, with its own
``AIRFLOW_HOME`` (a copy of the migrated metadata DB, the project's DAGs serialized into it
by ``airflow dags reserialize``, and a known password for the simple auth manager). It is
stopped by its process group when the module ends. No scheduler runs: the test checks that
the run is created with its conf, and that invalid conf is refused with a 4xx and a reason.
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Iterator

import pytest

from tests.e2e.airflow_processes import AirflowProcesses, running_api_server

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowProcesses]:
    with running_api_server(tmp_path_factory.mktemp("airflow-api")) as server:
        yield server


def conf(**values: Any) -> dict[str, Any]:
    base = {"request_type": "deletion", "tenant_id": "1600123", "subject_type": "agent", "subject_id": "a1",
            "reference": f"REST-{secrets.token_hex(3)}", "requested_by": "dpo@example.test", "mode": "preview"}
    base.update(values)
    return base


def test_a_request_is_submitted_through_the_rest_api(api_server: AirflowProcesses) -> None:
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
def test_invalid_conf_is_refused_with_a_reason(api_server: AirflowProcesses, change: dict[str, Any], field: str) -> None:
    token = api_server.token()
    bad = {k: v for k, v in conf(**change).items() if v is not None or k != "reference"}

    status, body = api_server.call("POST", "/api/v2/dags/deletion_requests/dagRuns",
                                   {"logical_date": None, "conf": bad}, token)

    assert 400 <= status < 500, (status, body)
    assert field in json.dumps(body), body


def test_the_api_refuses_an_anonymous_trigger(api_server: AirflowProcesses) -> None:
    status, _ = api_server.call("POST", "/api/v2/dags/deletion_requests/dagRuns",
                                {"logical_date": None, "conf": conf()})
    assert status in (401, 403)
