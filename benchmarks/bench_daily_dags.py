"""Benchmark: the five daily DAGs over a large data set, on private servers. Not part of the tests.

    .venv/bin/python benchmarks/bench_daily_dags.py [--tenants 500] [--calls 5000000] [--redis-keys 1000000]
        [--objects 20000] [--months 12] [--terminated 25] [--as-of 2026-11-28] [--executor dagtest|celery|both]
    scripts/bench.sh daily_dags

It starts its own MariaDB (``--mysql-port``, default 3326), redis-server, single-node Swift s3api
and Elasticsearch stand-in on spare ports (never the shared servers), stops each by its pid and
removes their files at the end. Into them it loads, with bulk paths only, a year (``--months``)
of a contact center of ``--tenants`` tenants (ids ``9700001``..), named exactly as the policy says:

- MySQL: ``call_records`` (``--calls`` rows, monthly partitions; ``INSERT ... SELECT`` from the
  Sequence engine), ``service_records`` (30 % of the calls, unpartitioned), ``call_metrics`` (per
  tenant, local day and one of ``--metrics-agents`` agents), agents, administrators, tenants and
  the configuration tables;
- Redis (pipelined): ``--redis-keys`` keys ``cc:{tenant}:agent:{agent}:profile|status`` and
  ``cc:{tenant}:session:{agent}:{session}``, plus queue and IVR keys no target names;
- COS (PutObject from a thread pool): ``--objects`` objects, the recordings the call records point
  at (``recordings/{tenant}/{yyyy/mm/dd}/{call_id}.wav``) and ``--backup-days`` days of backups
  per tenant around the 28-day cut-off (``backups/{tenant}/{yyyy-mm-dd}/{category}/{table}.json.gz``);
- Elasticsearch (bulk API): ``cc-logs-{tenant}-{yyyy.mm}``, one index per tenant and month.

The ledger gets a termination request for the last ``--terminated`` tenants (received ten days
before the as-of date), so that the until-termination categories have something to delete.

A child process (the Airflow side; its peak RSS is read from ``wait4``) migrates a private SQLite
metadata DB, makes one warm-up run (``retention_configuration``, dry run, the day before:
the first ``dag.test()`` of a process builds the in-process API app) and then runs each daily
DAG once with ``devservers.airflow_local.run_dag`` as scheduled for midnight of ``--as-of``
(Asia/Singapore), with ``allow_large_purge`` and an ``override_reason``: a first run over a year
of backlog deletes about half of the call tables, past the circuit breaker's ``max_share`` 0.5.
Per DAG it records the wall time, the task instances of the run in the metadata DB (mapped
indexes counted one by one), the ``plan`` task's duration from its start and end, what the audit
says was deleted per store, and the load average. The parse time of each DAG file comes from
``airflow dags report``. Prints markdown.

``--executor celery`` runs the same DAGs on the local CeleryExecutor cluster instead
(``benchmarks/bench_cluster.py``: PostgreSQL metadata DB, two workers, the store pools, through
the REST API), twice: one DAG after another, then all five triggered at once. A purge leaves
nothing for a second run, so each of the two gets a world of its own, loaded the same way
(every row, key, object and index follows from the arguments; the counts are compared);
``--executor both`` first runs ``dag.test()`` on a third such world and prints the tables side by
side. With the cluster, ``--as-of`` defaults to today in the policy zone and must be today:
an unpaused DAG runs its latest scheduled date by itself (``catchup=False``), so the triggered
run must be that one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The seeder's map of backup targets to the tables they hold, and the one month arithmetic.
from devdata.seed_cos import backup_targets  # noqa: E402
from include.retention.timeutil import add_months  # noqa: E402

TENANT_BASE = 9_700_000
BACKUP_DAYS_AGO = (29, 27, 31, 25, 33, 23)  # around the 28-day cut-off: alternately expired and kept
CONFIG_ROWS = {"quick_replies": 3, "blacklist_numbers": 5, "keywords": 5, "role_permissions": 6, "popup_settings": 2}
OVERRIDE = "benchmark: first run over a year of backlog"
DAGTEST_AS_OF = date(2026, 11, 28)  # the date of the dag.test() figures in docs/BENCHMARKS.md


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def timed(what: str, fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    out = fn()
    seconds = time.monotonic() - started
    log(f"{what}: {seconds:.1f} s")
    return out, seconds


class Sizes:
    """The data set, derived from the arguments (one place for every count)."""

    def __init__(self, args: argparse.Namespace) -> None:
        from include.retention.policy import load_policy

        self.policy = load_policy()
        self.as_of_day: date = args.as_of
        self.as_of = datetime.combine(args.as_of, clock.min, tzinfo=self.policy.timezone)
        self.first_day = add_months(args.as_of, -args.months)
        self.days = (args.as_of - self.first_day).days
        # Asia/Singapore has no daylight saving: one offset turns local days into UTC instants in SQL.
        offset = self.as_of.utcoffset()
        assert offset is not None
        self.utc_offset_s = int(offset.total_seconds())
        self.tenants = [str(TENANT_BASE + i) for i in range(1, args.tenants + 1)]
        self.terminated = self.tenants[len(self.tenants) - args.terminated:] if args.terminated else []
        self.calls = args.calls
        self.backup_days = [self.as_of_day - timedelta(days=d) for d in BACKUP_DAYS_AGO[: args.backup_days]]
        self.backup_targets = backup_targets(self.policy)
        self.backup_objects = len(self.tenants) * len(self.backup_days) * sum(len(t) for _, t in self.backup_targets)
        self.recordings = args.objects - self.backup_objects
        if self.recordings <= 0:
            raise SystemExit(f"--objects {args.objects} leaves no room for recordings next to "
                             f"{self.backup_objects:,} backups; raise it or lower --backup-days")
        self.recording_step = max(1, args.calls // self.recordings)
        self.agents = args.agents_per_tenant
        per_agent = args.redis_keys // (len(self.tenants) * self.agents)
        if per_agent < 3:
            raise SystemExit("--redis-keys too small for a profile, a status and a session per agent")
        self.sessions_per_agent = per_agent - 2
        self.metrics_agents = min(args.metrics_agents, self.agents)
        self.months = [add_months(self.as_of_day.replace(day=1), -k) for k in range(args.months - 1, -1, -1)]
        self.docs_per_index = args.docs_per_index


# --------------------------------------------------------------------------- servers


class Servers:
    """Private MariaDB, Redis, Swift and Elasticsearch stand-in; stopped by pid, files removed."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tag = secrets.token_hex(3)
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-daily-{self.tag}-", dir=ROOT / ".run"))
        self.mysql: Any = None
        self.redis: Any = None
        self.swift: Any = None
        self.es: Any = None
        self.endpoints: dict[str, Any] = {}

    def start(self) -> None:
        from benchmarks import bench_elasticsearch, bench_mysql
        from devservers import swift
        from devservers.procs import Endpoint, spare_port
        from tests.fixtures.redis import PrivateRedis

        bench_mysql.PORT = self.args.mysql_port  # its connect() reads the module's port
        self.mysql = bench_mysql.PrivateServer(self.args.mysql_port, self.args.buffer_pool, "1G")
        self.mysql.start()
        self.endpoints["mariadb"] = Endpoint("mariadb", "127.0.0.1", self.args.mysql_port, True, "root", "")
        self.redis = PrivateRedis(self.dir / "redis", persistent=False).start()
        self.endpoints["redis"] = Endpoint("redis", "127.0.0.1", self.redis.port, True)
        self.swift = swift.SwiftNode(self.dir / "swift", spare_port(), name=f"swift-bench-daily-{self.tag}")
        self.endpoints["s3"] = self.swift.start()
        es_port = bench_elasticsearch.free_port()
        self.es = bench_elasticsearch.start_standin(es_port)
        self.endpoints["elasticsearch"] = Endpoint("elasticsearch", "127.0.0.1", es_port, True,
                                                   extra={"scheme": "http"})

    def stop(self) -> None:
        for name, server, stop in (("elasticsearch", self.es, lambda: (self.es.terminate(), self.es.wait(15))),
                                   ("swift", self.swift, lambda: self.swift.stop()),
                                   ("redis", self.redis, lambda: self.redis.stop()),
                                   ("mariadb", self.mysql, lambda: self.mysql.stop())):
            if server is not None:
                try:
                    stop()
                except Exception as exc:  # noqa: BLE001 - stop the others regardless
                    log(f"stopping {name}: {exc}")
        if self.swift is not None:
            shutil.rmtree(self.swift.devices, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def versions(self) -> dict[str, str]:
        from importlib.metadata import version

        from benchmarks import bench_mysql

        (mariadb, pool), = bench_mysql.sql("", "SELECT VERSION(), @@innodb_buffer_pool_size")
        swift_version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "swift"], capture_output=True,
                                       text=True).stdout.strip() or "?"
        return {
            "MariaDB": f"{mariadb} (buffer pool {int(pool) // 2**20} MiB)",
            "Redis": str(self.redis.client().info("server")["redis_version"]),
            "Swift": f"{swift_version} (s3api, one node)",
            "Elasticsearch": "the project's stand-in (devservers/es_standin_server.py, in memory)",
            "Airflow": f"{version('apache-airflow-core')} (task-sdk {version('apache-airflow-task-sdk')})",
            "Python": platform.python_version(),
        }


# --------------------------------------------------------------------------- data


class Loader:
    """Writes the data set into the four servers with bulk paths, and counts what they hold."""

    def __init__(self, sizes: Sizes, servers: Servers, database: str, bucket: str) -> None:
        self.s, self.servers, self.db, self.bucket = sizes, servers, database, bucket

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        from benchmarks import bench_mysql

        return bench_mysql.sql(self.db, statement, params)

    def s3(self) -> Any:
        from devservers import swift
        from include.retention.stores.cos_client import install_content_md5

        return install_content_md5(swift.s3_client(self.servers.endpoints["s3"], max_pool_connections=16))

    def es(self) -> Any:
        from elasticsearch import Elasticsearch

        return Elasticsearch(f"http://127.0.0.1:{self.servers.endpoints['elasticsearch'].port}", request_timeout=300)

    # ------------------------------------------------------------------ MySQL

    def _tenant(self, n: str) -> str:
        """SQL for the tenant id of sequence value expression ``n``."""
        return f"CAST({TENANT_BASE} + 1 + ({n}) MOD {len(self.s.tenants)} AS CHAR)"

    def _fill(self, table: str, count: int, select: str, step: int = 500_000) -> None:
        """``INSERT INTO table SELECT <select> FROM seq_a_to_b`` in steps (``seq`` is 1-based)."""
        for start in range(1, count + 1, step):
            end = min(count, start + step - 1)
            self.sql(f"INSERT INTO `{table}` {select.format(seq=f'seq_{start}_to_{end}')}")

    def mysql_schema(self) -> None:
        from benchmarks import bench_mysql
        from devdata import schema

        first_month = (self.s.first_day - timedelta(days=1)).replace(day=1)  # local midnight is the day before in UTC
        months = (self.s.as_of_day.year - first_month.year) * 12 + self.s.as_of_day.month - first_month.month + 4
        conn = bench_mysql.connect()
        try:
            schema.create_schema(conn.cursor(), self.db, first_month, months)
        finally:
            conn.close()

    def mysql_calls(self) -> None:
        s = self.s
        n = s.calls
        span_s = s.days * 86400
        start = f"TIMESTAMP('{s.first_day.isoformat()}') - INTERVAL {s.utc_offset_s} SECOND"
        # Ids in time order, calls spread evenly over the span; every recording_step-th call recorded.
        self._fill("call_records", n, f"""
            (id, started_at, tenant_id, call_id, direction, agent_id, customer_number, duration_s, recording_key)
            SELECT seq, ts, tenant, MD5(seq), IF(seq MOD 3 = 0, 'outbound', 'inbound'), agent,
                   CONCAT('+65', 80000000 + seq MOD 1000000), 30 + seq MOD 600,
                   IF(seq MOD {s.recording_step} = 0, CONCAT('recordings/', tenant, '/',
                      DATE_FORMAT(ts + INTERVAL {s.utc_offset_s} SECOND, '%Y/%m/%d'), '/', MD5(seq), '.wav'), NULL)
            FROM (SELECT seq, {start} + INTERVAL FLOOR((seq - 1) * {span_s} / {n}) SECOND AS ts,
                         {self._tenant('seq')} AS tenant,
                         CONCAT('a', 1 + (seq DIV {len(s.tenants)}) MOD {s.agents}) AS agent
                  FROM {{seq}}) AS s""")

    def check_recording_keys(self, uploaded: list[str]) -> None:
        """The keys the SQL above wrote are exactly the recordings uploaded (built with the policy's template)."""
        rows = self.sql("SELECT recording_key FROM call_records WHERE recording_key IS NOT NULL")
        written = {str(k) for (k,) in rows}
        recordings = {k for k in uploaded if k.startswith("recordings/")}
        assert written == recordings, f"{len(written ^ recordings)} recording keys differ between MySQL and COS"

    def mysql_rest(self) -> None:
        s, t = self.s, len(self.s.tenants)
        self.sql(f"""INSERT INTO service_records (created_at, tenant_id, call_id, agent_id, customer_number, rating)
                     SELECT started_at + INTERVAL duration_s SECOND, tenant_id, call_id, agent_id, customer_number,
                            1 + id MOD 5
                     FROM call_records WHERE id MOD 10 < 3 ORDER BY id""")
        per_day = t * s.metrics_agents
        self._fill("call_metrics", s.days * per_day, f"""
            (metric_date, tenant_id, agent_id, calls, answered, avg_handle_s)
            SELECT TIMESTAMP('{s.first_day.isoformat()}') - INTERVAL {s.utc_offset_s} SECOND
                     + INTERVAL (seq - 1) DIV {per_day} DAY,
                   {self._tenant('seq - 1')}, CONCAT('a', 1 + ((seq - 1) MOD {per_day}) DIV {t}),
                   20 + seq MOD 30, 15 + seq MOD 15, 120 + seq MOD 300
            FROM {{seq}}""")
        created = f"TIMESTAMP('{s.first_day.isoformat()}')"
        self._fill("tenants", t, f"""(tenant_id, name, region, created_at)
            SELECT {self._tenant('seq - 1')}, CONCAT('Tenant ', seq), 'ap-singapore', {created} FROM {{seq}}""")
        self._fill("agents", t * s.agents, f"""
            (tenant_id, agent_id, name_enc, email_enc, phone_enc, role, created_at, updated_at)
            SELECT {self._tenant('seq - 1')}, CONCAT('a', 1 + (seq - 1) DIV {t}), 'enc', 'enc', 'enc', 'agent',
                   {created}, {created} FROM {{seq}}""")
        self._fill("administrators", t * 2, f"""(tenant_id, admin_id, name_enc, email_enc, created_at, updated_at)
            SELECT {self._tenant('seq - 1')}, CONCAT('adm', 1 + (seq - 1) DIV {t}), 'enc', 'enc', {created}, {created}
            FROM {{seq}}""")
        values = {
            "quick_replies": "(tenant_id, title, body, updated_at) SELECT {t}, 'Greeting', 'Hello', {c}",
            "blacklist_numbers": "(tenant_id, phone_number, reason, created_at) SELECT {t}, "
                                 "CONCAT('+659', 1000000 + seq), 'spam', {c}",
            "keywords": "(tenant_id, keyword, updated_at) SELECT {t}, CONCAT('word', seq), {c}",
            "role_permissions": "(tenant_id, role, permission, updated_at) SELECT {t}, 'agent', 'calls.handle', {c}",
            "popup_settings": "(tenant_id, name, url, updated_at) SELECT {t}, 'CRM', 'https://crm.example/', {c}",
        }
        for table, per_tenant in CONFIG_ROWS.items():
            self._fill(table, t * per_tenant, values[table].format(t=self._tenant("seq - 1"), c=created)
                       + " FROM {seq}")

    def mysql_counts(self) -> dict[str, int]:
        tables = ["call_records", "service_records", "call_metrics", "agents", "administrators", "tenants",
                  *CONFIG_ROWS]
        return {table: int(self.sql(f"SELECT COUNT(*) FROM `{table}`")[0][0]) for table in tables}

    # ------------------------------------------------------------------ Redis

    def redis_keys(self) -> int:
        s = self.s
        state = s.policy.target("agent_info.agent_state").key  # type: ignore[union-attr]
        sessions = s.policy.target("agent_info.agent_sessions").key  # type: ignore[union-attr]
        client = self.servers.redis.client()
        pipe = client.pipeline(transaction=False)
        for tenant in s.tenants:
            for n in range(1, s.agents + 1):
                agent = f"a{n}"
                prefix = state.render(tenant=tenant, agent=agent)
                pipe.hset(prefix + "profile", mapping={"name": "enc", "role": "agent"})
                pipe.set(prefix + "status", "idle")
                session_prefix = sessions.render(tenant=tenant, agent=agent)
                for k in range(s.sessions_per_agent):
                    pipe.set(f"{session_prefix}s{k}", "web")
            # named by no target: a purge must never touch them
            pipe.rpush(f"cc:{tenant}:queue:inbound", "c1", "c2")
            pipe.rpush(f"cc:{tenant}:queue:callback", "c3")
            pipe.hset(f"cc:{tenant}:ivr:menu", mapping={"1": "sales", "0": "operator"})
            if len(pipe) >= 20_000:
                pipe.execute()
        pipe.execute()
        return int(client.dbsize())

    # ------------------------------------------------------------------ COS

    def cos_keys(self) -> list[str]:
        """The recordings of the calls ``mysql_calls`` marks as recorded (the same arithmetic, so that
        uploading need not wait for the rows; ``check_recording_keys`` compares them), and the backups."""
        s = self.s
        recordings = s.policy.target("call_data.recordings")
        first = datetime.combine(s.first_day, clock.min) - timedelta(seconds=s.utc_offset_s)  # naive UTC
        span_s, keys = s.days * 86400, []
        for seq in range(s.recording_step, s.calls + 1, s.recording_step):
            started = first + timedelta(seconds=(seq - 1) * span_s // s.calls)
            tenant = str(TENANT_BASE + 1 + seq % len(s.tenants))
            local_day = (started + timedelta(seconds=s.utc_offset_s)).date()
            call_id = hashlib.md5(str(seq).encode(), usedforsecurity=False).hexdigest()
            prefix = recordings.prefix.render(tenant=tenant, date=local_day)  # type: ignore[union-attr]
            keys.append(f"{prefix}{call_id}.wav")
        for tenant in s.tenants:
            for day in s.backup_days:
                for target, tables in s.backup_targets:
                    prefix = target.prefix.render(tenant=tenant, date=day)  # type: ignore[union-attr]
                    keys += [f"{prefix}{table}.json.gz" for table in tables]
        return keys

    def cos_objects(self, keys: list[str], threads: int) -> None:
        client = self.s3()
        client.create_bucket(Bucket=self.bucket)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda key: client.put_object(Bucket=self.bucket, Key=key, Body=b"RIFF"), keys))

    def cos_count(self) -> int:
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sum(len(page.get("Contents", ())) for page in pages)

    # ------------------------------------------------------------------ Elasticsearch

    def es_indices(self) -> int:
        from benchmarks.bench_elasticsearch import create_indices

        target = self.s.policy.target("log_data.cc_logs")
        client = self.es()
        try:
            return create_indices(client, target, self.s.policy.timezone, self.s.tenants, self.s.months,
                                  self.s.docs_per_index)  # type: ignore[no-any-return]
        finally:
            client.close()

    def es_count(self) -> int:
        client = self.es()
        try:
            return len(client.cat.indices(index="cc-logs-*", format="json"))
        finally:
            client.close()

    def counts(self) -> dict[str, int]:
        out = {f"mysql.{k}": v for k, v in self.mysql_counts().items()}
        out["redis keys"] = int(self.servers.redis.client().dbsize())
        out["cos objects"] = self.cos_count()
        out["elasticsearch indices"] = self.es_count()
        return out


# --------------------------------------------------------------------------- the Airflow side (child)


def conf(dry_run: bool) -> dict[str, Any]:
    # Every param given: dag.test() keeps the params of the last run on the DAG object.
    return {"dry_run": dry_run, "max_share": 0.5, "allow_large_purge": True, "override_reason": OVERRIDE}


def task_instances(dag_id: str, run_id: str) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id,
                                                         TaskInstance.run_id == run_id)).all()
        return [{"task_id": ti.task_id, "map_index": ti.map_index, "state": str(ti.state),
                 "seconds": (ti.end_date - ti.start_date).total_seconds() if ti.start_date and ti.end_date else None}
                for ti in tis]


def seed_ledger(sizes: Sizes) -> None:
    """Migrate the ledger and file the termination requests of the terminated tenants."""
    from include.retention.crypto import RetentionCrypto
    from include.retention.ledger.migrations import migrate
    from include.retention.requests.intake import submit

    migrate()
    keys = RetentionCrypto.from_connection()
    received = sizes.as_of - timedelta(days=10)
    for tenant in sizes.terminated:
        submitted = submit(
            sizes.policy, {"request_type": "termination", "tenant_id": tenant, "mode": "execute",
                           "reference": f"BENCH-{tenant}", "requested_by": "bench@example.test",
                           "received_at": received.isoformat()},
            run_after=received, run_id="bench_daily_dags", crypto=keys, tenant_exists=lambda _: True)
        assert submitted.outcome == "new", submitted


def runner(args: argparse.Namespace) -> None:
    """Run in a child process whose environment points Airflow and the connections at the benchmark."""
    import sqlite3

    from devservers.airflow_local import load_dags, prepare_metadata_db, run_dag
    from include.retention.ledger import audit

    sizes = Sizes(args)
    policy = sizes.policy
    _, migrate_s = timed("metadata DB migrated", prepare_metadata_db)
    db_file = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    with sqlite3.connect(db_file) as conn:  # the in-process Execution API writes while the runner reads
        conn.execute("PRAGMA journal_mode=WAL")
    seed_ledger(sizes)
    dags = load_dags()
    results: dict[str, Any] = {"migrate_s": migrate_s}

    warm = dags["retention_configuration"]
    _, results["warmup_s"] = timed("warm-up (configuration, dry run)",
                                   lambda: run_dag(warm, logical_date=sizes.as_of - timedelta(days=1), conf=conf(True)))
    runs = []
    for category in policy.categories:
        dag_id = f"retention_{category}"
        load_before = os.getloadavg()[0]
        dag_run, seconds = timed(dag_id, lambda: run_dag(dags[dag_id], logical_date=sizes.as_of, conf=conf(False)))
        if str(dag_run.state) != "success":
            raise RuntimeError(f"{dag_id} ended {dag_run.state}: {task_instances(dag_id, dag_run.run_id)}")
        runs.append({
            "dag_id": dag_id, "seconds": seconds, "run_id": dag_run.run_id,
            "tis": task_instances(dag_id, dag_run.run_id),
            "audit": [{"store": r.store, "target": f"{r.category}.{r.target}", "purges": r.purges,
                       "planned": r.planned, "deleted": r.deleted, "failed": r.failed}
                      for r in audit.summary(dag_run.run_id)],
            "load": [load_before, os.getloadavg()[0]],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        })
    results["runs"] = runs
    Path(args.result_file).write_text(json.dumps(results, default=str))


def airflow_env(servers: Servers, database: str, ledger_db: str, bucket: str) -> dict[str, str]:
    from devservers import connections, mysql_users

    home = servers.dir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    ns = connections.Namespace(mysql_database=database, ledger_database=ledger_db, redis_db=0, bucket=bucket)
    # Loaded as root; the DAGs connect as the least-privilege account, as in production.
    mysql_users.ensure_store_user(servers.endpoints["mariadb"], database, ledger_db)
    env = {**os.environ, **connections.airflow_connections(servers.endpoints, ns)}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": str(ROOT) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""),
    })
    return env


def child_argv(args: argparse.Namespace, *mode: str) -> list[str]:
    """This script in ``mode`` (``--runner ...``, ``--seed-ledger``) over the same sizes."""
    argv = [sys.executable, __file__, *mode]
    for name in ("tenants", "calls", "redis_keys", "objects", "months", "terminated", "agents_per_tenant",
                 "metrics_agents", "backup_days", "docs_per_index"):
        argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return argv + ["--as-of", args.as_of.isoformat()]


def run_child(args: argparse.Namespace, env: dict[str, str], workdir: Path) -> tuple[dict[str, Any], float, float]:
    """The runner in a child process: (its results, its wall seconds, its peak RSS in MB)."""
    result_file = workdir / "results.json"
    argv = child_argv(args, "--runner", "--result-file", str(result_file))
    started = time.monotonic()
    with open(workdir / "runner.log", "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        tail = (workdir / "runner.log").read_text(errors="replace")[-6000:]
        raise RuntimeError(f"the runner failed; the end of its log:\n{tail}")
    return json.loads(result_file.read_text()), seconds, usage.ru_maxrss / 1024


def dags_report(env: dict[str, str]) -> list[dict[str, Any]]:
    proc = subprocess.run([sys.executable, "-m", "airflow", "dags", "report", "-o", "json"], env=env,
                          capture_output=True, text=True, check=True, cwd=ROOT)
    # Warnings come first on stdout (graphviz); the JSON list starts on a line of its own.
    start = next(i for i, line in enumerate(proc.stdout.splitlines()) if line.startswith("["))
    return json.loads("\n".join(proc.stdout.splitlines()[start:]))  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- report


def machine() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {ram:.0f} GiB RAM"


def report(args: argparse.Namespace, sizes: Sizes, info: dict[str, str], loads: dict[str, float],
           before: dict[str, int], after: dict[str, int], results: dict[str, Any], child_s: float,
           child_rss: float, parse: list[dict[str, Any]]) -> None:
    print(f"# Daily DAGs over a large data set (as of {sizes.as_of:%Y-%m-%d %H:%M %Z})\n")
    print(f"- Machine: {machine()}; load average at the start {loads['start']:.2f}, "
          f"at the end {os.getloadavg()[0]:.2f}")
    print("- " + "; ".join(f"{k} {v}" for k, v in info.items()))
    print(f"- Data: {len(sizes.tenants)} tenants, {args.months} months ending {sizes.as_of_day - timedelta(days=1)} "
          f"(local); {len(sizes.terminated)} tenants with a termination request; {sizes.agents} agents per tenant")
    print("\n| Data loaded | Count | Load time |\n|---|---:|---:|")
    load_rows = [
        ("MySQL call_records (partitioned)", "mysql.call_records", "mysql_calls"),
        ("MySQL service_records (unpartitioned)", "mysql.service_records", "mysql_rest"),
        ("MySQL call_metrics (partitioned)", "mysql.call_metrics", None),
        ("MySQL agents", "mysql.agents", None),
        ("Redis keys", "redis keys", "redis"),
        ("COS objects (recordings + backups)", "cos objects", "cos"),
        ("Elasticsearch indices", "elasticsearch indices", "elasticsearch"),
    ]
    for name, key, load_key in load_rows:
        when = f"{loads[load_key]:.0f} s" if load_key else "(with the row above)"
        print(f"| {name} | {before[key]:,} | {when} |")
    print(f"\nLoading took {loads['total']:.0f} s in all (stores loaded side by side); "
          f"{sizes.backup_objects:,} of the objects are backups, the rest recordings.\n")

    print("| DAG | Wall time (s) | Task instances | of them mapped | `plan` (s) | Purge tasks (s, sum) | "
          "`verify` (s) | All tasks (s, sum) | Deleted (MySQL rows / Redis keys / COS objects / ES documents) | "
          "Runner peak RSS | Load avg |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|")
    for run in results["runs"]:
        tis = run["tis"]
        plan_s = next(t["seconds"] for t in tis if t["task_id"] == "plan")
        verify_s = next(t["seconds"] for t in tis if t["task_id"] == "verify")
        purge_s = sum(t["seconds"] or 0 for t in tis if t["task_id"].startswith("purge_"))
        all_s = sum(t["seconds"] or 0 for t in tis)
        mapped = sum(1 for t in tis if t["map_index"] >= 0)
        deleted: dict[str, int] = {}
        for row in run["audit"]:
            deleted[row["store"]] = deleted.get(row["store"], 0) + int(row["deleted"])
        by_store = " / ".join(f"{deleted[s]:,}" if s in deleted else "-"
                              for s in ("mysql", "redis", "cos", "elasticsearch"))
        print(f"| {run['dag_id']} | {run['seconds']:.1f} | {len(tis)} | {mapped} | {plan_s:.1f} | {purge_s:.1f} | "
              f"{verify_s:.1f} | {all_s:.1f} | {by_store} | {run['peak_rss_mb']:.0f} MB | "
              f"{run['load'][0]:.1f} → {run['load'][1]:.1f} |")
    print(f"\nWarm-up run (the process's first `dag.test()`, dry run of retention_configuration): "
          f"{results['warmup_s']:.1f} s, not in the table. Metadata DB migration {results['migrate_s']:.0f} s. "
          f"The runner process took {child_s:.0f} s in all, peak RSS {child_rss:.0f} MB.\n")
    print("| Store | Before | After |\n|---|---:|---:|")
    for key in before:
        print(f"| {key} | {before[key]:,} | {after[key]:,} |")
    print("\nPer target (from the audit ledger):\n")
    print("| DAG | Target | Purges | Planned | Deleted |\n|---|---|---:|---:|---:|")
    for run in results["runs"]:
        for row in run["audit"]:
            print(f"| {run['dag_id']} | {row['target']} | {row['purges']} | {row['planned']:,} | {row['deleted']:,} |")
    print("\n| DAG file (`airflow dags report`) | Parse time | DAGs | Tasks |\n|---|---:|---:|---:|")
    for row in parse:
        print(f"| {Path(str(row['file'])).name} | {row['duration']} | {row['dag_num']} | {row['task_num']} |")


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--calls", type=int, default=5_000_000, help="call_records rows")
    parser.add_argument("--redis-keys", type=int, default=1_000_000)
    # 20,000, not the 50,000: single-node Swift here stores and deletes 70-300 objects/s;
    # 50,000 would add 7 minutes of loading alone to a 30-minute run (docs/BENCHMARKS.md).
    parser.add_argument("--objects", type=int, default=20_000, help="COS objects: recordings plus backups")
    parser.add_argument("--months", type=int, default=12, help="history, and monthly log indices per tenant")
    parser.add_argument("--terminated", type=int, default=25, help="tenants with a termination request")
    parser.add_argument("--agents-per-tenant", type=int, default=200)
    parser.add_argument("--metrics-agents", type=int, default=5, help="agents per tenant with daily call_metrics")
    parser.add_argument("--backup-days", type=int, default=2, choices=range(0, len(BACKUP_DAYS_AGO) + 1))
    parser.add_argument("--docs-per-index", type=int, default=10)
    parser.add_argument("--as-of", type=date.fromisoformat, default=None,
                        help=f"local date of the runs (midnight, the policy's time zone); default "
                             f"{DAGTEST_AS_OF}, with the cluster today (the only date it accepts)")
    parser.add_argument("--executor", choices=("dagtest", "celery", "both"), default="dagtest",
                        help="dag.test() one task at a time; the CeleryExecutor cluster; or both, side by side")
    parser.add_argument("--mysql-port", type=int, default=3326)
    parser.add_argument("--buffer-pool", default="2G")
    parser.add_argument("--put-threads", type=int, default=8, help="threads uploading objects")
    parser.add_argument("--runner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    parser.add_argument("--seed-ledger", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.terminated > args.tenants:
        parser.error("--terminated cannot exceed --tenants")
    if args.executor != "dagtest" and not (args.runner or args.seed_ledger):
        from include.retention.policy import load_policy

        today = datetime.now(load_policy().timezone).date()
        if args.as_of not in (None, today):
            parser.error(f"--executor {args.executor} runs as of today ({today}) only: unpausing a daily DAG "
                         "makes the scheduler run its latest date beside a triggered run of another")
        args.as_of = today
    if args.as_of is None:
        args.as_of = DAGTEST_AS_OF
    return args


class World:
    """Private servers holding one loaded data set, and the Airflow environment over them."""

    def __init__(self, args: argparse.Namespace, sizes: Sizes) -> None:
        self.args, self.sizes = args, sizes
        self.servers = Servers(args)
        self.loads: dict[str, float] = {"start": os.getloadavg()[0]}
        tag = self.servers.tag
        self.database, self.ledger_db, self.bucket = f"bench_daily_{tag}", f"bench_ledger_{tag}", f"bench-daily-{tag}"
        self.data = Loader(sizes, self.servers, self.database, self.bucket)
        self.before: dict[str, int] = {}
        self.after: dict[str, int] = {}
        self.env: dict[str, str] = {}
        self.versions: dict[str, str] = {}

    def load(self) -> None:
        args, sizes, data, loads = self.args, self.sizes, self.data, self.loads
        timed("servers started", self.servers.start)
        data.mysql_schema()
        started = time.monotonic()
        keys = data.cos_keys()

        def mysql() -> None:
            _, loads["mysql_calls"] = timed(f"MySQL: {sizes.calls:,} call records", data.mysql_calls)
            _, loads["mysql_rest"] = timed("MySQL: the other tables", data.mysql_rest)

        def store(name: str, what: str, fn: Callable[[], Any]) -> None:
            loads[name] = timed(what, fn)[1]

        with ThreadPoolExecutor(max_workers=4) as pool:
            jobs = [pool.submit(mysql),
                    pool.submit(store, "cos", f"COS: {len(keys):,} objects",
                                lambda: data.cos_objects(keys, args.put_threads)),
                    pool.submit(store, "redis", "Redis keys", data.redis_keys),
                    pool.submit(store, "elasticsearch", "ES indices", data.es_indices)]
            for job in jobs:
                job.result()
        data.check_recording_keys(keys)
        loads["total"] = time.monotonic() - started
        self.before = data.counts()
        log(f"loaded: {self.before}")
        self.env = airflow_env(self.servers, self.database, self.ledger_db, self.bucket)
        self.versions = self.servers.versions()


def in_world(args: argparse.Namespace, sizes: Sizes, run: Callable[[World], Any]) -> tuple[World, Any]:
    """Load a world, ``run`` over it, count what is left; the servers stopped and removed after."""
    world = World(args, sizes)
    try:
        world.load()
        out = run(world)
        world.after = world.data.counts()
        return world, out
    finally:
        world.servers.stop()


def dagtest(args: argparse.Namespace, world: World) -> dict[str, Any]:
    results, child_s, child_rss = run_child(args, world.env, world.servers.dir)
    return {"results": results, "child_s": child_s, "child_rss": child_rss, "parse": dags_report(world.env)}


def on_cluster(args: argparse.Namespace, world: World, together: bool) -> list[Any]:
    """The daily DAGs on the CeleryExecutor cluster over ``world``: serially, or all at once."""
    from benchmarks import bench_cluster

    subprocess.run(child_argv(args, "--seed-ledger"), env=world.env, cwd=ROOT, check=True)
    connections = {k: v for k, v in world.env.items() if k.startswith("AIRFLOW_CONN_")}
    dag_ids = [f"retention_{c}" for c in world.sizes.policy.categories]
    with bench_cluster.running(world.servers.dir / "cluster", world.servers.tag, connections) as client:
        how = bench_cluster.at_once if together else bench_cluster.serial
        return how(client, dag_ids, world.sizes.as_of, conf(False))  # type: ignore[no-any-return]


def main() -> int:
    args = parse_args()
    if args.runner:
        runner(args)
        return 0
    if args.seed_ledger:
        seed_ledger(Sizes(args))
        return 0
    sizes = Sizes(args)
    worlds: list[tuple[str, World]] = []
    serial_dagtest: dict[str, float] | None = None
    if args.executor in ("dagtest", "both"):
        world, out = in_world(args, sizes, lambda w: dagtest(args, w))
        worlds.append(("dag.test()", world))
        report(args, sizes, world.versions, world.loads, world.before, world.after, out["results"], out["child_s"],
               out["child_rss"], out["parse"])
        serial_dagtest = {r["dag_id"]: r["seconds"] for r in out["results"]["runs"]}
    if args.executor in ("celery", "both"):
        from benchmarks import bench_cluster

        world, serial = in_world(args, sizes, lambda w: on_cluster(args, w, together=False))
        worlds.append(("Celery, one DAG after another", world))
        world, together = in_world(args, sizes, lambda w: on_cluster(args, w, together=True))
        worlds.append(("Celery, all five at once", world))
        if args.executor == "celery":
            print(f"# Daily DAGs on the cluster (as of {sizes.as_of:%Y-%m-%d %H:%M %Z})\n")
            print(f"- Machine: {machine()}; load average at the start {worlds[0][1].loads['start']:.2f}, "
                  f"at the end {os.getloadavg()[0]:.2f}")
            print("- " + "; ".join(f"{k} {v}" for k, v in world.versions.items()))
            print(f"- Data: {len(sizes.tenants)} tenants, {args.months} months, {sizes.calls:,} call records, "
                  f"{args.redis_keys:,} Redis keys, {args.objects:,} COS objects; {len(sizes.terminated)} "
                  "terminated tenants")
        bench_cluster.report(serial, together, serial_dagtest)
    if len(worlds) > 1:
        print_worlds(worlds)
    return 0


def print_worlds(worlds: list[tuple[str, World]]) -> None:
    """What each world held before and after its runs: the same data, the same end."""
    print("\n| Store | Before (each world) | " + " | ".join(f"After: {name}" for name, _ in worlds) + " |")
    print("|---|---:|" + "---:|" * len(worlds))
    first = worlds[0][1].before
    for key in first:
        befores = {w.before.get(key) for _, w in worlds}
        before = f"{first[key]:,}" if len(befores) == 1 else " / ".join(f"{w.before.get(key, 0):,}" for _, w in worlds)
        print(f"| {key} | {before} | " + " | ".join(f"{w.after.get(key, 0):,}" for _, w in worlds) + " |")
    same_before = all(w.before == first for _, w in worlds)
    same_after = all(w.after == worlds[0][1].after for _, w in worlds)
    print(f"\nThe worlds held the same counts before: {'yes' if same_before else 'NO'}; "
          f"after: {'yes' if same_after else 'NO'}.")


if __name__ == "__main__":
    sys.exit(main())
