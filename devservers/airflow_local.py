"""Airflow in this process, for the demo and the tests: a migrated SQLite metadata DB, the
per-store pools, and DAG runs through ``dag.test()`` (retries off, so a failure shows at once).

``AIRFLOW_HOME`` must be set before airflow is first imported.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from devservers.procs import PROJECT_ROOT

DAGS_DIR = PROJECT_ROOT / "dags"
#: One pool per store bounds how many purges hit it at once.
STORE_POOLS = {"retention_mysql": 4, "retention_redis": 4, "retention_cos": 4, "retention_elasticsearch": 2}


def prepare_metadata_db() -> None:
    """Migrate the metadata DB (idempotent) and create the store pools."""
    from airflow.models.pool import Pool
    from airflow.utils.db import initdb

    initdb()
    for name, slots in STORE_POOLS.items():
        Pool.create_or_update_pool(name=name, slots=slots, description="retention purges", include_deferred=False)


def load_dags(path: Path = DAGS_DIR) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(path))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return dict(bag.dags)


def run_dag(dag: Any, logical_date: datetime | None = None, conf: dict[str, Any] | None = None) -> Any:
    """Run ``dag`` once in this process; returns the DagRun (check ``.state``)."""
    for task in dag.tasks:
        task.retries = 0
    return dag.test(logical_date=logical_date, run_conf=conf or {})
