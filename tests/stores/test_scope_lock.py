"""Two runs purging at once: one scope (target and tenant) at a time, each counting its own.

A backfill run and the resumed scheduled run of one daily DAG can purge the same records at
the same time on two workers. COS's DeleteObjects reports a key as deleted whether or not it
existed, so two purges of the same objects at once can both count them (the cluster e2e saw
recordings counted 101 for 69 gone). ``audit.audited_purge`` therefore holds, after the
attempt's lock, a lock per target and tenant (``audit.scope_key``) for the whole purge.

Two drivers (``tests/stores/crash_driver.py``: the daily task's code path, real Swift, real
ledger, small paced batches) purge in two processes. So that they start together however
their start-ups (Airflow's imports) differ on a busy machine, the test holds the scope locks
itself until both drivers wait on the ledger server, then lets go. While they run it samples
the bucket and the server's process list, so it sees the waiting itself, not only the end
state: an audit row's ``started_at`` is taken before the locks, so the rows' intervals
overlap whether or not one purge waited for the other.
"""

from __future__ import annotations

import subprocess
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import pytest

from include.retention.ledger import audit
from include.retention.policy import Policy
from include.retention.selections import ExpiredSelection
from tests.fixtures.cos import CosBucket
from tests.fixtures.mysql import MySqlDatabase
from tests.stores.test_audit import audit_rows
from tests.stores.test_audit import run_id as new_run_id
from tests.stores.test_crash_safety import CUTOFF, START_SECONDS, job, start_driver

pytestmark = pytest.mark.servers

TARGET = "call_data.recordings"
#: Twelve expired days of March (the cut-off is 15 April), ten recordings a day.
DAYS = [f"2026/03/{day:02d}" for day in range(1, 13)]
PER_DAY = 10
#: 5 objects a DeleteObjects and a 0.25 s pause after each: about 6 s of deleting per purge.
BATCH, PAUSE = 5, 0.25
#: How long the drivers may take once let go.
FINISH_SECONDS = 120


def units(tenant: str) -> list[str]:
    """The day prefixes of ``tenant`` that the runs purge."""
    return [f"recordings/{tenant}/{day}/" for day in DAYS]


def recordings(tenant: str) -> set[str]:
    """``PER_DAY`` recordings of ``tenant`` under each of its expired day prefixes."""
    return {f"{unit}call-{i:03d}.wav" for unit in units(tenant) for i in range(PER_DAY)}


def expired_purge(run_id: str, tenant: str, bucket: CosBucket) -> dict[str, Any]:
    """A driver job: the run's purge of ``tenant``'s expired day prefixes of recordings."""
    selection = {"kind": "expired", "before": CUTOFF.isoformat(), "tenant": tenant, "exclude_tenants": [],
                 "units": units(tenant)}
    return job(run_id, "cos", TARGET, selection, batch_size=BATCH, pause=PAUSE, bucket=bucket.name)


def scope_lock_name(policy: Policy, tenant: str) -> str:
    """The named lock ``audit._attempt_lock`` takes for this target and tenant."""
    selection = ExpiredSelection(before=CUTOFF, tenant=tenant, units=tuple(units(tenant)))
    return f"retention_scope_{audit.scope_key(policy.target(TARGET), selection)[:40]}"


def waiting_for(ledger_db: MySqlDatabase, lock: str) -> int:
    """How many connections of the ledger server wait in ``GET_LOCK(lock, ...)`` right now."""
    rows = ledger_db.query(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE = 'User lock' AND INFO LIKE %s"
        " AND ID <> CONNECTION_ID()", (f"%GET_LOCK('{lock}'%",))
    return int(rows[0][0])


@contextmanager
def gate(ledger_db: MySqlDatabase, *locks: str) -> Iterator[None]:
    """Hold these named locks until the block ends; closing the connection frees them all at once."""
    conn = ledger_db.connect()
    try:
        cur = conn.cursor()
        for lock in locks:
            cur.execute("SELECT GET_LOCK(%s, 0)", (lock,))
            assert cur.fetchone() == (1,), f"someone else holds {lock}"
        yield
    finally:
        conn.close()


@contextmanager
def drivers(jobs: list[dict[str, Any]]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """A driver per job, each in a process of its own; any still running at the end is killed."""
    procs = [start_driver(j) for j in jobs]
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
            if p.stderr:
                p.stderr.close()


def poll(procs: list[subprocess.Popen[bytes]], done: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``done`` until true; fail if ``seconds`` pass first or a driver fails."""
    deadline = time.monotonic() + seconds
    while not done():
        for p in procs:
            if p.poll() not in (None, 0):
                raise AssertionError(f"a driver exited {p.returncode}: "
                                     f"{p.stderr.read().decode()[-3000:] if p.stderr else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:g} s")
        time.sleep(0.02)


def run_to_the_end(procs: list[subprocess.Popen[bytes]], sample: Callable[[], None]) -> None:
    """Call ``sample`` until every driver has exited, and require that each succeeded."""

    def exited() -> bool:
        if all(p.poll() is not None for p in procs):
            return True
        sample()
        return False

    poll(procs, exited, FINISH_SECONDS, "the drivers finishing")
    assert [p.returncode for p in procs] == [0] * len(procs)


def only_row(ledger_db: MySqlDatabase, run_id: str) -> dict[str, Any]:
    (row,) = audit_rows(ledger_db, run_id)
    return row


def test_two_runs_purging_one_tenant_at_once_take_turns_and_count_each_object_once(
    ledger_db: MySqlDatabase, cos_bucket: CosBucket, policy: Policy
) -> None:
    doomed = recordings("12")
    kept = recordings("123")  # expired too, of the tenant whose id starts with 12
    kept |= {"recordings/12/2026/04/20/call-000.wav"}  # the tenant's, after the cut-off
    kept |= {"backups/12/2026-03-01/call_data/part-0.sql.gz"}  # the same tenant, another target
    cos_bucket.put(doomed | kept)
    total = len(doomed)
    backfill, scheduled = new_run_id(), new_run_id()
    lock = scope_lock_name(policy, "12")
    waited_mid_purge: list[int] = []  # objects gone at the instants a purge waited for the other

    def sample() -> None:
        gone = total - len(cos_bucket.keys() & doomed)
        if 0 < gone < total and waiting_for(ledger_db, lock) == 1:
            waited_mid_purge.append(gone)

    with drivers([expired_purge(backfill, "12", cos_bucket), expired_purge(scheduled, "12", cos_bucket)]) as procs:
        with gate(ledger_db, lock):
            poll(procs, lambda: waiting_for(ledger_db, lock) == 2, START_SECONDS, "both runs waiting for the scope")
            assert cos_bucket.keys() == doomed | kept  # neither deletes before it holds the scope
        run_to_the_end(procs, sample)

    assert waited_mid_purge, "the second run's purge never waited on the scope lock while the first deleted"
    assert cos_bucket.keys() == kept
    first, second = sorted((only_row(ledger_db, r) for r in (backfill, scheduled)), key=lambda r: -r["deleted"])
    assert first["attempt_key"] != second["attempt_key"]  # two runs: the attempt lock alone would not serialise
    assert (first["outcome"], second["outcome"]) == ("ok", "ok")
    assert first["planned"] == first["deleted"] == total
    # The second counted when it got the lock, after the first had finished: what was left.
    assert second["planned"] == total - first["deleted"] == second["deleted"]
    assert second["finished_at"] >= first["finished_at"]
    assert first["deleted"] + second["deleted"] == total


def test_purges_of_two_tenants_of_one_target_run_at_the_same_time(
    ledger_db: MySqlDatabase, cos_bucket: CosBucket, policy: Policy
) -> None:
    tenant_12, tenant_123 = recordings("12"), recordings("123")  # 123's keys share 12's prefix
    kept = {"recordings/12/2026/04/20/call-000.wav", "recordings/123/2026/04/20/call-000.wav"}
    cos_bucket.put(tenant_12 | tenant_123 | kept)
    run_12, run_123 = new_run_id(), new_run_id()
    locks = scope_lock_name(policy, "12"), scope_lock_name(policy, "123")
    both_mid_purge: list[tuple[int, int]] = []  # (gone of 12, gone of 123) while both were deleting

    def sample() -> None:
        present = cos_bucket.keys()
        gone_12, gone_123 = len(tenant_12 - present), len(tenant_123 - present)
        if 0 < gone_12 < len(tenant_12) and 0 < gone_123 < len(tenant_123):
            both_mid_purge.append((gone_12, gone_123))

    with drivers([expired_purge(run_12, "12", cos_bucket), expired_purge(run_123, "123", cos_bucket)]) as procs:
        with gate(ledger_db, *locks):
            poll(procs, lambda: [waiting_for(ledger_db, lock) for lock in locks] == [1, 1], START_SECONDS,
                 "each tenant's purge waiting for its own scope")
        run_to_the_end(procs, sample)

    # Had one waited for the other, one tenant would be untouched or done whenever the other was mid-way.
    assert both_mid_purge, "the two tenants' purges never deleted at the same time"
    assert cos_bucket.keys() == kept
    for run_id, tenant, objects in ((run_12, "12", tenant_12), (run_123, "123", tenant_123)):
        row = only_row(ledger_db, run_id)
        assert (row["tenant_id"], row["outcome"], row["planned"], row["deleted"]) == (tenant, "ok", len(objects),
                                                                                     len(objects))
