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


def prepare_metadata_db() -> None:
    """Migrate the metadata DB (idempotent) and create the store pools."""
    from airflow.utils.db import initdb

    from include.retention.pools import ensure_store_pools

    initdb()
    ensure_store_pools()


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
