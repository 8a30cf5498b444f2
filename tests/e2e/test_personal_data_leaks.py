"""Personal data never leaks: after the daily DAGs, a termination, a deletion, the SLA
monitor's alert e-mails and the coverage check (which samples stored values) over a small
seeded world, no phone number, name or e-mail the seeder made appears in the task logs, the
XCom table, the ledger, the certificates or the e-mails.

The search is shown not to be vacuous: the same search finds the seeded data in the contact
center's stores before the runs, and every haystack holds what those runs wrote.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import pytest

from tests.e2e.conftest import (
    AIRFLOW_TEST_HOME,
    Inbox,
    base_conf,
    drop_keys_and_log_indices,
    es_client,
    load_dag,
    task_states,
)

pytestmark = [pytest.mark.servers, pytest.mark.slow]

UTC = timezone.utc
CATEGORIES = ("log_data", "agent_info", "call_data", "call_analytics", "configuration")


@dataclass
class Needles:
    """What must never leak: every phone number, name and e-mail the seeder made."""

    values: set[str]
    variants: dict[str, str] = field(default_factory=dict)  # searched text -> the value it stands for

    def __post_init__(self) -> None:
        for value in self.values:
            self.variants[value] = value
            if value.startswith("+"):
                self.variants[value[1:]] = value  # a number that lost its '+' is still the number

    def found_in(self, text: str) -> set[str]:
        return {value for variant, value in self.variants.items() if variant in text}


@pytest.fixture(scope="module")
def leak_world(servers: dict[str, Any], airflow_db: Path) -> Iterator[dict[str, Any]]:
    """A private contact center (two tenants, seven months) in all four stores, and its ledger."""
    from devservers import connections, mysql_users
    from devdata.seed import seed_all
    from devdata.world import SeedConfig
    from include.retention.ledger.migrations import migrate
    from include.retention.policy import load_policy

    tag = secrets.token_hex(4)
    ns = connections.Namespace(f"cc_leak_{tag}", f"ledger_leak_{tag}", connections.TEST.redis_db, f"cc-leak-{tag}")
    base = f"98{secrets.SystemRandom().randrange(1000, 9999)}"
    today = datetime.now(load_policy().timezone).date()
    config = SeedConfig(
        seed=5, tenant_ids=(f"{base}1", f"{base}2"), agents_per_tenant=3, admins_per_tenant=1,
        calls_per_day_per_tenant=2, months=7, as_of=today, recording_share=0.3, service_record_share=0.5,
        terminated_tenants=0, customers_per_tenant=6, backup_days=30, sessions_per_agent=1,
    )
    mariadb = servers["mariadb"]
    with pytest.MonkeyPatch.context() as mp:
        for key, value in connections.airflow_connections(servers, ns).items():
            mp.setenv(key, value)
        try:
            with pytest.MonkeyPatch.context() as seeding:  # root creates the schema; the DAGs never see it
                for key, value in connections.root_mysql_connection(mariadb, ns.mysql_database).items():
                    seeding.setenv(key, value)
                seed_all(config, mysql_conn_id=connections.ROOT_MYSQL_CONN_ID, mysql_database=ns.mysql_database,
                         reset_mysql=True, cos_bucket=ns.bucket)
            mysql_users.ensure_store_user(mariadb, ns.mysql_database, ns.ledger_database)
            migrate()
            yield {"ns": ns, "config": config, "today": today, "servers": servers}
        finally:
            _drop(ns, config.tenant_ids, servers)


def _drop(ns: Any, tenants: Iterable[str], servers: dict[str, Any]) -> None:
    import MySQLdb
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from devservers import mysql_users

    ep = servers["mariadb"]
    db = MySQLdb.connect(host=ep.host, port=ep.port, user=ep.login or "root", passwd=ep.password or "")
    try:
        for name in (ns.mysql_database, ns.ledger_database):
            db.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        db.close()
    mysql_users.drop_store_user(ep, ns.mysql_database)
    from include.retention.stores.cos_client import install_content_md5

    s3 = install_content_md5(S3Hook(aws_conn_id="retention_cos").get_conn())
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=ns.bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
        if keys:
            s3.delete_objects(Bucket=ns.bucket, Delete={"Objects": keys, "Quiet": True})
    s3.delete_bucket(Bucket=ns.bucket)
    drop_keys_and_log_indices(servers, tenants)


# --------------------------------------------------------------------------- haystacks


def contact_center_text(ns: Any, tenants: Iterable[str], servers: dict[str, Any]) -> dict[str, str]:
    """The contact center's own stores as text: where the personal data lives (before a purge)."""
    from airflow.providers.redis.hooks.redis import RedisHook

    out = {"mysql": mysql_dump(ns.mysql_database, servers["mariadb"])}
    r = RedisHook(redis_conn_id="retention_redis").get_conn()
    chunks = []
    for tenant in tenants:
        for key in r.scan_iter(match=f"cc:{tenant}:*", count=1000):
            kind = r.type(key)
            chunks.append(repr(r.hgetall(key) if kind == b"hash" else r.lrange(key, 0, -1) if kind == b"list"
                               else r.get(key)))
    out["redis"] = "\n".join(chunks)
    es = es_client(servers)
    try:
        names = [row["index"] for t in tenants for row in es.cat.indices(index=f"cc-logs-{t}-*", format="json")]
        hits = es.search(index=",".join(names), size=10_000, query={"match_all": {}})["hits"]["hits"] if names else []
    finally:
        es.close()
    out["elasticsearch"] = json.dumps([h["_source"] for h in hits])
    return out


def mysql_dump(database: str, mariadb: Any) -> str:
    """Every column of every row of every table of a database, as text (as root: the DAGs'
    account sees only the tables it is granted)."""
    import MySQLdb

    conn = MySQLdb.connect(host=mariadb.host, port=mariadb.port, user=mariadb.login or "root",
                           passwd=mariadb.password or "", db=database, charset="utf8mb4")
    try:
        cur = conn.cursor()
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (database,))
        chunks = []
        for (table,) in cur.fetchall():
            cur.execute(f"SELECT * FROM `{table}`")
            chunks.append(f"## {table}\n" + "\n".join(repr(tuple(_text(v) for v in row)) for row in cur.fetchall()))
        return "\n".join(chunks)
    finally:
        conn.close()


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else value


def metadata_text(database: Path) -> tuple[str, str, str]:
    """The Airflow metadata DB as text: (the XCom table, every other table but the run confs,
    the run confs). Every column of every row."""
    conn = sqlite3.connect(database)
    try:
        xcom, other, confs = [], [], []
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            cursor = conn.execute(f'SELECT * FROM "{table}"')
            columns = [c[0] for c in cursor.description]
            for row in cursor.fetchall():
                values = dict(zip(columns, (_text(v) for v in row)))
                if table == "dag_run":
                    confs.append(f"{values.get('dag_id')}: {values.pop('conf', None)}")
                (xcom if table == "xcom" else other).append(f"{table} {values!r}")
    finally:
        conn.close()
    return "\n".join(xcom), "\n".join(other), "\n".join(confs)


def certificate_text(bucket: str) -> str:
    """The certificates as stored in COS (JSON, Markdown, HTML); the ledger's copy is in the ledger dump."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    s3 = S3Hook(aws_conn_id="retention_cos").get_conn()
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="certificates/").get("Contents", ())
    return "\n".join(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().decode() for o in listing)


def mail_text(inbox: Inbox) -> str:
    return "\n".join(m.as_string() + "\n" + str(m.get_body(preferencelist=("html", "plain")).get_content())
                     for m in inbox.messages)


def log_files_since(started: float) -> str:
    logs = AIRFLOW_TEST_HOME / "logs"
    files = [p for p in logs.rglob("*") if p.is_file() and p.stat().st_mtime >= started] if logs.exists() else []
    return "\n".join(p.read_text(errors="replace") for p in files)


# --------------------------------------------------------------------------- the test


def test_no_personal_data_in_logs_xcom_ledger_certificates_or_mails(
    leak_world: dict[str, Any], airflow_db: Path, inbox: Inbox, capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from devdata.world import build_world, known_personal_data
    from include.retention.ledger.requests import find_by_reference
    from include.retention.requests.intake import submit
    from include.retention.crypto import RetentionCrypto
    from include.retention.policy import load_policy

    policy, ns, config = load_policy(), leak_world["ns"], leak_world["config"]
    needles = Needles(known_personal_data(config, policy))
    world = build_world(config, policy)
    staying, leaving = world
    # what the seeder writes only encrypted (the *_enc columns): no plaintext search can find it
    encrypted_only = {v for t in world for a in t.admins for v in (a.name, a.email, a.phone) if v}
    encrypted_only |= {a.phone for t in world for a in t.agents if a.phone}

    # not vacuous: the same search finds all the rest where the contact center keeps it
    before = contact_center_text(ns, config.tenant_ids, leak_world["servers"])
    found_before = set().union(*(needles.found_in(text) for text in before.values()))
    assert found_before == needles.values - encrypted_only, "the search misses data that is in the stores"

    caplog.set_level(logging.INFO)
    started, runs = time.time(), {}
    logical = datetime.combine(leak_world["today"], datetime.min.time(), tzinfo=policy.timezone)
    for category in CATEGORIES:
        dag_run = load_dag("retention_daily", f"retention_{category}").test(logical_date=logical)
        runs[category] = dag_run
        assert str(dag_run.state) == "success", (category, task_states(dag_run))
    requests_dag = load_dag("deletion_requests", "deletion_requests")
    subject = staying.customers[0]
    confs = {
        "termination": base_conf(request_type="termination", tenant_id=leaving.tenant_id,
                                 reference=f"LEAK-{leaving.tenant_id}-T"),
        "deletion": base_conf(request_type="deletion", tenant_id=staying.tenant_id, subject_type="phone_number",
                              subject_id=subject, reference=f"LEAK-{staying.tenant_id}-D"),
    }
    for kind, conf in confs.items():
        dag_run = requests_dag.test(logical_date=None, run_conf=conf)
        assert str(dag_run.state) == "success", (kind, task_states(dag_run))
    completed = [find_by_reference(c["reference"]) for c in confs.values()]
    assert all(r is not None and r.state == "completed" for r in completed)
    # two open requests the SLA monitor writes about: a warning (T-7) and a breach (T-0)
    as_of = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    keys = RetentionCrypto.from_connection()
    for days, customer in ((23, staying.customers[1]), (30, staying.customers[2])):
        conf = {"request_type": "deletion", "tenant_id": staying.tenant_id, "subject_type": "phone_number",
                "subject_id": customer, "reference": f"LEAK-{staying.tenant_id}-{days}",
                "requested_by": "dpo@example.test", "mode": "execute",
                "received_at": (as_of - timedelta(days=days)).isoformat()}
        assert submit(policy, conf, run_after=as_of, run_id="manual__leak", crypto=keys).outcome == "new"
    sla_run = load_dag("retention_sla_monitor", "retention_sla_monitor").test(logical_date=as_of)
    assert str(sla_run.state) == "success", task_states(sla_run)
    # the coverage check samples the values of what the policy does not know (the seed's
    # crm_callbacks holds customer numbers) and e-mails the new unknown items: counts only
    coverage_started = time.monotonic()
    coverage_run = load_dag("retention_coverage", "retention_coverage").test(logical_date=as_of)
    coverage_seconds = time.monotonic() - coverage_started
    assert str(coverage_run.state) == "success", task_states(coverage_run)
    captured = capfd.readouterr()

    xcom, metadata, run_confs = metadata_text(airflow_db)
    haystacks = {
        "task logs (stdout, stderr, log records, log files)": "\n".join(
            (captured.out, captured.err, caplog.text, log_files_since(started))),
        "XCom table": xcom,
        "rest of the Airflow metadata DB (but run confs)": metadata,
        "ledger (every table, every column)": mysql_dump(ns.ledger_database, leak_world["servers"]["mariadb"]),
        "certificates in COS": certificate_text(ns.bucket),
        "alert e-mails": mail_text(inbox),
    }
    # each haystack holds what the runs wrote, so an empty search cannot pass
    request_ids = [r.request_id for r in completed if r is not None]
    logs = haystacks["task logs (stdout, stderr, log records, log files)"]
    assert all(f"Request {i}: " in logs for i in request_ids) and "include.retention.daily" in logs
    assert all(runs[c].run_id in haystacks["XCom table"] for c in CATEGORIES)
    assert all(runs[c].run_id in haystacks["rest of the Airflow metadata DB (but run confs)"] for c in CATEGORIES)
    assert all(i in haystacks["ledger (every table, every column)"] for i in request_ids)
    assert all(f"CERT-{i}" in haystacks["certificates in COS"] for i in request_ids)
    assert len(inbox.messages) == 3 and "BREACH" in haystacks["alert e-mails"]
    assert coverage_run.run_id in haystacks["XCom table"] and "crm_callbacks" in haystacks["alert e-mails"]
    from include.retention.ledger.coverage import read_latest

    _, unknown = read_latest()
    assert any(r.item_id == "mysql:column:crm_callbacks.contact" and r.e164_matches > 0 for r in unknown)  # sampled
    sizes = {name: len(text) for name, text in haystacks.items()}
    print(f"\nleak scan: {len(needles.values)} needles ({len(needles.variants)} search strings); haystack sizes "
          + ", ".join(f"{name}: {size:,} chars" for name, size in sizes.items())
          + f"; the coverage run took {coverage_seconds:.1f}s")

    hits = {name: sorted(needles.found_in(text)) for name, text in haystacks.items()}
    assert {name: found for name, found in hits.items() if found} == {}
    # The one place a subject id stays: the conf of the deletion run itself, Airflow's record of
    # the trigger (the request's input). Nothing of the termination, the daily runs or the monitor.
    assert needles.found_in(run_confs) == {subject}
