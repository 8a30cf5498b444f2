"""Benchmark: the ledger verifier over ROWS purge_audit rows, beside one plain read of the same rows.

    flock /tmp/retention-tests.lock .venv/bin/python benchmarks/bench_ledger_verify.py [ROWS]   # default 1000000

A private ledger database on the dev MariaDB (root), migrated; ROWS audit rows shaped like the
daily DAGs' (run, target, tenant, counts, a details JSON) bulk-inserted from MariaDB's sequence
engine; then chained as migration 9 chains existing rows (``adopt_existing``). Timed, side by
side in one process: (a) streaming every row once (``SELECT`` of the hashed columns, no hashing),
(b) ``verify_ledger()`` (every chain's entries, rows against entries, certificates), and
(c) ``verify_ledger()`` after one row in the middle was edited (it must name that row). Then
2,000 ``record_purge`` appends with the chain against 2,000 plain INSERTs of the same rows.
The database is dropped afterwards.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import MySQLdb  # noqa: E402
import MySQLdb.cursors  # noqa: E402

from include.retention.ledger import audit, migrations  # noqa: E402
from include.retention.ledger.chain import adopt_existing, select_columns  # noqa: E402
from include.retention.ledger.verify import verify_ledger  # noqa: E402
from include.retention.policy import load_policy  # noqa: E402
from include.retention.results import PurgeResult  # noqa: E402
from include.retention.selections import TenantSelection  # noqa: E402

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
APPENDS = 2_000
NAME = f"bench_ledger_{secrets.token_hex(4)}"
os.environ["AIRFLOW_CONN_RETENTION_LEDGER"] = f"mysql://root@127.0.0.1:3306/{NAME}?charset=utf8mb4"


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def conn() -> MySQLdb.Connection:
    return MySQLdb.connect(host="127.0.0.1", port=3306, user="root", db=NAME, charset="utf8mb4", autocommit=True)


def timed(label: str, fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - start
    print(f"{label}: {elapsed:.1f} s  [{load()}]", flush=True)
    return elapsed, out


def seed() -> None:
    c = conn()
    cur = c.cursor()
    cur.execute(
        f"""INSERT INTO purge_audit (run_id, dag_id, task_id, category, target, store, selection_kind, tenant_id,
              cutoff, units_count, planned, deleted, verified_remaining, method, dry_run, duration_s, outcome,
              details, started_at, finished_at, attempt_key, rule)
            SELECT CONCAT('scheduled__2026-', LPAD(1 + seq MOD 12, 2, '0'), '-01T00:00:00+00:00'),
                   'retention_call_data', 'purge_call_records', 'call_data', 'call_records', 'mysql', 'expired',
                   CAST(100 + seq MOD 500 AS CHAR), '2026-05-01 00:00:00', 1, seq MOD 5000, seq MOD 5000, 0,
                   'keyset_delete', 0, 0.25 + (seq MOD 100) / 100, 'ok',
                   CONCAT('{{"batches": ', seq MOD 7, ', "selection": {{"kind": "expired", "tenant": "',
                          100 + seq MOD 500, '"}}}}'),
                   '2026-11-28 01:00:00.000000', '2026-11-28 01:00:02.500000', SHA2(seq, 256),
                   '{{"policy_months": 6}}'
            FROM seq_1_to_{ROWS}"""
    )
    c.close()


def plain_read() -> int:
    c = conn()
    cur = c.cursor(MySQLdb.cursors.SSCursor)
    cur.execute(f"SELECT {select_columns('purge_audit')} FROM purge_audit ORDER BY id")
    n = 0
    while rows := cur.fetchmany(5000):
        n += len(rows)
    c.close()
    return n


def appends(policy, chained: bool) -> None:  # type: ignore[no-untyped-def]
    target = policy.target("call_data.call_records")
    t0 = datetime(2026, 11, 28, 1, tzinfo=timezone.utc)
    result = PurgeResult(target.qualified_name, "mysql", "keyset_delete", planned=3, deleted=3, remaining=0)
    if chained:
        for i in range(APPENDS):
            audit.record_purge(run_id="bench", dag_id="d", task_id="t", target=target,
                               selection=TenantSelection(str(100 + i % 500)), result=result, started_at=t0,
                               finished_at=t0)
        return
    c = conn()
    cur = c.cursor()
    for i in range(APPENDS):  # the same INSERT as record_purge's, one autocommit statement each
        values = audit._row("bench", "d", "t", target, TenantSelection(str(100 + i % 500)),
                            {"kind": "tenant", "tenant": str(100 + i % 500)}, planned=3, deleted=3, remaining=0,
                            method="keyset_delete", dry_run=False, override_reason=None, outcome="ok",
                            error_text=None, details={}, started_at=t0, finished_at=t0, why=None)
        cur.execute(f"INSERT INTO purge_audit ({', '.join(audit._COLUMNS)}) VALUES "
                    f"({', '.join(['%s'] * len(audit._COLUMNS))})", tuple(values[k] for k in audit._COLUMNS))
    c.close()


def main() -> None:
    print(f"{ROWS:,} audit rows, database {NAME}  [{load()}]", flush=True)
    migrations.migrate()
    try:
        timed(f"seed {ROWS:,} rows (sequence engine)", seed)
        c = conn()
        adopt_s, adopted = timed("chain them (migration 9's adopt_existing)", lambda: adopt_existing(c.cursor()))
        c.close()
        print(f"  adopted: {adopted}")
        read_s, n = timed("(a) stream every row once, no hashing", plain_read)
        verify_s, report = timed("(b) verify_ledger()", verify_ledger)
        assert report.ok and n == ROWS, report.findings[:3]
        middle = ROWS // 2
        c = conn()
        c.cursor().execute("UPDATE purge_audit SET deleted = deleted + 1 WHERE id = %s", (middle,))
        c.close()
        tampered_s, report = timed("(c) verify_ledger() after an edit of one row in the middle", verify_ledger)
        first = report.first()["purge_audit"]
        assert (first.kind, first.row_id) == ("edited", middle), first
        print(f"  first finding: {first}")
        print(f"ratio verify / plain read: {verify_s / read_s:.1f}x; {ROWS / verify_s:,.0f} rows/s verified")
        policy = load_policy()
        plain_s, _ = timed(f"{APPENDS:,} plain INSERTs", lambda: appends(policy, False))
        chained_s, _ = timed(f"{APPENDS:,} record_purge appends with the chain", lambda: appends(policy, True))
        print(f"ratio chained append / plain insert: {chained_s / plain_s:.1f}x "
              f"({1000 * chained_s / APPENDS:.2f} ms vs {1000 * plain_s / APPENDS:.2f} ms a row)")
    finally:
        c = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
        c.cursor().execute(f"DROP DATABASE IF EXISTS `{NAME}`")
        c.close()


if __name__ == "__main__":
    main()
