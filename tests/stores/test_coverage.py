"""The coverage check on the real servers: what the policy does not know shows as unknown.

One small world, made once for the module: a private MariaDB database (a covered table with a
new column, a new table whose phone-number column's name says nothing, a ledger table), a
private Redis (a covered key family and a new one), a fresh bucket (a covered, a new and an
exempt prefix) and, on the shared Elasticsearch, a covered index, a new index family with an
alias over it and a new data stream. Each store is listed once, through its Airflow connection.
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import Any, Iterator

import pytest

from include.retention.coverage.exemptions import load_exemptions
from include.retention.coverage.items import Finding
from include.retention.coverage.run import Settings, classify_results, inventory_store
from include.retention.policy import Policy
from tests.fixtures.cos import new_bucket
from tests.fixtures.mysql import MySqlDatabase, mysql_uri
from tests.fixtures.redis import PrivateRedis

pytestmark = pytest.mark.servers

PHONES = [f"+65912345{n:02d}" for n in range(12)]
MAILS = [f"cust{n}@example.test" for n in range(3)]


@pytest.fixture(scope="module")
def world(mariadb_endpoint: Any, cos_endpoint: Any, es_endpoint: Any, es_client: Any,
          tmp_path_factory: pytest.TempPathFactory, policy: Policy) -> Iterator[dict[str, Any]]:
    tag = secrets.token_hex(3)
    tenant = f"93{secrets.SystemRandom().randrange(1000, 9999)}"
    db = MySqlDatabase(mariadb_endpoint, f"cc_cov_{tag}")
    reader = f"cov_{tag}"
    host = mariadb_endpoint.host if mariadb_endpoint.host.replace(".", "").isdigit() else "%"
    redis = PrivateRedis(tmp_path_factory.mktemp("coverage-redis"), persistent=False).start()
    bucket = new_bucket(cos_endpoint, versioned=False)
    indices = [f"cc-logs-{tenant}-2026.11", f"crm-contacts-{tenant}"]
    stream, template = f"crm-events-{tenant}", f"crm-events-{tag}"
    root = db.connect(database="")
    try:
        root.cursor().execute(f"CREATE DATABASE `{db.name}`")
        db.execute(f"""CREATE TABLE `{db.name}`.call_records (id BIGINT PRIMARY KEY, tenant_id VARCHAR(20),
                     started_at DATETIME, agent_id VARCHAR(64), customer_number VARCHAR(16), recording_key
                     VARCHAR(255), caller_number VARCHAR(16))""")
        db.execute(f"CREATE TABLE `{db.name}`.crm_callbacks (id BIGINT PRIMARY KEY, tenant_id VARCHAR(20), "
                   "contact VARCHAR(32), slot DATETIME)")
        db.execute(f"CREATE TABLE `{db.name}`.purge_audit (id BIGINT PRIMARY KEY, error TEXT)")
        for n, phone in enumerate(PHONES):
            db.execute(f"INSERT INTO `{db.name}`.crm_callbacks VALUES (%s, %s, %s, '2026-11-01')", (n, tenant, phone))
        db.execute(f"INSERT INTO `{db.name}`.crm_callbacks VALUES (99, %s, %s, '2026-11-01')", (tenant, MAILS[0]))
        db.execute(f"CREATE USER '{reader}'@'{host}' IDENTIFIED BY %s", (tag,))
        db.execute(f"GRANT SELECT ON `{db.name}`.* TO '{reader}'@'{host}'")

        client = redis.client()
        client.hset(f"cc:{tenant}:agent:a1:profile", mapping={"name": "x"})
        for n, phone in enumerate(PHONES[:4]):
            client.set(f"cc:{tenant}:callback:{n}", phone)

        bucket.put([f"recordings/{tenant}/2026/11/01/c1.wav", f"exports/{tenant}/{PHONES[0]}/report.csv",
                    "certificates/CERT-1.json"])

        es_client.indices.create(index=indices[0], mappings={"properties": {"tenant_id": {"type": "keyword"}}})
        es_client.indices.create(index=indices[1], aliases={f"crm-all-{tag}": {}})
        es_client.index(index=indices[1], id="1", document={"contact": PHONES[1], "mail": MAILS[1]}, refresh=True)
        es_client.indices.put_index_template(name=template, index_patterns=[f"crm-events-{tenant}*"], data_stream={},
                                             priority=500)
        es_client.create(index=stream, id="1", document={"@timestamp": "2026-11-01T00:00:00Z",
                                                         "caller": PHONES[2]}, refresh=True)

        cos_conn = json.loads(__import__("os").environ["AIRFLOW_CONN_RETENTION_COS"])
        cos_conn["extra"]["service_config"] = {"s3": {"bucket_name": bucket.name}}
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("AIRFLOW_CONN_RETENTION_COVERAGE_MYSQL",
                      mysql_uri(mariadb_endpoint, db.name, reader, tag))
            mp.setenv("AIRFLOW_CONN_RETENTION_REDIS", redis.conn_uri())
            mp.setenv("AIRFLOW_CONN_RETENTION_COS", json.dumps(cos_conn))
            exemptions = load_exemptions()
            results = [inventory_store(s, policy, exemptions, Settings()) for s in
                       ("mysql", "redis", "cos", "elasticsearch")]
            yield {"results": results, "tenant": tenant, "tag": tag, "exemptions": exemptions}
    finally:
        root.cursor().execute(f"DROP DATABASE IF EXISTS `{db.name}`")
        root.cursor().execute(f"DROP USER IF EXISTS '{reader}'@'{host}'")
        root.close()
        redis.stop()
        bucket.destroy()
        es_client.indices.delete(index=",".join(indices), ignore_unavailable=True)
        if es_client.indices.exists(index=stream):
            es_client.indices.delete_data_stream(name=stream)
        es_client.indices.delete_index_template(name=template)


def _found(world: dict[str, Any], exemptions: Any = None) -> dict[str, Finding]:
    return {f.id: f for f in classify_results(world["results"], exemptions or world["exemptions"])}


def test_new_table_column_key_family_prefix_index_each_appear_as_unknown(world: dict[str, Any]) -> None:
    found = _found(world)
    status = {i: f.status for i, f in found.items()}
    for item in ("mysql:table:crm_callbacks", "mysql:column:call_records.caller_number", "redis:keys:cc:*:callback:*",
                 "cos:prefix:exports/", "elasticsearch:index:crm-contacts-*", "elasticsearch:alias:crm-all-*",
                 "elasticsearch:data_stream:crm-events-*"):
        assert status.get(item) == "unknown", item
    for item in ("mysql:table:call_records", "mysql:column:call_records.customer_number",
                 "redis:keys:cc:{tenant}:agent:{agent}:", "cos:prefix:recordings/",
                 "elasticsearch:index:cc-logs-{tenant}-{month}"):
        assert status.get(item) == "covered", item
    for item in ("mysql:table:purge_audit", "mysql:column:purge_audit.error", "cos:prefix:certificates/"):
        assert status.get(item) == "exempt", item
    assert all(world["tenant"] not in i for i in found), "an item name carries a tenant id"


def test_exempting_one_clears_it(world: dict[str, Any]) -> None:
    exemptions = world["exemptions"].plus("mysql:table:crm_callbacks", "reviewed: moves to the policy", "dpo")
    found = _found(world, exemptions)
    assert found["mysql:table:crm_callbacks"].status == "exempt"
    assert found["mysql:column:crm_callbacks.contact"].status == "exempt"  # its columns with it
    assert found["cos:prefix:exports/"].status == "unknown"


def test_a_column_of_phone_numbers_is_flagged_by_its_values_while_its_name_says_nothing(world: dict[str, Any]) -> None:
    found = _found(world)
    contact = found["mysql:column:crm_callbacks.contact"]
    assert contact.flags == () and contact.likely_personal
    assert (contact.item.counts.e164, contact.item.counts.email, contact.item.counts.sampled) == (12, 1, 13)
    assert found["mysql:column:call_records.caller_number"].flags == ("caller", "number")  # by its name
    assert found["redis:keys:cc:*:callback:*"].item.counts.e164 == 4
    assert found["cos:prefix:exports/"].item.counts.e164 == 1  # a key segment
    es = found["elasticsearch:index:crm-contacts-*"]
    assert (es.item.counts.e164, es.item.counts.email) == (1, 1)
    assert found["elasticsearch:data_stream:crm-events-*"].flags == ("caller",)


def test_record_and_alert_keep_counts_only(world: dict[str, Any], ledger_db: MySqlDatabase,
                                           caplog: pytest.LogCaptureFixture) -> None:
    from datetime import datetime, timezone

    from include.retention.coverage import alerting
    from include.retention.coverage.run import record
    from include.retention.ledger.coverage import mark_alerted, read_latest
    from tests.e2e.test_personal_data_leaks import Needles, mysql_dump

    caplog.set_level(logging.DEBUG)
    as_of = datetime(2026, 12, 1, tzinfo=timezone.utc)
    first = record(world["results"], world["exemptions"], run_id="cov_1", as_of=as_of, started_at=as_of)
    new = [Finding.from_json(f) for f in first["new_unknown"]]
    assert "mysql:table:crm_callbacks" in {f.id for f in new}
    mark_alerted([f.id for f in new])
    second = record(world["results"], world["exemptions"], run_id="cov_2", as_of=as_of, started_at=as_of)
    assert second["new_unknown"] == []  # each new item is e-mailed once
    run, rows = read_latest()
    assert run is not None and run.run_id == "cov_2" and run.unknown == first["summary"]["unknown"]
    assert any(r.item_id == "mysql:column:crm_callbacks.contact" and r.e164_matches == 12 for r in rows)

    needles = Needles(set(PHONES) | set(MAILS))
    haystacks = {
        "results (XCom)": json.dumps(world["results"]) + json.dumps(first) + json.dumps(second),
        "ledger": mysql_dump(ledger_db.name, ledger_db.endpoint),
        "alert": alerting.subject(new) + alerting.body(new),
        "logs": caplog.text,
    }
    assert "crm_callbacks" in haystacks["ledger"] and "crm_callbacks" in haystacks["alert"]
    assert {name: sorted(needles.found_in(text)) for name, text in haystacks.items() if needles.found_in(text)} == {}
