"""The approval step of deletion_requests: where it sits, and that its wait ends before the run does."""

from __future__ import annotations

from typing import Any

import pytest

from include.retention.policy import STORES, load_policy
from include.retention.request_states import REQUESTS_DAG_ID


@pytest.fixture(scope="module")
def requests_dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import ROOT

    bag = DagBag(dag_folder=str(ROOT / "dags" / "deletion_requests.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[REQUESTS_DAG_ID]


def test_the_approval_sits_between_the_plan_and_every_purge(requests_dag: Any) -> None:
    approve = requests_dag.get_task("approve")
    assert approve.upstream_task_ids == {"plan"}
    assert approve.downstream_task_ids == {f"purge_{store}" for store in STORES}
    assert approve.options == ["Approve", "Reject"] and set(approve.serialized_params) == {"reason"}


def test_the_wait_ends_before_the_run_times_out(requests_dag: Any) -> None:
    from include.retention.policy import DEFAULT_POLICY_PATH, MAX_APPROVAL_MINUTES

    approve = requests_dag.get_task("approve")
    assert approve.response_timeout.total_seconds() == load_policy().request_approval.timeout_minutes * 60
    assert MAX_APPROVAL_MINUTES * 60 < requests_dag.dagrun_timeout.total_seconds()
    assert load_policy(DEFAULT_POLICY_PATH).request_approval.timeout_minutes <= MAX_APPROVAL_MINUTES
