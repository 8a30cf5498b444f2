"""Benchmark: MySqlStore purges against pt-archiver on identical data. Not part of the tests.

    .venv/bin/python benchmarks/bench_mysql.py [--rows 1200000] [--repeat 1] [--only keyset|drop] [--server private|shared]

By default it starts a private MariaDB (``--buffer-pool``, 1 GiB: the working set fits, so
the figures measure the tools rather than a busy disk) on ``--port`` 3316 under
``.run/bench-mariadb-*``, and stops it (by pid) and removes it at the end; ``--server
shared`` uses the dev MariaDB on 3306 as it is. It creates a database ``bench_mysql_<random>``, loads ``--rows``
rows spanning 2026 into a source table once, and for every run reloads the table under
test from it, so that each tool starts from the same data and a similarly warm cache:

1. unpartitioned ``service_records``: keyset purge of the six expired months (all tenants)
   against ``pt-archiver --purge --limit 5000 --commit-each --bulk-delete``;
2. ``call_records`` partitioned by month: DROP PARTITION of the six expired months (one
   statement, with the exact row counts the audit needs) against pt-archiver on the same rows.

Each purge by the store runs in a child process (Python, Airflow's MySqlHook, the store),
whose peak RSS is read from ``wait4``. Prints a markdown table; drops the database at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devdata import schema  # noqa: E402

UTC = timezone.utc
HOST, USER = "127.0.0.1", "root"
PORT = 3306  # set by main() to the server under test
CUTOFF = datetime(2026, 7, 1, tzinfo=UTC)  # six expired months: January to June 2026
FIRST_MONTH = date(2026, 1, 1)
BATCH = 5000


def connect(db: str = "") -> Any:
    import MySQLdb

    return MySQLdb.connect(host=HOST, port=PORT, user=USER, passwd="", db=db, charset="utf8mb4", autocommit=True)


def sql(db: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = connect(db)
    try:
        cur = conn.cursor()
        cur.execute(statement, params or None)
        return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


# --------------------------------------------------------------------------- server


class PrivateServer:
    """A throw-away MariaDB started for the benchmark; stopped by its pid, files removed."""

    def __init__(self, port: int, buffer_pool: str, redo_log: str) -> None:
        self.port, self.buffer_pool, self.redo_log = port, buffer_pool, redo_log
        self.dir = Path(tempfile.mkdtemp(prefix="bench-mariadb-", dir=ROOT / ".run"))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        datadir = self.dir / "data"
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True)
        log = open(self.dir / "mariadb.log", "ab")
        self.proc = subprocess.Popen(
            ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={datadir}", "--user=root",
             "--bind-address=127.0.0.1", f"--port={self.port}", f"--socket={self.dir / 'mariadb.sock'}",
             f"--pid-file={self.dir / 'mariadb.pid'}", f"--innodb-buffer-pool-size={self.buffer_pool}",
             f"--innodb-log-file-size={self.redo_log}",
             "--skip-log-bin"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                connect().close()
                return
            except Exception:  # noqa: BLE001 - not up yet
                if self.proc.poll() is not None:
                    break
                time.sleep(0.3)
        raise RuntimeError(f"private MariaDB did not start; see {self.dir / 'mariadb.log'}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------- data


def load_source(db: str, rows: int) -> None:
    """A source table of ``rows`` service records spread evenly over 2026, ids in time order."""
    seconds = 365 * 86400
    sql(db, "CREATE TABLE src LIKE service_records")
    # The Sequence engine generates the rows server-side: deterministic, no client round trips.
    step = 200_000
    for start in range(1, rows + 1, step):
        end = min(rows, start + step - 1)
        sql(db, f"""
            INSERT INTO src (id, created_at, tenant_id, call_id, agent_id, customer_number, rating, note_enc)
            SELECT seq, TIMESTAMP('2026-01-01') + INTERVAL FLOOR((seq - 1) * {seconds} / {rows}) SECOND,
                   CAST(1 + seq MOD 50 AS CHAR), MD5(seq), CONCAT('agent', seq MOD 200),
                   CONCAT('+65', 80000000 + seq MOD 100000), seq MOD 5, NULL
            FROM seq_{start}_to_{end}""")


def reload(db: str, table: str) -> float:
    """Re-create ``table`` (schema DDL) and copy the source rows into it; returns seconds."""
    started = time.monotonic()
    statements = dict(zip(schema.TABLES, schema.ddl(FIRST_MONTH, 12)))
    sql(db, f"DROP TABLE IF EXISTS `{table}`")
    sql(db, statements[table])
    if table == "service_records":
        sql(db, "INSERT INTO service_records SELECT * FROM src")
    else:
        sql(db, """INSERT INTO call_records (id, started_at, tenant_id, call_id, direction, agent_id,
                     customer_number, duration_s, recording_key)
                   SELECT id, created_at, tenant_id, call_id, 'inbound', agent_id, customer_number, 60,
                     CONCAT('recordings/', tenant_id, '/', DATE_FORMAT(created_at, '%Y/%m/%d'), '/', id, '.mp3')
                   FROM src""")
    return time.monotonic() - started


def quiesce(private: bool) -> float:
    """Wait until the server has flushed the reload's dirty pages and purged old row versions.

    Otherwise the page cleaner and the purge threads of the last reload compete with the
    next run. On the private server the flush is forced; the shared one is only waited for.
    """
    started = time.monotonic()

    def status() -> tuple[int, int]:
        dirty = sql("", "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS"
                        " WHERE VARIABLE_NAME = 'INNODB_BUFFER_POOL_PAGES_DIRTY'")
        history = sql("", "SELECT COUNT FROM information_schema.INNODB_METRICS WHERE NAME = 'trx_rseg_history_len'")
        return int(dirty[0][0]), int(history[0][0]) if history else 0

    if private:
        sql("", "SET GLOBAL innodb_max_dirty_pages_pct = 0")
    try:
        while time.monotonic() - started < 300:
            dirty, history = status()
            if dirty < 200 and history < 5000:
                break
            time.sleep(0.5)
    finally:
        if private:
            sql("", "SET GLOBAL innodb_max_dirty_pages_pct = DEFAULT")
    return time.monotonic() - started


def expired_rows(db: str, table: str, column: str) -> int:
    return int(sql(db, f"SELECT COUNT(*) FROM `{table}` WHERE `{column}` < %s",
                   (CUTOFF.replace(tzinfo=None),))[0][0])


# --------------------------------------------------------------------------- runners


def run_store(db: str, mode: str) -> dict[str, Any]:
    """Run one purge by the store in a child process; its timings plus its peak RSS."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(ROOT / ".run" / "airflow-bench-mysql"),
        "AIRFLOW_CONN_RETENTION_MYSQL": f"mysql://{USER}@{HOST}:{PORT}/{db}?charset=utf8mb4",
        "BENCH_MYSQL_PORT": str(PORT),
    }
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, __file__, "--child", mode], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"child {mode} failed ({proc.returncode})")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["process_seconds"] = time.monotonic() - started
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux: KiB
    return result


def child(mode: str) -> None:
    from include.retention.policy import load_policy
    from include.retention.selections import ExpiredSelection
    from include.retention.stores.mysql import MySqlStore

    # An Airflow worker has Airflow loaded before a task starts: import it before the clock
    # starts too. Connecting stays inside the timed call.
    from airflow.providers.mysql.hooks.mysql import MySqlHook  # noqa: F401

    policy = load_policy()
    store = MySqlStore(batch_size=BATCH, partition_row_counts="estimate" if mode == "drop-estimate" else "exact")
    store.range_deletes = mode != "keyset-lists"
    if mode.startswith("keyset"):
        target = policy.target("call_analytics.service_records")
        selection = ExpiredSelection(before=CUTOFF)
    else:
        target = policy.target("call_data.call_records")
        units = tuple(u.name for u in store.dated_units(target) if u.end <= CUTOFF)  # type: ignore[arg-type]
        selection = ExpiredSelection(before=CUTOFF, units=units)
    started = time.monotonic()
    result = store.purge(target, selection)  # type: ignore[arg-type]
    seconds = time.monotonic() - started
    remaining = store.verify(target, selection)  # type: ignore[arg-type]
    store.close()
    print(json.dumps({"seconds": seconds, "deleted": result.deleted, "planned": result.planned,
                      "batches": result.batches, "method": result.method, "remaining": remaining,
                      "partitions": result.details.get("partitions", [])}))


def run_pt_archiver(db: str, table: str, column: str) -> dict[str, Any]:
    argv = [
        "pt-archiver", "--source", f"h={HOST},P={PORT},u={USER},D={db},t={table},A=utf8mb4", "--purge",
        "--where", f"{column} < '{CUTOFF.replace(tzinfo=None):%Y-%m-%d %H:%M:%S}'",
        "--limit", str(BATCH), "--commit-each", "--bulk-delete", "--statistics",
    ]
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, check=True)
    seconds = time.monotonic() - started
    deleted = next(int(line.split()[-1]) for line in proc.stdout.splitlines() if line.startswith("DELETE"))
    return {"seconds": seconds, "deleted": deleted, "argv": argv}


def drop_variants(db: str, units: list[str], private: bool) -> dict[str, float]:
    """The pieces of a partition purge, timed on their own (fresh reload for each)."""
    out: dict[str, float] = {}
    reload(db, "call_records")
    quiesce(private)
    t = time.monotonic()
    sql(db, f"SELECT COUNT(*) FROM call_records PARTITION ({', '.join(units)})")
    out["exact COUNT(*) of the 6 partitions"] = time.monotonic() - t
    t = time.monotonic()
    sql(db, "SELECT SUM(TABLE_ROWS) FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = %s"
            " AND TABLE_NAME = 'call_records' AND PARTITION_NAME IN (" + ", ".join(["%s"] * len(units)) + ")",
        (db, *units))
    out["estimate from information_schema"] = time.monotonic() - t
    t = time.monotonic()
    sql(db, f"ALTER TABLE call_records DROP PARTITION {', '.join(units)}")
    out["one ALTER ... DROP PARTITION for all 6"] = time.monotonic() - t
    reload(db, "call_records")
    quiesce(private)
    t = time.monotonic()
    for unit in units:
        sql(db, f"ALTER TABLE call_records DROP PARTITION {unit}")
    out["one ALTER per partition (6 statements)"] = time.monotonic() - t
    return out


# --------------------------------------------------------------------------- report


def versions() -> dict[str, str]:
    import MySQLdb

    cpu = "?"
    if shutil.which("lscpu"):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                cpu = line.split(":", 1)[1].strip()
    pt = subprocess.run(["pt-archiver", "--version"], capture_output=True, text=True).stdout.strip()
    (server, pool, redo, flush, binlog), = sql("", "SELECT VERSION(), @@innodb_buffer_pool_size, "
                                                "@@innodb_log_file_size, @@innodb_flush_log_at_trx_commit, @@log_bin")
    return {
        "machine": f"{os.cpu_count()} cores ({cpu}), {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**30} GiB RAM",
        "server": f"MariaDB {server}, innodb_buffer_pool_size {int(pool) // 2**20} MiB, "
                  f"innodb_log_file_size {int(redo) // 2**20} MiB, "
                  f"innodb_flush_log_at_trx_commit={flush}, log_bin={'ON' if binlog else 'OFF'}",
        "tools": f"{pt}; Python {platform.python_version()}, mysqlclient {'.'.join(map(str, MySQLdb.version_info[:3]))}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_200_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each purge; the median is reported")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database (shared server)")
    parser.add_argument("--server", choices=["private", "shared"], default="private")
    parser.add_argument("--port", type=int, default=3316, help="port of the private server")
    parser.add_argument("--buffer-pool", default="1G", help="innodb_buffer_pool_size of the private server")
    parser.add_argument("--redo-log", default="1G",
                        help="innodb_log_file_size of the private server (a small redo log makes both tools "
                             "wait on checkpoint flushing, which is disk noise, not the tools)")
    parser.add_argument("--only", choices=["keyset", "drop"], help="run one of the two comparisons only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global PORT
    if args.child:
        PORT = int(os.environ["BENCH_MYSQL_PORT"])
        child(args.child)
        return 0
    server = None
    if args.server == "private":
        PORT = args.port
        server = PrivateServer(args.port, args.buffer_pool, args.redo_log)
        server.start()
    try:
        return bench(args)
    finally:
        if server is not None:
            server.stop()


def bench(args: argparse.Namespace) -> int:

    db = f"bench_mysql_{secrets.token_hex(4)}"
    where = f"a private MariaDB on {PORT}" if args.server == "private" else f"the shared MariaDB on {PORT}"
    print(f"# MySQL purge benchmark ({args.rows:,} rows, {where})\n", flush=True)
    conn = connect()
    schema.create_schema(conn.cursor(), db, FIRST_MONTH, 12)
    conn.close()
    try:
        t = time.monotonic()
        load_source(db, args.rows)
        print(f"source loaded in {time.monotonic() - t:.1f} s", file=sys.stderr, flush=True)

        def median(values: list[dict[str, Any]]) -> dict[str, Any]:
            return sorted(values, key=lambda r: r["seconds"])[len(values) // 2]

        results: dict[str, dict[str, Any]] = {}
        all_runs: dict[str, dict[str, list[float]]] = {}
        for label, table, column, modes in (
            ("keyset", "service_records", "created_at", ("keyset", "keyset-lists")),
            ("drop", "call_records", "started_at", ("drop", "drop-estimate")),
        ):
            if args.only and label != args.only:
                continue
            runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in (*modes, "pt-archiver")}
            for _ in range(args.repeat):
                # Interleaved, so that a busy neighbour on the machine slows every tool alike.
                for mode in runs:
                    reload(db, table)
                    expected = expired_rows(db, table, column)
                    quiesce(args.server == "private")
                    if mode == "pt-archiver":
                        run = run_pt_archiver(db, table, column)
                    else:
                        run = run_store(db, mode)
                        assert run["remaining"] == 0, run
                    assert expired_rows(db, table, column) == 0, run
                    # An estimated partition count is reported as such; every other count is exact.
                    assert run["deleted"] == expected or mode == "drop-estimate", run
                    run["expected"] = expected
                    runs[mode].append(run)
                    print(f"{label}/{mode}: {run['seconds']:.2f} s", file=sys.stderr, flush=True)
            results[label] = {mode: median(values) for mode, values in runs.items()}
            all_runs[label] = {mode: [r["seconds"] for r in values] for mode, values in runs.items()}
        variants = (drop_variants(db, list(results["drop"]["drop"]["partitions"]), args.server == "private")
                    if "drop" in results else {})

        info = versions()
        print(f"- Machine: {info['machine']}\n- Server: {info['server']}\n- Tools: {info['tools']}")
        print(f"- Rows: {args.rows:,} over 2026 (ids in time order), 50 tenants; cut-off {CUTOFF:%Y-%m-%d} UTC; "
              f"batch {BATCH}; median of {args.repeat} run(s)\n")
        print("| Purge | Rows | Store (s) | Store rows/s | pt-archiver (s) | pt-archiver rows/s | Ratio | "
              "Store peak RSS |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        rows_out = (
            ("keyset", "keyset", "6 months, unpartitioned: keyset batches, key ranges and key windows (default)"),
            ("keyset", "keyset-lists", "6 months, unpartitioned: keyset batches, key lists only"),
            ("drop", "drop", "6 months, partitioned: DROP PARTITION, exact COUNT for the audit (default)"),
            ("drop", "drop-estimate", "6 months, partitioned: DROP PARTITION, estimated counts"),
        )
        rows_out = tuple(row for row in rows_out if row[0] in results)
        for label, mode, name in rows_out:
            ours, theirs = results[label][mode], results[label]["pt-archiver"]
            theirs_rate = theirs["deleted"] / theirs["seconds"]
            if ours["deleted"] != ours["expected"]:
                name += f" (counted {ours['deleted']:,}, {ours['deleted'] / ours['expected'] - 1:+.1%})"
            ours_rate = ours["expected"] / ours["seconds"]
            print(f"| {name} | {ours['expected']:,} | {ours['seconds']:.3f} | {ours_rate:,.0f} | "
                  f"{theirs['seconds']:.2f} | {theirs_rate:,.0f} | {ours_rate / theirs_rate:,.1f}x | "
                  f"{ours['peak_rss_mb']:.0f} MB |")
        print("\nStore times are the `purge()` call (with its COUNTs); the child process including the Python"
              " and Airflow start took " + ", ".join(
                  f"{results[label][mode]['process_seconds']:.1f} s ({mode})" for label, mode, _ in rows_out) +
              ". pt-archiver times are its whole run.\n")
        print("Every run, in seconds, in the order they ran:\n")
        for label, modes in all_runs.items():
            for mode, seconds in modes.items():
                print(f"- {label} / {mode}: " + ", ".join(f"{x:.3f}" for x in seconds))
        print()
        if variants:
            print("| Piece of a partition purge (6 partitions) | Seconds |\n|---|---:|")
            for name, seconds in variants.items():
                print(f"| {name} | {seconds:.3f} |")
        any_label = next(iter(results))
        print("\npt-archiver: `" + " ".join(results[any_label]["pt-archiver"]["argv"]).replace(db, "<db>") + "`")
    finally:
        if not args.keep:
            sql("", f"DROP DATABASE IF EXISTS `{db}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
