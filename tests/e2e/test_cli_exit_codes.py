"""The documented command lines exit 0 when they did the work and non-zero when they did not.

Each case runs the real ``airflow`` CLI in a subprocess, in a private ``AIRFLOW_HOME`` (a copy
of the migrated metadata DB, the four store pools), over the session's real servers. Until
the Deadline Alert was dropped, ``airflow dags test deletion_requests`` exited 1 after every
successful run (Airflow 3.3.2 looks the alert up by an id only the DAG processor assigns).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.e2e.airflow_processes import AirflowProcesses
from tests.e2e.conftest import Stores, World, base_conf

pytestmark = [pytest.mark.servers, pytest.mark.slow]


@pytest.fixture(scope="module")
def airflow(stores: Stores, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowProcesses]:
    """A private Airflow home; its processes see the session's retention connections."""
    home = AirflowProcesses(tmp_path_factory.mktemp("airflow-cli"))
    home.create_store_pools()
    yield home
    home.stop()


def airflow_cli(airflow: AirflowProcesses, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "airflow", *args], env=airflow.env, capture_output=True,
                          text=True, timeout=900, cwd=airflow.home)


def request_state(reference: str) -> str | None:
    from include.retention.ledger.requests import find_by_reference

    found = find_by_reference(reference)
    return found.state if found else None


def test_a_successful_request_run_exits_0(airflow: AirflowProcesses, world: World) -> None:
    conf = base_conf(request_type="termination", tenant_id=world.tenant, reference=f"CLI-{world.tenant}-ok",
                     mode="preview")
    result = airflow_cli(airflow, "dags", "test", "deletion_requests", "--conf", json.dumps(conf))
    assert result.returncode == 0, result.stderr[-3000:]
    assert request_state(conf["reference"]) == "planned"  # the preview planned and counted, deleted nothing
    assert world.rows("agents") > 0


def test_a_refused_request_exits_non_zero(airflow: AirflowProcesses, world: World) -> None:
    conf = base_conf(request_type="termination", tenant_id="9" + world.tenant, reference=f"CLI-{world.tenant}-no")
    result = airflow_cli(airflow, "dags", "test", "deletion_requests", "--conf", json.dumps(conf))
    assert result.returncode != 0
    assert request_state(conf["reference"]) == "rejected"
    assert world.rows("agents") > 0


def _midnight(day: Any) -> str:
    from include.retention.policy import load_policy

    return datetime.combine(day, time.min, tzinfo=load_policy().timezone).isoformat()


def test_a_daily_run_exits_0_and_a_tripped_breaker_exits_non_zero(airflow: AirflowProcesses, world: World,
                                                                  stores: Stores) -> None:
    """The breaker fails the run at once (no retries to wait for), and the exit code says so."""
    day = world.day + timedelta(days=1)
    ok = airflow_cli(airflow, "dags", "test", "retention_configuration", _midnight(day))
    assert ok.returncode == 0, ok.stderr[-3000:]
    tripped = airflow_cli(airflow, "dags", "test", "retention_call_data", _midnight(day + timedelta(days=400)),
                          "--conf", json.dumps({"max_share": 0.01}))
    assert tripped.returncode != 0
    assert "refusing to purge more than 1% of a target" in tripped.stdout + tripped.stderr
    assert world.rows("call_records") > 0  # nothing was deleted


def test_the_admin_cli_exits_non_zero_on_a_refusal(stores: Stores) -> None:
    refused = subprocess.run([sys.executable, "-m", "include.retention.cli.admin", "override", "set", "9999",
                              "call_data", "24", "--reason", "contract", "--by", "ops"],
                             capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert refused.returncode != 0
    assert "unknown tenant 9999" in refused.stderr
