"""One termination or deletion request through the ``deletion_requests`` DAG in this process,
for the demo and the tests: ``dag.test()`` of the DAG, then the request's outcome as the ledger
records it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from devservers.airflow_local import DAGS_DIR


def run_request_via_dag_test(
    conf: Mapping[str, Any], *, run_after: datetime | None = None, dags_folder: str | None = None
) -> dict[str, Any]:
    """Process one request in-process with ``dag.test()`` and return its ledger outcome.

    Needs a migrated Airflow metadata DB (``airflow db migrate``) and the store connections
    as usual; the pools ``retention_<store>`` are created when missing. Returns the request's summary, its steps, the
    DAG run's state, and its certificate (signed JSON and Markdown) when it completed.
    """
    from airflow.dag_processing.dagbag import DagBag

    from include.retention.certificates.issue import load
    from include.retention.certificates.render import render_markdown
    from include.retention.ledger.requests import find_by_reference
    from include.retention.ledger.request_steps import list_steps
    from include.retention.pools import ensure_store_pools
    from include.retention.request_states import REQUESTS_DAG_ID

    ensure_store_pools(only_missing=True)  # dag.test() waits forever on a task whose pool does not exist
    folder = dags_folder or str(DAGS_DIR / "deletion_requests.py")
    bag = DagBag(dag_folder=folder)
    if REQUESTS_DAG_ID not in bag.dags:
        raise RuntimeError(f"{REQUESTS_DAG_ID} did not load: {bag.import_errors}")
    dag = bag.dags[REQUESTS_DAG_ID]
    kwargs: dict[str, Any] = {"logical_date": None, "run_conf": dict(conf)}
    if run_after is not None:
        kwargs["run_after"] = run_after
    dag_run = dag.test(**kwargs)
    out: dict[str, Any] = {"run_id": dag_run.run_id, "dag_run_state": str(dag_run.state)}
    reference = conf.get("reference")
    request = find_by_reference(reference) if isinstance(reference, str) else None
    if request is None:
        out["request"] = None
        return out
    out["request"] = request.summary()
    out["steps"] = [s.as_dict() for s in list_steps(request.request_id)]
    stored = load(request.request_id)
    out["certificate"] = stored.document if stored else None
    out["markdown"] = render_markdown(stored.document) if stored else None
    return out
