"""Server faults that the store tests do not already cover: retried with backoff, or failed
clearly, and never reported as a success.

- A MySQL connection killed while its DELETE runs (the store tests kill it between chunks).
- S3 answering 500/503: Swift cannot be told to, so the store talks to it through a small
  fault-injecting HTTP proxy (``tests/fixtures/faulty_http.py``) with botocore's own retry
  logic (``standard`` mode, 3 attempts in all: botocore's ``max_attempts`` counts retries only,
  ``total_max_attempts`` counts the first attempt too).

The other faults are tested next to their store: see docs/RELIABILITY.md, "Server faults".
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterator
from zoneinfo import ZoneInfo

import pytest

from devservers import connections
from devservers.procs import Endpoint
from include.retention.ledger import audit
from include.retention.policy import MySqlTarget, Policy
from include.retention.selections import ExpiredSelection, TenantSelection
from include.retention.results import PartialPurgeError
from include.retention.stores.cos import CosStore
from include.retention.stores.mysql import MySqlStore
from tests.fixtures.cos import CosBucket
from tests.fixtures.faulty_http import FaultyProxy, is_delete_objects
from tests.fixtures.mysql import MySqlDatabase
from tests.stores.crash_driver import run_spec
from tests.stores.test_audit import audit_rows
from tests.stores.test_audit import run_id as new_run_id

pytestmark = pytest.mark.servers

TZ = ZoneInfo("Asia/Singapore")
FAULTY_COS = "retention_cos_faulty"
S3_ATTEMPTS = 3


# --------------------------------------------------------------------------- MySQL KILL mid-statement


def test_mysql_connection_killed_while_its_delete_runs(cc_mysql: MySqlDatabase, policy: Policy) -> None:
    target = policy.target("call_analytics.call_metrics")
    assert isinstance(target, MySqlTarget)
    cutoff = datetime(2026, 4, 15, tzinfo=timezone.utc)
    edge = cutoff.replace(tzinfo=None)
    cc_mysql.insert("call_metrics", [
        {"id": i, "metric_date": edge - timedelta(minutes=1001 - i) if i <= 1000 else edge, "tenant_id": "12",
         "agent_id": "a1", "calls": 1, "answered": 1, "avg_handle_s": 60}
        for i in range(1, 1011)
    ])
    selection = ExpiredSelection(before=cutoff)
    store = MySqlStore(batch_size=100)
    # A second session holds a lock on row 250, so the third chunk (rows 201-300) waits on it.
    blocker = cc_mysql.connect()
    blocker.autocommit(False)
    blocker.cursor().execute("SELECT id FROM call_metrics WHERE id = 250 FOR UPDATE")
    killed: list[int] = []

    def kill_the_waiting_delete() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # A DELETE of the table still running after 0.3 s is the one waiting on the lock.
            rows = cc_mysql.query(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND COMMAND = 'Query'"
                " AND INFO LIKE 'DELETE FROM `call_metrics`%%' AND TIME_MS > 300", (cc_mysql.name,))
            if rows:
                cc_mysql.execute("KILL CONNECTION %s", (rows[0][0],))
                killed.append(int(rows[0][0]))
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_waiting_delete)
    killer.start()
    try:
        with pytest.raises(PartialPurgeError) as failed:
            store.purge(target, selection)
    finally:
        killer.join(35)
        blocker.rollback()
        blocker.close()
    assert killed, "the DELETE never waited on the lock"
    # The killed statement rolled back whole: exactly the two acknowledged chunks are gone.
    assert failed.value.deleted == 200
    assert store.count(target, selection) == 800
    rerun = store.purge(target, selection)  # a new connection
    assert (rerun.deleted, store.verify(target, selection)) == (800, 0)
    assert cc_mysql.ids("call_metrics") == set(range(1001, 1011))
    store.close()


# --------------------------------------------------------------------------- S3 answering 500/503


@pytest.fixture
def s3_proxy(cos_endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyProxy]:
    """The shared S3 server behind a fault-injecting proxy, as ``retention_cos_faulty``."""
    proxy = FaultyProxy(cos_endpoint.port).start()
    monkeypatch.setenv(f"AIRFLOW_CONN_{FAULTY_COS.upper()}", json.dumps({
        "conn_type": "aws", "login": cos_endpoint.login, "password": cos_endpoint.password,
        "extra": {"endpoint_url": f"http://127.0.0.1:{proxy.port}", "region_name": "us-east-1",
                  "config_kwargs": {"retries": {"mode": "standard", "total_max_attempts": S3_ATTEMPTS},
                                    "connect_timeout": 2, "read_timeout": 60}},
    }))
    try:
        yield proxy
    finally:
        proxy.stop()


def recordings_of(bucket: CosBucket, tenant: str, n: int) -> set[str]:
    keys = {f"recordings/{tenant}/2026/03/{1 + i % 3:02d}/call-{i:05d}.wav" for i in range(n)}
    bucket.put(keys)
    return keys


def faulty_store(bucket: CosBucket) -> CosStore:
    return CosStore(timezone=TZ, aws_conn_id=FAULTY_COS, bucket=bucket.name, batch_size=10)


@pytest.mark.parametrize("status", [pytest.param(500, id="500"), pytest.param(503, id="503")])
def test_s3_error_is_retried_with_backoff_then_succeeds(
    policy: Policy, cos_bucket: CosBucket, s3_proxy: FaultyProxy, status: int
) -> None:
    doomed, kept = recordings_of(cos_bucket, "12", 30), recordings_of(cos_bucket, "123", 3)
    s3_proxy.fail(is_delete_objects, status, times=S3_ATTEMPTS - 1)  # the last attempt gets through
    target = policy.target("call_data.recordings")

    result = faulty_store(cos_bucket).purge(target, TenantSelection("12"))  # type: ignore[arg-type]

    assert (result.deleted, result.planned, result.batches) == (30, 30, 3)
    assert s3_proxy.count(is_delete_objects, status) == S3_ATTEMPTS - 1
    assert s3_proxy.count(is_delete_objects, 200) == 3
    assert cos_bucket.keys() == kept and not (cos_bucket.keys() & doomed)


def test_s3_connection_without_retry_settings_gets_botocore_standard_retries(
    policy: Policy, cos_bucket: CosBucket, s3_proxy: FaultyProxy, cos_endpoint: Endpoint,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a deployment gets from a connection like the one devservers exports (no ``retries``)."""
    plain = connections.airflow_connections({"s3": dataclasses.replace(cos_endpoint, port=s3_proxy.port)},
                                            connections.TEST)["AIRFLOW_CONN_RETENTION_COS"]
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_COS_PLAIN", plain)
    recordings_of(cos_bucket, "12", 5)
    s3_proxy.fail(is_delete_objects, 503)
    store = CosStore(timezone=TZ, aws_conn_id="retention_cos_plain", bucket=cos_bucket.name)

    with pytest.raises(PartialPurgeError, match="ServiceUnavailable") as failed:
        store.purge(policy.target("call_data.recordings"), TenantSelection("12"))  # type: ignore[arg-type]

    assert store.client.meta.config.retries["mode"] == "standard"
    assert s3_proxy.count(is_delete_objects, 503) == 3  # the first attempt and two retries
    assert failed.value.deleted == 0 and len(cos_bucket.keys()) == 5


def test_s3_500_after_the_delete_was_applied_is_retried_and_counted_once(
    policy: Policy, cos_bucket: CosBucket, s3_proxy: FaultyProxy
) -> None:
    recordings_of(cos_bucket, "12", 30)
    kept = recordings_of(cos_bucket, "123", 3)
    s3_proxy.fail(is_delete_objects, 500, times=1, before=False)  # applied, but the reply is lost
    target = policy.target("call_data.recordings")

    result = faulty_store(cos_bucket).purge(target, TenantSelection("12"))  # type: ignore[arg-type]

    # The retry deletes keys already gone, which S3 reports as deleted: each counted once.
    assert (result.deleted, result.batches) == (30, 3)
    assert s3_proxy.count(is_delete_objects) == 4
    assert cos_bucket.keys() == kept


def test_s3_persistent_500_fails_clearly_and_the_rerun_settles_the_ledger(
    ledger_db: MySqlDatabase, cos_bucket: CosBucket, s3_proxy: FaultyProxy
) -> None:
    """Batches in flight (four by default) reach the proxy in no fixed order, and those that
    arrive before the first answer pass; so the assertions hold whatever the order: the run
    raises, its count is what the server acknowledged, the rerun finds exactly what is left,
    and the ledger ends at exactly what left the bucket."""
    doomed = recordings_of(cos_bucket, "12", 100)
    kept = recordings_of(cos_bucket, "123", 3)
    after_first: Callable[[str, str], bool] = lambda m, p: is_delete_objects(m, p) and s3_proxy.count(is_delete_objects) >= 1
    # Once a batch has been answered, the server applies every DeleteObjects but the client hears 500.
    s3_proxy.fail(after_first, 500, before=False)
    run_id = new_run_id()
    job = {"run_id": run_id, "batch_size": 10, "options": {"bucket": cos_bucket.name, "aws_conn_id": FAULTY_COS},
           "spec": {"target": "call_data.recordings", "store": "cos", "selection": {"kind": "tenant", "tenant": "12"},
                    "reason": "fault test", "planned": 100}}

    with pytest.raises(PartialPurgeError) as failed:
        run_spec(job, pause=0)
    assert "InternalError" in str(failed.value)
    acknowledged = failed.value.deleted
    gone = len(doomed - cos_bucket.keys())
    assert acknowledged == 10 * s3_proxy.count(is_delete_objects, 200), "counted what the server acknowledged"
    assert s3_proxy.count(is_delete_objects, 500) >= S3_ATTEMPTS  # retried, then failed clearly
    assert 10 <= acknowledged < gone < 100  # failed batches went, unacknowledged; the failure stopped new ones
    (row,) = audit_rows(ledger_db, run_id)
    assert (row["outcome"], row["planned"], row["deleted"]) == ("failed", 100, acknowledged)

    s3_proxy.clear()
    run_spec(job, pause=0)  # the rerun, with the server healthy again

    assert cos_bucket.keys() == kept
    failed_row, rerun = audit_rows(ledger_db, run_id)
    assert (failed_row["outcome"], failed_row["deleted"], failed_row["settled_by"]) == ("failed", gone, rerun["id"])
    assert (rerun["outcome"], rerun["planned"], rerun["deleted"]) == ("ok", 100 - gone, 100 - gone)
    assert audit.summary(run_id)[0].deleted == 100  # exactly what disappeared
