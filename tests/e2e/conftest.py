"""End-to-end fixtures: a private Airflow metadata DB, private stores, small seeded tenants.

- The Airflow metadata DB of this session is a private SQLite file, copied from a migrated
  template (``.run/airflow-test/e2e-template-<airflow version>.db``, migrated once under a
  file lock), so concurrent test sessions never share a SQLite file and no session pays
  for ``airflow db migrate`` twice. The four ``retention_<store>`` pools are created in it.
- Stores: a contact-center database ``cc_req_<random>`` and a ledger ``ledger_req_<random>``
  on the shared MariaDB, a bucket ``cc-req-<random>`` on the shared S3 server, Redis db 9
  and the Elasticsearch stand-in with tenant ids of this session only (``96xxxx..``). All are
  dropped when the session ends. The DAGs connect to MySQL as the databases' least-privilege
  account (``devservers.mysql_users``, dropped too); the tests seed and inspect as root.
- :class:`World` seeds one small tenant in all four stores: only what a test needs.
- ``inbox``: a real SMTP server (aiosmtpd) on a spare port, wired as ``retention_smtp``, that
  keeps every e-mail the SLA monitor sends.
"""

from __future__ import annotations

import atexit
import email
import email.policy
import fcntl
import json
import os
import secrets
import shutil
import socket
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_TEST_HOME = Path(os.environ.get("AIRFLOW_HOME", str(ROOT / ".run" / "airflow-test")))
_PRIVATE_DB = AIRFLOW_TEST_HOME / f"e2e-{os.getpid()}-{secrets.token_hex(3)}.db"
AIRFLOW_TEST_HOME.mkdir(parents=True, exist_ok=True)


def _remove_private_db() -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{_PRIVATE_DB}{suffix}").unlink(missing_ok=True)


# Airflow builds its engine when first imported: point it at this session's own file now.
if "airflow" not in sys.modules:
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_PRIVATE_DB}"
    _OWN_DB = True
    atexit.register(_remove_private_db)  # also when no test asked for it (SQLite creates it on connect)
else:  # pragma: no cover - a test module imported airflow before this conftest
    _OWN_DB = False

UTC = timezone.utc


# --------------------------------------------------------------------------- Airflow


def _template_path() -> Path:
    from importlib.metadata import version

    return AIRFLOW_TEST_HOME / f"e2e-template-{version('apache-airflow-core')}.db"


def migrated_template() -> Path:
    """A migrated metadata DB to copy; migrated once per Airflow version, under a file lock."""
    template = _template_path()
    AIRFLOW_TEST_HOME.mkdir(parents=True, exist_ok=True)
    with open(AIRFLOW_TEST_HOME / "e2e-template.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.exists():
            import subprocess

            building = template.with_suffix(".building")
            building.unlink(missing_ok=True)
            env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{building}"}
            subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True,
                           capture_output=True, timeout=600)
            building.rename(template)
    return template


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """This session's migrated metadata DB, with the store pools."""
    if _OWN_DB:
        import sqlite3

        shutil.copyfile(migrated_template(), _PRIVATE_DB)
        # WAL: the in-process Execution API of dag.test() writes while the test loop reads
        conn = sqlite3.connect(_PRIVATE_DB)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.close()
    else:
        from airflow.utils.db import initdb

        initdb()
    from include.retention.pools import ensure_store_pools

    ensure_store_pools()
    try:
        yield _PRIVATE_DB
    finally:
        if _OWN_DB:
            _remove_private_db()


def load_dag(name: str, dag_id: str, *, retries: int | None = 0) -> Any:
    """A DAG object from ``dags/<name>.py``; retries off so a failing test fails fast."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / f"{name}.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[dag_id]
    if retries is not None:
        for t in dag.tasks:
            t.retries = retries
    return dag


def task_states(dag_run: Any) -> dict[str, str]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances(session=session)}


# --------------------------------------------------------------------------- stores


@dataclass
class Stores:
    """The session's private databases, bucket and tenant range."""

    endpoints: dict[str, Any]
    cc_database: str
    ledger_database: str
    bucket: str
    tenant_base: str
    counter: int = 0
    tenants: list[str] = field(default_factory=list)

    def mysql(self, database: str | None = None) -> Any:
        import MySQLdb

        ep = self.endpoints["mariadb"]
        return MySQLdb.connect(host=ep.host, port=ep.port, user=ep.login or "root", passwd=ep.password or "",
                               db=database if database is not None else self.cc_database, charset="utf8mb4",
                               autocommit=True)

    def query(self, sql: str, params: tuple[Any, ...] = (), database: str | None = None) -> list[tuple[Any, ...]]:
        conn = self.mysql(database)
        try:
            cur = conn.cursor()
            cur.execute(sql, params)
            return list(cur.fetchall())
        finally:
            conn.close()

    def ledger(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.query(sql, params, database=self.ledger_database)

    def s3(self) -> Any:
        from devservers import swift
        from include.retention.stores.cos_client import install_content_md5

        return install_content_md5(swift.s3_client(self.endpoints["s3"]))

    def redis(self) -> Any:
        from airflow.providers.redis.hooks.redis import RedisHook

        return RedisHook(redis_conn_id="retention_redis").get_conn()

    def es(self) -> Any:
        return es_client(self.endpoints)

    def new_tenant(self) -> str:
        self.counter += 1
        tenant = f"{self.tenant_base}{self.counter:02d}"
        self.tenants.append(tenant)
        return tenant


def es_client(servers: dict[str, Any]) -> Any:
    """A client of the session's Elasticsearch (the stand-in, or ``ELASTICSEARCH_URL``'s cluster)."""
    from elasticsearch import Elasticsearch

    ep = servers["elasticsearch"]
    scheme = str(ep.extra.get("scheme", "http"))
    auth = (ep.login, ep.password) if ep.login else None
    return Elasticsearch(f"{scheme}://{ep.host}:{ep.port}", basic_auth=auth, request_timeout=30)


def drop_keys_and_log_indices(servers: dict[str, Any], tenants: Any) -> None:
    """Every Redis key and log index of these tenants (a seeded world's, when it is dropped)."""
    from airflow.providers.redis.hooks.redis import RedisHook

    r = RedisHook(redis_conn_id="retention_redis").get_conn()
    es = es_client(servers)
    try:
        for tenant in tenants:
            found = list(r.scan_iter(match=f"cc:{tenant}:*", count=1000))
            if found:
                r.unlink(*found)
            for row in es.cat.indices(index=f"cc-logs-{tenant}-*", format="json"):
                es.options(ignore_status=404).indices.delete(index=row["index"])
    finally:
        es.close()


def cos_connection(ep: Any, bucket: str, **config: Any) -> str:
    extra: dict[str, Any] = {"endpoint_url": f"http://{ep.host}:{ep.port}", "region_name": "us-east-1",
                             "service_config": {"s3": {"bucket_name": bucket}}}
    if config:
        extra["config_kwargs"] = config
    return json.dumps({"conn_type": "aws", "login": ep.login, "password": ep.password, "extra": extra})


@pytest.fixture(scope="session")
def stores(servers: dict[str, Any], airflow_db: Path) -> Iterator[Stores]:
    """Private databases, bucket and tenants for the session, wired as the retention_* connections
    (MySQL as the session's least-privilege account; the tests seed and inspect as root)."""
    from devdata import schema
    from devservers import connections, mysql_users
    from include.retention.ledger.migrations import migrate

    tag = secrets.token_hex(3)
    s = Stores(servers, f"cc_req_{tag}", f"ledger_req_{tag}", f"cc-req-{tag}",
               tenant_base=f"96{secrets.SystemRandom().randrange(1000, 9999)}")
    conn = s.mysql(database="")
    try:
        schema.create_schema(conn.cursor(), s.cc_database, date(2026, 1, 1), 13)
    finally:
        conn.close()
    s.s3().create_bucket(Bucket=s.bucket)
    ep = servers["mariadb"]
    mysql_users.ensure_store_user(ep, s.cc_database, s.ledger_database)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in connections.store_mysql_connections(ep, s.cc_database, s.ledger_database).items():
            mp.setenv(key, value)
        mp.setenv("AIRFLOW_CONN_RETENTION_COS", cos_connection(servers["s3"], s.bucket))
        migrate()
        try:
            yield s
        finally:
            _drop_everything(s)


def _drop_everything(s: Stores) -> None:
    from devservers import mysql_users

    for database in (s.cc_database, s.ledger_database):
        s.query(f"DROP DATABASE IF EXISTS `{database}`", database="")
    mysql_users.drop_store_user(s.endpoints["mariadb"], s.cc_database)
    client = s.s3()
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s.bucket):
        keys += [{"Key": o["Key"]} for o in page.get("Contents", ())]
    for i in range(0, len(keys), 1000):
        client.delete_objects(Bucket=s.bucket, Delete={"Objects": keys[i : i + 1000], "Quiet": True})
    client.delete_bucket(Bucket=s.bucket)
    r = s.redis()
    for tenant in s.tenants:
        found = list(r.scan_iter(match=f"cc:{tenant}:*", count=1000))
        if found:
            r.unlink(*found)
    es = s.es()
    names = [row["index"] for row in es.cat.indices(index=f"cc-logs-{s.tenant_base}*", format="json")]
    for name in names:
        es.options(ignore_status=404).indices.delete(index=name)
    es.close()


# --------------------------------------------------------------------------- one small tenant


@dataclass
class World:
    """One seeded tenant: agents a1 and a10, admin adm1, four calls, their recordings, metrics,
    service records, configuration, Redis keys, three days of backups and a month of logs.

    Phone numbers: ``P1`` called twice (by a1 and a10), ``P2`` and ``P3`` once.
    """

    stores: Stores
    tenant: str
    day: date
    P1: str = "+6581230001"
    P2: str = "+6581230002"
    P3: str = "+6581230003"
    recordings: dict[str, str] = field(default_factory=dict)  # call id -> key
    backups: list[str] = field(default_factory=list)
    index: str = ""

    # ------------------------------------------------------------------ writing

    def seed(self) -> World:
        t, s = self.tenant, self.stores
        now = datetime(self.day.year, self.day.month, self.day.day, 2, 0)  # UTC, naive for DATETIME
        s.query("INSERT INTO tenants (tenant_id, name, region, created_at) VALUES (%s, %s, 'sg', %s)",
                (t, f"Test tenant {t}", now - timedelta(days=400)))
        conn = s.mysql()
        try:
            cur = conn.cursor()
            for agent in ("a1", "a10"):
                cur.execute("INSERT INTO agents (tenant_id, agent_id, name_enc, role, created_at, updated_at)"
                            " VALUES (%s, %s, %s, 'agent', %s, %s)", (t, agent, b"enc", now, now))
            cur.execute("INSERT INTO administrators (tenant_id, admin_id, name_enc, created_at, updated_at)"
                        " VALUES (%s, 'adm1', %s, %s, %s)", (t, b"enc", now, now))
            calls = [("c1", "a1", self.P1, True), ("c2", "a10", self.P1, True), ("c3", "a1", self.P2, False),
                     ("c4", "a10", self.P3, True)]
            for i, (call, agent, number, recorded) in enumerate(calls):
                call_id = f"{t}{call}".ljust(32, "0")[:32]
                key = f"recordings/{t}/{self.day:%Y/%m/%d}/{call_id}.wav" if recorded else None
                if key:
                    self.recordings[call] = key
                started = now + timedelta(minutes=i)
                cur.execute("INSERT INTO call_records (started_at, tenant_id, call_id, direction, agent_id,"
                            " customer_number, duration_s, recording_key) VALUES (%s, %s, %s, 'inbound', %s, %s,"
                            " 60, %s)", (started, t, call_id, agent, number, key))
                cur.execute("INSERT INTO service_records (created_at, tenant_id, call_id, agent_id, customer_number,"
                            " rating) VALUES (%s, %s, %s, %s, %s, 5)", (started, t, call_id, agent, number))
            for agent in ("a1", "a10"):
                cur.execute("INSERT INTO call_metrics (metric_date, tenant_id, agent_id, calls, answered,"
                            " avg_handle_s) VALUES (%s, %s, %s, 2, 2, 60)", (now, t, agent))
            cur.execute("INSERT INTO quick_replies (tenant_id, title, body, updated_at) VALUES (%s, 'Hi', 'Hello', %s)",
                        (t, now))
            cur.execute("INSERT INTO blacklist_numbers (tenant_id, phone_number, reason, created_at)"
                        " VALUES (%s, '+6590000000', 'spam', %s)", (t, now))
            cur.execute("INSERT INTO keywords (tenant_id, keyword, updated_at) VALUES (%s, 'refund', %s)", (t, now))
            cur.execute("INSERT INTO role_permissions (tenant_id, role, permission, updated_at)"
                        " VALUES (%s, 'agent', 'calls.handle', %s)", (t, now))
            cur.execute("INSERT INTO popup_settings (tenant_id, name, url, updated_at)"
                        " VALUES (%s, 'crm', 'https://crm.example/', %s)", (t, now))
        finally:
            conn.close()
        r = s.redis()
        r.hset(f"cc:{t}:agent:a1:profile", mapping={"name": "x"})
        r.set(f"cc:{t}:agent:a1:status", "idle")
        r.hset(f"cc:{t}:agent:a10:profile", mapping={"name": "y"})
        r.set(f"cc:{t}:session:a1:s1", "1")
        r.set(f"cc:{t}:session:a10:s1", "1")
        r.set(f"cc:{t}:queue:inbound", "3")  # named by no policy target: never deleted
        client = s.s3()
        for key in self.recordings.values():
            client.put_object(Bucket=s.bucket, Key=key, Body=b"RIFF")
        for back in range(3):
            d = self.day - timedelta(days=back)
            for category in ("agent_info", "call_data", "call_analytics"):
                key = f"backups/{t}/{d:%Y-%m-%d}/{category}/dump.json.gz"
                client.put_object(Bucket=s.bucket, Key=key, Body=b"{}")
                self.backups.append(key)
        self._seed_logs()
        return self

    def _seed_logs(self) -> None:
        from include.retention.policy import load_policy
        from include.retention.stores.elasticsearch_indices import index_mappings

        target = load_policy().target("log_data.cc_logs")
        self.index = f"cc-logs-{self.tenant}-{self.day:%Y.%m}"
        es = self.stores.es()
        es.options(ignore_status=404).indices.delete(index=self.index)
        es.indices.create(index=self.index, mappings=index_mappings(target),  # type: ignore[arg-type]
                          settings={"index": {"number_of_replicas": 0}})
        docs = [{"agent_id": "a1", "message": "login"}, {"agent_id": "a1", "phone_number": self.P1, "message": "call"},
                {"agent_id": "a10", "phone_number": self.P1, "message": "call"},
                {"agent_id": "a10", "phone_number": self.P3, "message": "call"}, {"message": "system"}]
        ops: list[dict[str, Any]] = []
        stamp = datetime(self.day.year, self.day.month, self.day.day, 1, tzinfo=UTC)
        for i, doc in enumerate(docs):
            ops.append({"index": {"_index": self.index}})
            ops.append({"tenant_id": self.tenant, "@timestamp": (stamp + timedelta(minutes=i)).isoformat(), **doc})
        assert not es.bulk(operations=ops, refresh=True)["errors"]
        es.close()

    # ------------------------------------------------------------------ reading

    def rows(self, table: str, where: str = "", params: tuple[Any, ...] = ()) -> int:
        sql = f"SELECT COUNT(*) FROM `{table}` WHERE tenant_id = %s" + (f" AND {where}" if where else "")
        return int(self.stores.query(sql, (self.tenant, *params))[0][0])

    def redis_keys(self) -> set[str]:
        r = self.stores.redis()
        return {k.decode() for k in r.scan_iter(match=f"cc:{self.tenant}:*", count=1000)}

    def objects(self, prefix: str = "") -> set[str]:
        client, out = self.stores.s3(), set()
        for top in ("recordings", "backups"):
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=self.stores.bucket, Prefix=f"{top}/{self.tenant}/{prefix}"
            ):
                out |= {o["Key"] for o in page.get("Contents", ())}
        return out

    def log_docs(self, query: dict[str, Any] | None = None) -> int:
        es = self.stores.es()
        try:
            if not es.indices.exists(index=self.index):
                return 0
            es.indices.refresh(index=self.index)
            return int(es.count(index=self.index, query=query or {"match_all": {}})["count"])
        finally:
            es.close()


@pytest.fixture(scope="session")
def today() -> date:
    from include.retention.policy import load_policy

    return datetime.now(load_policy().timezone).date()


@pytest.fixture
def world(stores: Stores, today: date) -> World:
    """A freshly seeded tenant for one test."""
    return World(stores, stores.new_tenant(), today).seed()


def base_conf(**values: Any) -> dict[str, Any]:
    """A request's conf with every param given: ``dag.test()`` keeps the params of the last
    run on the DAG object it is called on, so a key left out would inherit a stale value."""
    conf: dict[str, Any] = {"requested_by": "dpo@example.test", "mode": "execute", "categories": [],
                            "subject_type": None, "subject_id": None, "received_at": None, "resume": False}
    conf.update(values)
    return conf


# --------------------------------------------------------------------------- e-mail

RECIPIENT = "dpo-sla@example.test"


class Inbox:
    """An SMTP server on a spare port that keeps every message it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.messages: list[email.message.EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))  # type: ignore[arg-type]
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"

    def about(self, request_id: str) -> list[tuple[str, str]]:
        """(subject, body text) of the messages that name this request."""
        out = []
        for message in self.messages:
            body = message.get_body(preferencelist=("html", "plain"))
            text = body.get_content() if body is not None else ""
            if request_id in message["Subject"] or request_id in text:
                out.append((str(message["Subject"]), text))
        return out


@pytest.fixture
def inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    box = Inbox()
    box.controller.start()
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": box.port,
        "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "retention@example.test",
                  "retry_limit": 0, "timeout": 10},
    }))
    monkeypatch.setenv("RETENTION_SLA_EMAIL", RECIPIENT)
    try:
        yield box
    finally:
        box.controller.stop()
