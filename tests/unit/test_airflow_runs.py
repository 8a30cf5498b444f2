"""The REST client of ``forget_runs`` as its connection describes it, and the honest skip when
the connection ``retention_airflow_api`` is missing (no server: nothing is called)."""

from __future__ import annotations

import json
from typing import Any

import pytest

CONN_ENV = "AIRFLOW_CONN_RETENTION_AIRFLOW_API"


def test_without_the_connection_the_task_is_skipped_and_names_the_alternative(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    from include.retention.airflow_runs import AirflowApi

    monkeypatch.delenv(CONN_ENV, raising=False)

    with pytest.raises(AirflowSkipException) as skipped:
        AirflowApi.from_connection()

    message = str(skipped.value)
    assert "retention_airflow_api" in message and "NOT deleted" in message
    assert "airflow db clean --tables dag_run --dag-ids deletion_requests" in message


@pytest.mark.parametrize(
    "conn, base_url",
    [
        pytest.param({"host": "airflow-api", "port": 8080}, "http://airflow-api:8080", id="host-port"),
        pytest.param({"host": "airflow.example.test", "schema": "https"}, "https://airflow.example.test",
                     id="schema-is-the-scheme"),
        pytest.param({"host": "ignored", "extra": {"base_url": "https://example.test/airflow/"}},
                     "https://example.test/airflow", id="extra-base-url-wins"),
    ],
)
def test_the_base_url_comes_from_the_connection(monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any],
                                                base_url: str) -> None:
    from include.retention.airflow_runs import AirflowApi

    monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "http", "login": "ops", "password": "pw", **conn}))

    assert AirflowApi.from_connection().base_url == base_url


def test_a_connection_without_credentials_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from include.retention.airflow_runs import AirflowApi

    monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "http", "host": "airflow-api", "port": 8080}))

    with pytest.raises(ValueError, match="login and a password"):
        AirflowApi.from_connection()
