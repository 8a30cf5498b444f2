"""The retention_coverage DAG's wiring: one inventory per store in its pool, then record, then alert."""

from __future__ import annotations

from pathlib import Path

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "retention_coverage.py"


def test_the_coverage_dag_wires_one_inventory_per_store_into_record_and_alert() -> None:
    from airflow.dag_processing.dagbag import DagBag

    from include.retention.policy import STORES

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert not bag.import_errors
    dag = bag.dags["retention_coverage"]
    assert "coverage" in dag.tags and dag.max_active_runs == 1 and not dag.catchup
    for store in STORES:
        task = dag.get_task(f"inventory_{store}")
        assert task.pool == f"retention_{store}" and task.downstream_task_ids == {"record"}
    assert dag.get_task("record").downstream_task_ids == {"alert"}
    assert set(dag.params) == {"redis_sample_keys", "mysql_rows", "es_documents"}
