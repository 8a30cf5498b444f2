"""Every DAG file imports cleanly, fast, and carries what an operator needs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def dagbag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_no_import_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}


def test_one_daily_dag_per_category(dagbag, policy) -> None:  # type: ignore[no-untyped-def]
    daily = {d for d in dagbag.dag_ids if d.startswith("retention_") and d.removeprefix("retention_") in policy.categories}
    assert daily == {f"retention_{c}" for c in policy.categories}


def test_every_dag_has_tags_owner_retries_and_docs(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.dags, "no DAGs found"
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md) > 200, f"{dag_id} has no operator doc"
        assert dag.max_active_runs is not None
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", f"{dag_id}.{t.task_id} has no owner"
            assert t.retries >= 1, f"{dag_id}.{t.task_id} has no retries"
            assert t.execution_timeout is not None, f"{dag_id}.{t.task_id} has no timeout"


def test_daily_dags_purge_through_one_pool_per_store(dagbag) -> None:  # type: ignore[no-untyped-def]
    for dag_id, dag in dagbag.dags.items():
        for t in dag.tasks:
            if t.task_id.startswith("purge_"):
                assert t.pool == "retention_" + t.task_id.removeprefix("purge_")


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_parse_time_under_one_second(path: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    DagBag(dag_folder=str(path))  # warm imports shared by all files (airflow itself)
    start = time.perf_counter()
    bag = DagBag(dag_folder=str(path))
    elapsed = time.perf_counter() - start
    assert not bag.import_errors
    assert elapsed < 1.0, f"{path.name} took {elapsed:.2f}s to parse"
