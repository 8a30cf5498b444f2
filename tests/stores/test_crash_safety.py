"""kill -9 mid-purge, then rerun: the end state is exact and the audit ledger adds up.

A subprocess (``tests/stores/crash_driver.py``) purges one spec through the daily task's
code path (``daily.execute_specs``: real store, real ledger) in small paced batches. The
test watches the store until the purge has made progress, sends SIGKILL, checks the
partial state and the ``running`` row the killed attempt left, reruns the same spec of
the same run, and checks: every expired record gone, every neighbour kept, and the
ledger rows of the run sum to exactly what disappeared (the killed attempt closed as
``interrupted`` with its count settled, no double count).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

from include.retention.ledger import audit
from include.retention.policy import Policy
from include.retention.selections import ExpiredSelection, TenantSelection
from tests.fixtures.cos import CosBucket
from tests.fixtures.mysql import MySqlDatabase
from tests.fixtures.redis import RedisKeys
from tests.stores.crash_driver import RUN, run_spec
from tests.stores.test_audit import audit_rows
from tests.stores.test_audit import run_id as new_run_id

pytestmark = pytest.mark.servers

ROOT = Path(__file__).resolve().parents[2]
UTC = timezone.utc
CUTOFF = datetime(2026, 4, 15, tzinfo=UTC)
#: Wait at most this long for the driver to start deleting (it imports Airflow first).
START_SECONDS = 60


def start_driver(job: dict[str, Any]) -> subprocess.Popen[bytes]:
    """The driver purging ``job`` in a process of its own (its stderr kept for the failure message)."""
    return subprocess.Popen([sys.executable, "-m", "tests.stores.crash_driver", json.dumps(job)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def kill_mid_purge(job: dict[str, Any], gone: Callable[[], int], total: int, *, at_least: int) -> int:
    """Start the driver on ``job``, SIGKILL it once ``at_least`` (and not all) records are gone.

    :return: how many records were gone right after the kill.
    """
    proc = start_driver(job)
    try:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            n = gone()
            if n >= at_least:
                break
            if proc.poll() is not None:
                raise AssertionError(f"the driver exited ({proc.returncode}) before it was killed: "
                                     f"{proc.stderr.read().decode()[-3000:] if proc.stderr else ''}")
            time.sleep(0.01)
        else:
            raise AssertionError(f"the driver deleted {gone()} of {total} in {START_SECONDS} s")
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()
    time.sleep(0.2)  # a request the killed process had in flight may still be applied by the server
    after = gone()
    assert at_least <= after < total, f"the kill came too late to test anything: {after} of {total} gone"
    return after


def assert_ledger_adds_up(ledger_db: MySqlDatabase, run_id: str, total: int, gone_at_kill: int) -> None:
    """Two attempts: the killed one, settled by the rerun, and the rerun; together exactly ``total``."""
    killed, rerun = audit_rows(ledger_db, run_id)
    assert (killed["outcome"], killed["planned"], killed["settled_by"]) == ("interrupted", total, rerun["id"])
    assert killed["deleted"] >= gone_at_kill  # the killed attempt did at least what was seen gone
    assert killed["verified_remaining"] == total - killed["deleted"] == rerun["planned"]
    assert (rerun["outcome"], rerun["deleted"], rerun["settled_by"]) == ("ok", total - killed["deleted"], None)
    assert killed["attempt_key"] == rerun["attempt_key"]
    (summary,) = audit.summary(run_id)
    assert (summary.purges, summary.interrupted, summary.failed, summary.deleted) == (2, 1, 0, total)


def job(run_id: str, store: str, target: str, selection: dict[str, Any], *, batch_size: int, pause: float,
        **options: Any) -> dict[str, Any]:
    spec = {"target": target, "store": store, "selection": selection, "reason": "crash test", "planned": 0}
    return {"run_id": run_id, "spec": spec, "batch_size": batch_size, "pause": pause, "options": options}


# --------------------------------------------------------------------------- MySQL chunks


def test_mysql_chunks_killed_mid_purge_then_rerun(ledger_db: MySqlDatabase, cc_mysql: MySqlDatabase) -> None:
    total = 2_000
    edge = CUTOFF.replace(tzinfo=None)
    expired = [{"id": i, "metric_date": edge - timedelta(minutes=total + 1 - i), "tenant_id": "12",
                "agent_id": f"a{i % 7}", "calls": 1, "answered": 1, "avg_handle_s": 60} for i in range(1, total + 1)]
    kept = [{"id": total + i, "metric_date": edge + timedelta(seconds=i), "tenant_id": "12", "agent_id": "a1",
             "calls": 1, "answered": 1, "avg_handle_s": 60} for i in range(50)]  # at or after the cut-off
    cc_mysql.insert("call_metrics", expired + kept)
    run_id = new_run_id()
    selection = {"kind": "expired", "before": CUTOFF.isoformat(), "tenant": None, "exclude_tenants": [], "units": []}
    purge = job(run_id, "mysql", "call_analytics.call_metrics", selection, batch_size=40, pause=0.03)

    def gone() -> int:
        return total - int(cc_mysql.query("SELECT COUNT(*) FROM call_metrics WHERE metric_date < %s", (edge,))[0][0])

    at_kill = kill_mid_purge(purge, gone, total, at_least=200)
    (running,) = audit_rows(ledger_db, run_id)
    assert (running["outcome"], running["planned"], running["deleted"]) == ("running", total, 0)

    run_spec(purge, pause=0)

    assert cc_mysql.ids("call_metrics") == {r["id"] for r in kept}
    assert_ledger_adds_up(ledger_db, run_id, total, at_kill)


# --------------------------------------------------------------------------- Redis batches


def test_redis_batches_killed_mid_purge_then_rerun(ledger_db: MySqlDatabase, redis_keys: RedisKeys) -> None:
    tenant, neighbour = "93001", "930012"  # the neighbour's keys share the tenant's prefix
    total = 3_000
    doomed = {f"cc:{tenant}:agent:a{i % 50}:k{i}" for i in range(total)}
    others = {f"cc:{tenant}:queue:q{i}" for i in range(20)}  # the same tenant, another target
    neighbours = {f"cc:{neighbour}:agent:a{i % 50}:k{i}" for i in range(300)}
    redis_keys.write(sorted(doomed | others), tenant=tenant)
    redis_keys.write(sorted(neighbours), tenant=neighbour)
    run_id = new_run_id()
    purge = job(run_id, "redis", "agent_info.agent_state", {"kind": "tenant", "tenant": tenant},
                batch_size=30, pause=0.02)

    def gone() -> int:
        return total - len(redis_keys.existing(tenant) & doomed)

    at_kill = kill_mid_purge(purge, gone, total, at_least=300)
    (running,) = audit_rows(ledger_db, run_id)
    assert (running["outcome"], running["planned"]) == ("running", total)

    run_spec(purge, pause=0)

    assert redis_keys.existing(tenant) | redis_keys.existing(neighbour) == others | neighbours
    assert_ledger_adds_up(ledger_db, run_id, total, at_kill)


# --------------------------------------------------------------------------- COS batches


def test_cos_batches_killed_mid_purge_then_rerun(ledger_db: MySqlDatabase, cos_bucket: CosBucket) -> None:
    total = 120
    doomed = {f"recordings/12/2026/{3 + i % 4:02d}/{1 + i % 28:02d}/call-{i:05d}.wav" for i in range(total)}
    kept = {f"recordings/123/2026/03/01/call-{i:05d}.wav" for i in range(10)}  # shares the tenant id's prefix
    kept |= {"backups/12/2026-03-01/call_data/part-0.sql.gz"}  # the same tenant, another target
    cos_bucket.put(doomed | kept)
    run_id = new_run_id()
    purge = job(run_id, "cos", "call_data.recordings", {"kind": "tenant", "tenant": "12"},
                batch_size=10, pause=0.15, bucket=cos_bucket.name)

    def gone() -> int:
        return total - len(cos_bucket.keys() & doomed)

    at_kill = kill_mid_purge(purge, gone, total, at_least=20)
    (running,) = audit_rows(ledger_db, run_id)
    assert (running["outcome"], running["planned"]) == ("running", total)

    run_spec(purge, pause=0)

    assert cos_bucket.keys() == kept
    assert_ledger_adds_up(ledger_db, run_id, total, at_kill)


# --------------------------------------------------------------------------- the attempt lock


def test_a_second_attempt_waits_for_a_live_one_and_then_refuses(
    ledger_db: MySqlDatabase, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = policy.target("call_analytics.call_metrics")
    selection = ExpiredSelection(before=CUTOFF)
    run_id = new_run_id()
    monkeypatch.setattr(audit, "ATTEMPT_LOCK_SECONDS", 1)
    args: dict[str, Any] = {"dry_run": False, "run_id": run_id, "dag_id": RUN.dag_id, "task_id": RUN.task_id,
                            "target": target, "selection": selection}
    refused: list[BaseException] = []

    def purge_while_another_attempt_runs() -> Any:
        try:
            audit.audited_purge(lambda: pytest.fail("the second attempt must not purge"), matched=lambda: 5, **args)
        except audit.AttemptInProgress as exc:
            refused.append(exc)
        raise RuntimeError("the first attempt fails after the second gave up")

    with pytest.raises(RuntimeError, match="first attempt fails"):
        audit.audited_purge(purge_while_another_attempt_runs, matched=lambda: 5, **args)
    assert len(refused) == 1 and "nothing was deleted" in str(refused[0])
    (row,) = audit_rows(ledger_db, run_id)  # the refused attempt wrote nothing: it never started
    assert (row["outcome"], row["planned"], row["deleted"]) == ("failed", 5, 0)
    # A later attempt finds the failed one and settles it from the counts: 5 -> 2 means 3 went.
    assert audit.audited_purge(lambda: _result(target.qualified_name, 2), matched=lambda: 2, **args).deleted == 2
    first, second = audit_rows(ledger_db, run_id)
    assert (first["outcome"], first["deleted"], first["settled_by"]) == ("failed", 3, second["id"])
    assert audit.summary(run_id)[0].deleted == 5


def _result(target: str, deleted: int) -> Any:
    from include.retention.results import PurgeResult

    return PurgeResult(target, "mysql", "keyset_delete", deleted, deleted)


def test_dry_runs_write_one_row_and_take_no_lock(ledger_db: MySqlDatabase, policy: Policy) -> None:
    target = policy.target("call_analytics.call_metrics")
    run_id = new_run_id()
    from include.retention.results import PurgeResult

    result = PurgeResult(target.qualified_name, "mysql", "keyset_delete", 7, 0, dry_run=True)
    audit.audited_purge(lambda: result, matched=lambda: pytest.fail("a dry run counts in its purge"), dry_run=True,
                        run_id=run_id, dag_id="d", task_id="t", target=target,
                        selection=TenantSelection("12"))
    (row,) = audit_rows(ledger_db, run_id)
    assert (row["outcome"], row["dry_run"], row["planned"], row["attempt_key"]) == ("ok", 1, 7, None)
