"""Benchmark: MySqlStore purges against pt-archiver and one unbounded DELETE on identical data.

    .venv/bin/python benchmarks/bench_mysql.py [--rows 1200000] [--repeat 3] [--only keyset|drop]
        [--before] [--lists] [--hold-tenant N] [--server private|shared]

Not part of the tests. By default it starts a private MariaDB (``--buffer-pool``, 1 GiB: the
working set fits, so the figures measure the tools rather than a busy disk) on ``--port`` 3316
under ``.run/bench-mariadb-*``, and stops it (by pid) and removes it at the end; ``--server
shared`` uses the dev MariaDB on 3306 as it is. It creates a database ``bench_mysql_<random>``,
loads ``--rows`` rows spanning 2026 into a source table once, and for every run reloads the
table under test from it and waits for a quiet server, so that each tool starts from the same
rows and a similarly warm cache. Runs are interleaved, ``--repeat`` times:

1. unpartitioned ``service_records``, the six expired months (all tenants, or all but
   ``--hold-tenant``, whose rows sit between the others'): the store's keyset purge (with
   ``--before`` also the store as it was before issue 14, from git; with ``--lists`` key
   lists only), ``pt-archiver --purge --limit 5000 --commit-each --bulk-delete``, and one
   unbounded ``DELETE`` (the limit: unsafe in production, one transaction);
2. ``call_records`` partitioned by month: DROP PARTITION of the six expired months (one
   statement, with the exact row counts the audit needs) against pt-archiver on the same rows.

Reported: min, median and max of each tool, the paired ratios, the load average around every
run, how long InnoDB's purge threads took to catch up after it, pt-archiver's own
``--statistics`` and a per-phase profile of one more store run (bench_mysql_profile.py).
Each purge by the store runs in a child process (Python, Airflow's MySqlHook, the store),
whose peak RSS is read from ``wait4``. Prints markdown; drops the database at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_mysql_profile import BEFORE, profile_store, report_profile, store_before  # noqa: E402
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
        (ROOT / ".run").mkdir(exist_ok=True)
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


def held() -> str:
    """The tenant ``--hold-tenant`` keeps (its rows sit between the others' in every key range), or ''."""
    return os.environ.get("BENCH_MYSQL_HOLD", "")


def expired_where(column: str) -> str:
    """What every tool deletes, as SQL for pt-archiver and the single DELETE (constants only)."""
    where = f"`{column}` < '{CUTOFF.replace(tzinfo=None):%Y-%m-%d %H:%M:%S}'"
    return where + (f" AND `tenant_id` <> '{int(held())}'" if held() else "")


def expired_rows(db: str, table: str, column: str) -> int:
    return int(sql(db, f"SELECT COUNT(*) FROM `{table}` WHERE {expired_where(column)}")[0][0])


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

    store_class = store_before() if mode == "keyset-before" else MySqlStore

    # An Airflow worker has Airflow loaded before a task starts: import it before the clock
    # starts too. Connecting stays inside the timed call.
    from airflow.providers.mysql.hooks.mysql import MySqlHook  # noqa: F401

    policy = load_policy()
    store = store_class(batch_size=BATCH, partition_row_counts="estimate" if mode == "drop-estimate" else "exact")
    store.range_deletes = mode != "keyset-lists"
    if mode.startswith("keyset"):
        target = policy.target("call_analytics.service_records")
        selection = ExpiredSelection(before=CUTOFF, exclude_tenants=frozenset({held()} if held() else ()))
    else:
        target = policy.target("call_data.call_records")
        units = tuple(u.name for u in store.dated_units(target) if u.end <= CUTOFF)  # type: ignore[arg-type]
        selection = ExpiredSelection(before=CUTOFF, units=units)
    profile = profile_store(store) if mode == "keyset-profile" else {}
    started = time.monotonic()
    result = store.purge(target, selection)  # type: ignore[arg-type]
    seconds = time.monotonic() - started
    profile = {phase: list(v) for phase, v in profile.items()}  # the purge's, not verify's
    remaining = store.verify(target, selection)  # type: ignore[arg-type]
    store.close()
    print(json.dumps({"seconds": seconds, "deleted": result.deleted, "planned": result.planned,
                      "batches": result.batches, "method": result.method, "remaining": remaining,
                      "partitions": result.details.get("partitions", []), "profile": profile}))


def run_pt_archiver(db: str, table: str, column: str) -> dict[str, Any]:
    argv = [
        "pt-archiver", "--source", f"h={HOST},P={PORT},u={USER},D={db},t={table},A=utf8mb4", "--purge",
        "--where", expired_where(column),
        "--limit", str(BATCH), "--commit-each", "--bulk-delete", "--statistics",
    ]
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, check=True)
    seconds = time.monotonic() - started
    lines = proc.stdout.splitlines()
    deleted = next(int(line.split()[-1]) for line in lines if line.startswith("DELETE"))
    # --statistics ends with "Action Count Time Pct" rows: pt-archiver's own profile.
    profile: dict[str, list[float]] = {}
    if any(line.startswith("Action") for line in lines):
        for line in lines[[i for i, line in enumerate(lines) if line.startswith("Action")][0] + 1:]:
            parts = line.split()
            if len(parts) == 4:
                profile[parts[0]] = [int(parts[1]), float(parts[2])]
    return {"seconds": seconds, "deleted": deleted, "argv": argv, "profile": profile}


def run_single_delete(db: str, table: str, column: str) -> dict[str, Any]:
    """The limit: one unbounded DELETE of every expired row, one transaction (unsafe in production)."""
    conn = connect(db)
    try:
        cur = conn.cursor()
        started = time.monotonic()
        deleted = cur.execute(f"DELETE FROM `{table}` WHERE {expired_where(column)}")
        seconds = time.monotonic() - started
    finally:
        conn.close()
    return {"seconds": seconds, "deleted": int(deleted)}


def purge_backlog_seconds() -> float:
    """Seconds until InnoDB's purge threads have caught up with the run just finished.

    A single DELETE leaves the removal of its delete-marked index entries to them after its
    commit; batches pay for it while they run (two cores here). Shown beside each run's time.
    """
    started = time.monotonic()
    while time.monotonic() - started < 300:
        rows = sql("", "SELECT COUNT FROM information_schema.INNODB_METRICS WHERE NAME = 'trx_rseg_history_len'")
        if not rows or int(rows[0][0]) < 5000:
            break
        time.sleep(0.1)
    return time.monotonic() - started


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
    parser.add_argument("--repeat", type=int, default=3,
                        help="paired runs of each tool; min, median and max are reported")
    parser.add_argument("--lists", action="store_true", help="also run the store with key lists only")
    parser.add_argument("--before", action="store_true", help="also run the store as it was before issue 14")
    parser.add_argument("--hold-tenant", type=int, help="keep this tenant's rows (1-50), as a legal hold does")
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
    if args.hold_tenant is not None:
        os.environ["BENCH_MYSQL_HOLD"] = str(args.hold_tenant)
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


def spread(values: list[float]) -> tuple[float, float, float]:
    """Minimum, median (the mean of the middle two for an even count) and maximum."""
    return min(values), statistics.median(values), max(values)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


STORE_MODES = ("keyset", "keyset-before", "keyset-lists", "drop", "drop-estimate")
LABELS = {
    "keyset": "store: keyset purge (default)",
    "keyset-before": f"store before issue 14 (mysql.py at {BEFORE[:7]})",
    "keyset-lists": "store: keyset batches, key lists only",
    "pt-archiver": "pt-archiver --limit 5000 --commit-each --bulk-delete",
    "single-delete": "one unbounded DELETE (the limit; one transaction)",
    "drop": "store: DROP PARTITION, exact COUNT for the audit (default)",
    "drop-estimate": "store: DROP PARTITION, estimated counts",
}


def one_run(db: str, mode: str, table: str, column: str, private: bool) -> dict[str, Any]:
    """Reload the table, wait for a quiet server, run one tool and check its result."""
    reload(db, table)
    expected = expired_rows(db, table, column)
    quiesce(private)
    load_before = os.getloadavg()[0]
    if mode == "pt-archiver":
        run = run_pt_archiver(db, table, column)
    elif mode == "single-delete":
        run = run_single_delete(db, table, column)
    else:
        run = run_store(db, mode)
        assert run["remaining"] == 0, run
    run["load"] = (load_before, os.getloadavg()[0])
    run["backlog"] = purge_backlog_seconds()
    assert expired_rows(db, table, column) == 0, run
    # An estimated partition count is reported as such; every other count is exact.
    assert run["deleted"] == expected or mode == "drop-estimate", run
    run["expected"] = expected
    print(f"{table}/{mode}: {run['seconds']:.2f} s, load {run['load'][0]:.2f}", file=sys.stderr, flush=True)
    return run


def bench(args: argparse.Namespace) -> int:
    db = f"bench_mysql_{secrets.token_hex(4)}"
    private = args.server == "private"
    where = f"a private MariaDB on {PORT}" if private else f"the shared MariaDB on {PORT}"
    print(f"# MySQL purge benchmark ({args.rows:,} rows, {where})\n", flush=True)
    print(f"- uptime at the start: `{uptime()}`")
    conn = connect()
    schema.create_schema(conn.cursor(), db, FIRST_MONTH, 12)
    conn.close()
    try:
        t = time.monotonic()
        load_source(db, args.rows)
        print(f"source loaded in {time.monotonic() - t:.1f} s", file=sys.stderr, flush=True)
        comparisons = {
            "keyset": ("service_records", "created_at",
                       ("keyset", *(("keyset-before",) if args.before else ()),
                        *(("keyset-lists",) if args.lists else ()), "pt-archiver", "single-delete")),
            "drop": ("call_records", "started_at", ("drop", "drop-estimate", "pt-archiver")),
        }
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for label, (table, column, modes) in comparisons.items():
            if args.only and label != args.only:
                continue
            runs[label] = {mode: [] for mode in modes}
            for _ in range(args.repeat):
                # Interleaved, so that a busy neighbour on the machine slows every tool alike.
                for mode in modes:
                    runs[label][mode].append(one_run(db, mode, table, column, private))
        profiled = one_run(db, "keyset-profile", "service_records", "created_at", private) if "keyset" in runs else None
        variants = drop_variants(db, list(runs["drop"]["drop"][0]["partitions"]), private) if "drop" in runs else {}

        info = versions()
        print(f"- uptime at the end: `{uptime()}`")
        print(f"- Machine: {info['machine']}\n- Server: {info['server']}\n- Tools: {info['tools']}")
        print(f"- Rows: {args.rows:,} over 2026 (ids in time order), 50 tenants; cut-off {CUTOFF:%Y-%m-%d} UTC"
              + (f", tenant {held()} held (kept)" if held() else "") + "; "
              f"batch {BATCH}; {args.repeat} paired run(s) of each tool, interleaved\n")
        for label, by_mode in runs.items():
            print("| Tool | Rows | Min (s) | Median (s) | Max (s) | Median rows/s | Peak RSS |")
            print("|---|---:|---:|---:|---:|---:|---:|")
            for mode, values in by_mode.items():
                low, mid, high = spread([r["seconds"] for r in values])
                rows = values[0]["expected"]
                rss = (f"{min(r['peak_rss_mb'] for r in values):.0f}–{max(r['peak_rss_mb'] for r in values):.0f} MB"
                       if mode in STORE_MODES else "")
                name = LABELS[mode]
                if values[0]["deleted"] != rows:
                    name += f" (counted {values[0]['deleted']:,}, {values[0]['deleted'] / rows - 1:+.1%})"
                print(f"| {name} | {rows:,} | {low:.3f} | {mid:.3f} | {high:.3f} | {rows / mid:,.0f} | {rss} |")
            ours = "keyset" if label == "keyset" else "drop"
            print("\nPaired ratios (each store run against the runs next to it; rows/s over rows/s):\n")
            for other, what in (("pt-archiver", "store / pt-archiver"), ("single-delete", "store / single DELETE"),
                                ("keyset-before", "store / store before issue 14")):
                if other not in by_mode:
                    continue
                ratios = [theirs["seconds"] / mine["seconds"] for mine, theirs in zip(by_mode[ours], by_mode[other])]
                low, mid, high = spread(ratios)
                print(f"- {what}: min {low:.2f}×, median {mid:.2f}×, max {high:.2f}× "
                      f"({', '.join(f'{r:.2f}' for r in ratios)})")
            print("\nEvery run in the order it ran: seconds, load average before → after, seconds until "
                  "InnoDB's purge backlog was drained after it:\n")
            for mode, values in by_mode.items():
                print(f"- {label} / {mode}: " + "; ".join(
                    f"{r['seconds']:.3f} s (load {r['load'][0]:.2f} → {r['load'][1]:.2f}, backlog {r['backlog']:.1f} s)"
                    for r in values))
            print()
            if "pt-archiver" in by_mode:
                mid_pt = sorted(by_mode["pt-archiver"], key=lambda r: r["seconds"])[len(by_mode["pt-archiver"]) // 2]
                if mid_pt.get("profile"):
                    report_profile("pt-archiver's own --statistics (its median run)", mid_pt["profile"],
                                   mid_pt["seconds"], "outside its actions (Perl start, connecting)")
        if profiled is not None:
            report_profile(f"Store purge, profiled run ({profiled['batches']} batches; each DELETE inside "
                           "BEGIN/COMMIT)", profiled["profile"], profiled["seconds"],
                           "client (Python, connecting, between statements)")
        if variants:
            print("| Piece of a partition purge (6 partitions) | Seconds |\n|---|---:|")
            for name, seconds in variants.items():
                print(f"| {name} | {seconds:.3f} |")
        any_label = next(iter(runs))
        print("\npt-archiver: `" + " ".join(runs[any_label]["pt-archiver"][0]["argv"]).replace(db, "<db>") + "`")
    finally:
        if not args.keep:
            sql("", f"DROP DATABASE IF EXISTS `{db}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
