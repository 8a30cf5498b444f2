"""What a task takes from its Airflow context: the run it belongs to and the run's instant.

Time comes from the run, never from the worker's clock: ``data_interval_end`` for scheduled
and backfill runs, ``run_after`` for a manual run (which has no data interval).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping

#: Every DAG of the package starts from these; a DAG changes only what it must.
DEFAULT_ARGS: Mapping[str, Any] = {
    "owner": "data-retention",
    "retries": 3,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(hours=1),
}


def default_args(**changes: Any) -> dict[str, Any]:
    """The package's default task arguments with ``changes`` applied (e.g. a shorter ``execution_timeout``)."""
    return {**DEFAULT_ARGS, **changes}


@dataclass(frozen=True)
class RunRef:
    """Which Airflow run and task a purge belongs to, for the audit."""

    run_id: str
    dag_id: str
    task_id: str

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> RunRef:
        ti = context["ti"]
        return cls(run_id=str(context["run_id"]), dag_id=str(ti.dag_id), task_id=str(ti.task_id))


def _aware(value: Any) -> datetime:
    instant = datetime.fromisoformat(value.isoformat()) if hasattr(value, "isoformat") else value
    if not isinstance(instant, datetime) or instant.tzinfo is None:
        raise ValueError("the run's instant has no time zone")
    return instant


def run_after_from_context(context: Mapping[str, Any]) -> datetime:
    """The run's ``run_after``: when a request run was triggered (every run has one)."""
    return _aware(context["dag_run"].run_after)


def as_of_from_context(context: Mapping[str, Any]) -> datetime:
    """The run's own instant: ``data_interval_end`` for scheduled and backfill runs,
    ``run_after`` for a manual run that has no data interval. Never the wall clock."""
    end = context.get("data_interval_end")
    return _aware(end) if end is not None else run_after_from_context(context)
