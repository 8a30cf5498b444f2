"""Runs one audited purge the way a daily task does, slowly, so that a test can kill -9 it.

``python -m tests.stores.crash_driver '<json>'`` purges one spec through
``daily.execute_specs`` (the real store, the real audit ledger) with small batches and a
pause after each batch; the test watches the store, sends SIGKILL part-way, and reruns the
same spec in-process with ``run_spec(..., pause=0)``. Connections come from the
``AIRFLOW_CONN_*`` variables the test exported.

The pause is the MySQL store's own ``sleep_between_batches``; Redis and COS have no pacing
of their own, so here the pause follows each pipeline round trip / each DeleteObjects.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Mapping

from devservers.connections import DEV_KEYS
from include.retention.airflow_context import RunRef
from include.retention.daily.purge import execute_specs
from include.retention.facts import LedgerFacts
from include.retention.crypto import RetentionCrypto
from include.retention.policy import load_policy
from include.retention.stores.base import RetentionStore

KEYS = RetentionCrypto(
    subject_hash_key=DEV_KEYS["subject_hash_key"].encode(),
    subject_encryption_key=DEV_KEYS["subject_encryption_key"].encode(),
    certificate_key=DEV_KEYS["certificate_key"].encode(),
)
RUN = RunRef(run_id="", dag_id="retention_crash_test", task_id="purge")


def paced_store(store: str, batch_size: int, pause: float, options: Mapping[str, Any]) -> RetentionStore:  # type: ignore[type-arg]
    """The store back end with ``batch_size`` and a pause of ``pause`` seconds after each batch."""
    if store == "mysql":
        from include.retention.stores.mysql import MySqlStore

        return MySqlStore(batch_size=batch_size, sleep_between_batches=pause)
    if store == "redis":
        from redis.client import Pipeline

        from include.retention.stores.redis import RedisStore

        if pause:
            execute = Pipeline.execute

            def paced_execute(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
                replies = execute(self, *args, **kwargs)
                time.sleep(pause)
                return replies

            Pipeline.execute = paced_execute  # type: ignore[method-assign]
        return RedisStore(batch_size=batch_size, scan_count=batch_size)
    if store == "cos":
        from include.retention.stores.cos import DEFAULT_COS_CONN_ID, CosStore

        policy = load_policy()
        cos = CosStore(timezone=policy.timezone, bucket=options["bucket"], batch_size=batch_size, page_size=batch_size,
                       aws_conn_id=options.get("aws_conn_id", DEFAULT_COS_CONN_ID))
        if pause:
            delete_batch = cos._delete_batch

            def paced_delete_batch(*args: Any, **kwargs: Any) -> Any:
                errors = delete_batch(*args, **kwargs)
                time.sleep(pause)
                return errors

            cos._delete_batch = paced_delete_batch  # type: ignore[method-assign]
        return cos
    raise ValueError(f"no crash driver for store {store!r}")


def run_spec(job: Mapping[str, Any], *, pause: float) -> list[dict[str, Any]]:
    """Purge ``job["spec"]`` for run ``job["run_id"]`` through the daily task's code path."""
    spec = job["spec"]
    store = paced_store(spec["store"], int(job["batch_size"]), pause, job.get("options", {}))
    run = RunRef(run_id=job["run_id"], dag_id=RUN.dag_id, task_id=RUN.task_id)
    return execute_specs(load_policy(), [spec], dry_run=False, run=run, crypto=KEYS, facts=LedgerFacts(),
                         stores={spec["store"]: store})


if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    run_spec(job, pause=float(job["pause"]))
