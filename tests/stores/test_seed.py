"""The seeder against the real servers: what it reports is what the stores hold, and the same
seed gives the same data.

Small scale (3 tenants, 2 months). Its own MySQL database ``cc_seed_<random>``, its own bucket
``cc-seed-<random>``, tenants ``939NNN12`` / ``939NNN123`` / ``939NNN...`` (NNN random per
session) in Redis db 9 and in Elasticsearch; all of it is removed at the end of the module.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Iterator

import pytest

from devservers.connections import ROOT_MYSQL_CONN_ID, root_mysql_connection
from devservers.procs import Endpoint
from devdata.report import SeedReport
from devdata.seed import seed_all
from devdata.seed_cos import cos_objects
from devdata.seed_elasticsearch import es_client, es_documents
from devdata.seed_mysql import seed_mysql
from devdata.world import SeedConfig, build_world, calls_on, days, decrypt, known_personal_data, tenant_ids
from include.retention.policy import CosTarget, Policy, RedisTarget

pytestmark = pytest.mark.servers

AS_OF = date(2026, 11, 28)


def small_config(tenant_base: str = "939100", **overrides: Any) -> SeedConfig:
    values: dict[str, Any] = dict(
        seed=11, tenants=3, agents_per_tenant=10, admins_per_tenant=1, calls_per_day_per_tenant=3, months=2,
        as_of=AS_OF, tenant_base=tenant_base, terminated_tenants=1, customers_per_tenant=12, recording_share=0.15,
        service_record_share=0.3, backup_days=3, sessions_per_agent=1, cos_workers=12,
    )
    values.update(overrides)
    return SeedConfig(**values)


def digest(items: Any) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(repr(item).encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- pure: no servers


def test_known_personal_data_is_deterministic_and_complete(policy: Policy) -> None:
    config = small_config()
    first, again = known_personal_data(config), known_personal_data(small_config())
    assert first == again
    assert known_personal_data(small_config(seed=12)) != first
    world = build_world(config, policy)
    for tenant in world:
        for person in tenant.agents + tenant.admins:
            assert {person.name, person.email} <= first
        assert set(tenant.customers) <= first and set(tenant.blacklist) <= first
        for number in tenant.customers:
            assert policy.validate_subject("phone_number", number) == number  # E.164
    assert any(p.startswith("+65") for p in first)


def test_ids_exercise_exactness(policy: Policy) -> None:
    config = small_config()
    ids = tenant_ids(config)
    assert ids[0] + "3" == ids[1]  # one tenant id is a prefix of another
    agents = {a.person_id for a in build_world(config, policy)[0].agents}
    assert {"a1", "a10"} <= agents
    shared = set.intersection(*(set(t.customers) for t in build_world(config, policy)))
    assert shared  # some people call every tenant


def test_every_generator_is_deterministic(policy: Policy) -> None:
    def snapshot(config: SeedConfig) -> tuple[str, str, str]:
        world = build_world(config, policy)
        calls = [c for t in world for d in days(config, t) for c in calls_on(config, t, d, policy)]
        objects = [(k, hashlib.sha256(b).hexdigest()) for _, _, k, b in cos_objects(config, policy)]
        docs = list(es_documents(config, policy))
        return digest(calls), digest(objects), digest(docs)

    quick = {"months": 1, "agents_per_tenant": 4}
    first = snapshot(small_config(**quick))
    assert first == snapshot(small_config(**quick))
    assert all(a != b for a, b in zip(first, snapshot(small_config(seed=12, **quick))))


def test_calls_are_utc_and_days_are_local(policy: Policy) -> None:
    config = small_config()
    tz = policy.timezone
    world = build_world(config, policy)
    calls = [c for t in world for d in days(config, t) for c in calls_on(config, t, d, policy)]
    assert calls and all(c.started_at.tzinfo == timezone.utc for c in calls)
    assert all(c.started_at.astimezone(tz).date() == c.local_day for c in calls)
    # a call before 08:00 in Singapore is on the previous UTC day
    assert any(c.started_at.date() != c.local_day for c in calls)
    for c in calls:
        if c.recording_key:
            assert c.recording_key.startswith(f"recordings/{c.tenant_id}/{c.local_day:%Y/%m/%d}/")
    terminated = [t for t in world if t.terminated_at is not None]
    assert len(terminated) == 1
    assert max(c.local_day for c in calls if c.tenant_id == terminated[0].tenant_id) < terminated[0].last_day


# --------------------------------------------------------------------------- real servers


@dataclass
class Seeded:
    config: SeedConfig
    report: SeedReport
    database: str
    bucket: str
    log_lines: list[str]
    endpoints: dict[str, Endpoint]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(record.getMessage())
        except Exception:  # pragma: no cover - a broken record must not break the test
            self.lines.append(str(record.msg))


def _mysql(endpoints: dict[str, Endpoint], database: str | None = None) -> Any:
    import MySQLdb

    ep = endpoints["mariadb"]
    return MySQLdb.connect(host=ep.host, port=ep.port, user=ep.login or "root", passwd=ep.password or "",
                           db=database or "", charset="utf8mb4", autocommit=True)


def _redis() -> Any:
    from airflow.providers.redis.hooks.redis import RedisHook

    return RedisHook(redis_conn_id="retention_redis").get_conn()


def _s3() -> Any:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id="retention_cos").get_conn()


def _glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _cleanup(config: SeedConfig, database: str, bucket: str, endpoints: dict[str, Endpoint], policy: Policy) -> None:
    conn = _mysql(endpoints)
    try:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{database}`")
    finally:
        conn.close()
    client = _redis()
    for tenant in tenant_ids(config):
        keys = list(client.scan_iter(match=_glob(f"cc:{tenant}:") + "*", count=1_000))
        for start in range(0, len(keys), 500):
            client.unlink(*keys[start : start + 500])
    s3 = _s3()
    try:
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                for o in page.get("Contents", ())]
        with ThreadPoolExecutor(max_workers=12) as pool:
            list(pool.map(lambda key: s3.delete_object(Bucket=bucket, Key=key), keys))
        s3.delete_bucket(Bucket=bucket)
    except s3.exceptions.NoSuchBucket:
        pass
    es = es_client()
    names = {index for _, index, _, _ in es_documents(config, policy)}
    for name in sorted(names):  # explicit names: ES 8 refuses wildcard deletes
        es.options(ignore_status=404).indices.delete(index=name)


@pytest.fixture(scope="module")
def seeded(servers: dict[str, Endpoint], policy: Policy) -> Iterator[Seeded]:
    run = secrets.token_hex(3)
    config = small_config(tenant_base=f"939{secrets.randbelow(900) + 100}")
    database, bucket = f"cc_seed_{run}", f"cc-seed-{run}"
    collect = _Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(collect)
    root.setLevel(logging.INFO)
    # The seeder creates the database: it writes as root (the DAGs' account may not).
    with pytest.MonkeyPatch.context() as mp:
        for key, value in root_mysql_connection(servers["mariadb"], database).items():
            mp.setenv(key, value)
        try:
            report = seed_all(config, mysql_conn_id=ROOT_MYSQL_CONN_ID, mysql_database=database, cos_bucket=bucket,
                              policy=policy)
            root.removeHandler(collect)
            root.setLevel(old_level)
            yield Seeded(config, report, database, bucket, collect.lines, servers)
        finally:
            root.removeHandler(collect)
            root.setLevel(old_level)
            _cleanup(config, database, bucket, servers, policy)


def test_report_covers_every_store_and_tenant(seeded: Seeded) -> None:
    counts = seeded.report.counts
    for target in ("call_data.call_records", "call_analytics.call_metrics", "call_analytics.service_records",
                   "agent_info.agents", "agent_info.administrators", "agent_info.agent_state",
                   "agent_info.agent_sessions", "call_data.recordings", "agent_info.agent_info_backups",
                   "log_data.cc_logs", "configuration.blacklist_numbers", "mysql.tenants", "redis.other_keys"):
        assert counts.get(target, 0) > 0, target
    assert set(seeded.report.by_tenant) == set(tenant_ids(seeded.config))
    for tenant, by_target in seeded.report.by_tenant.items():
        assert by_target["call_data.call_records"] > 0, tenant


def test_mysql_holds_what_the_report_says(seeded: Seeded, policy: Policy) -> None:
    conn = _mysql(seeded.endpoints, seeded.database)
    tables = {t.table: t.qualified_name for t in policy.targets if hasattr(t, "table")}
    tables["tenants"] = "mysql.tenants"
    try:
        cur = conn.cursor()
        for table, name in tables.items():
            cur.execute(f"SELECT tenant_id, COUNT(*) FROM `{table}` GROUP BY tenant_id")
            found = dict(cur.fetchall())
            expected = {t: c[name] for t, c in seeded.report.by_tenant.items() if c.get(name)}
            assert found == expected, table
        cur.execute("SELECT COUNT(*) FROM tenants WHERE terminated_at IS NOT NULL")
        assert cur.fetchone()[0] == 1
    finally:
        conn.close()


def test_personal_fields_are_encrypted_at_rest(seeded: Seeded, policy: Policy) -> None:
    world = {t.tenant_id: t for t in build_world(seeded.config, policy)}
    conn = _mysql(seeded.endpoints, seeded.database)
    try:
        cur = conn.cursor()
        cur.execute("SELECT tenant_id, agent_id, name_enc, email_enc, phone_enc FROM agents")
        rows = cur.fetchall()
    finally:
        conn.close()
    assert rows
    secrets_ = known_personal_data(seeded.config)
    for tenant, agent_id, *encrypted in rows:
        person = next(p for p in world[tenant].agents if p.person_id == agent_id)
        assert [decrypt(seeded.config, value) for value in encrypted] == [person.name, person.email, person.phone]
        assert not any(s.encode() in value for value in encrypted for s in secrets_)


def test_recording_keys_point_at_objects_on_local_days(seeded: Seeded, policy: Policy) -> None:
    tz = policy.timezone
    conn = _mysql(seeded.endpoints, seeded.database)
    try:
        cur = conn.cursor()
        cur.execute("SELECT tenant_id, started_at, recording_key FROM call_records WHERE recording_key IS NOT NULL")
        rows = cur.fetchall()
    finally:
        conn.close()
    s3 = _s3()
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=seeded.bucket, Prefix="recordings/"):
        keys.update(o["Key"] for o in page.get("Contents", ()))
    assert {r[2] for r in rows} == keys
    for tenant, started_at, key in rows:
        local_day = started_at.replace(tzinfo=timezone.utc).astimezone(tz).date()
        assert key.startswith(f"recordings/{tenant}/{local_day:%Y/%m/%d}/")


def test_cos_holds_what_the_report_says(seeded: Seeded, policy: Policy) -> None:
    s3 = _s3()
    targets = [t for t in policy.targets if isinstance(t, CosTarget)]
    found: dict[str, Counter[str]] = {t: Counter() for t in seeded.report.by_tenant}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=seeded.bucket):
        for obj in page.get("Contents", ()):
            matches = [(t, t.prefix.parse(obj["Key"])) for t in targets]  # type: ignore[union-attr]
            owners = [(t, v) for t, v in matches if v is not None]
            assert len(owners) == 1, obj["Key"]  # every object belongs to exactly one target
            target, values = owners[0]
            found[str(values["tenant"])][target.qualified_name] += 1
    for tenant, counts in seeded.report.by_tenant.items():
        expected = {k: v for k, v in counts.items() if k in {t.qualified_name for t in targets}}
        assert dict(found[tenant]) == expected, tenant


def test_redis_holds_what_the_report_says(seeded: Seeded, policy: Policy) -> None:
    client = _redis()
    targets = [t for t in policy.targets if isinstance(t, RedisTarget)]
    world = {t.tenant_id: t for t in build_world(seeded.config, policy)}
    for tenant, counts in seeded.report.by_tenant.items():
        found: Counter[str] = Counter()
        for key in client.scan_iter(match=_glob(f"cc:{tenant}:") + "*", count=1_000):
            name = key.decode()
            owners = [t for t in targets if (v := t.key.parse(name)) is not None and v["tenant"] == tenant]  # type: ignore[union-attr]
            found[owners[0].qualified_name if owners else "redis.other_keys"] += 1
        names = {t.qualified_name for t in targets} | {"redis.other_keys"}
        assert dict(found) == {k: v for k, v in counts.items() if k in names}
        agent = world[tenant].agents[0]
        profile = client.hgetall(f"cc:{tenant}:agent:{agent.person_id}:profile")
        assert profile[b"name"].decode() == agent.name and profile[b"email"].decode() == agent.email
        assert client.exists(f"cc:{tenant}:queue:inbound") == 1


def test_elasticsearch_holds_what_the_report_says(seeded: Seeded, policy: Policy) -> None:
    es = es_client()
    indices: dict[str, int] = dict(seeded.report.details["indices"])  # type: ignore[arg-type]
    assert indices
    for index, expected in indices.items():
        assert es.count(index=index)["count"] == expected, index
    per_tenant = Counter()
    for index, n in indices.items():
        values = policy.target("log_data.cc_logs").index.parse(index, whole=True)  # type: ignore[attr-defined]
        assert values is not None, index
        per_tenant[values["tenant"]] += n
    assert dict(per_tenant) == {t: c["log_data.cc_logs"] for t, c in seeded.report.by_tenant.items()}


def test_a_customers_calls_agree_across_mysql_and_elasticsearch(seeded: Seeded, policy: Policy) -> None:
    tenant = tenant_ids(seeded.config)[0]
    conn = _mysql(seeded.endpoints, seeded.database)
    try:
        cur = conn.cursor()
        cur.execute("SELECT customer_number, COUNT(*) FROM call_records WHERE tenant_id = %s "
                    "GROUP BY customer_number ORDER BY COUNT(*) DESC LIMIT 1", (tenant,))
        number, calls = cur.fetchone()
    finally:
        conn.close()
    es = es_client()
    indices = [i for i in seeded.report.details["indices"] if i.startswith(f"cc-logs-{tenant}-")]  # type: ignore[union-attr]
    query = {"bool": {"filter": [{"term": {"phone_number": number}}, {"term": {"log_type": "call_trajectory"}}]}}
    assert es.count(index=",".join(indices), query=query)["count"] == calls


def test_seeding_again_gives_the_same_counts(seeded: Seeded, policy: Policy) -> None:
    config = seeded.config
    with pytest.raises(ValueError, match="already holds these tenants"):
        seed_mysql(config, mysql_conn_id=ROOT_MYSQL_CONN_ID, database=seeded.database, policy=policy)
    again = seed_all(config, stores=("redis", "cos", "elasticsearch"), cos_bucket=seeded.bucket, policy=policy)
    mysql_again = seed_mysql(config, mysql_conn_id=ROOT_MYSQL_CONN_ID, database=seeded.database, reset=True,
                             policy=policy)
    merged = again.merged(mysql_again)
    assert dict(merged.counts) == dict(seeded.report.counts)
    assert {t: dict(c) for t, c in merged.by_tenant.items()} == {t: dict(c) for t, c in seeded.report.by_tenant.items()}
    # Redis, COS and ES overwrite by deterministic names: the stores still hold exactly the first counts.
    test_redis_holds_what_the_report_says(seeded, policy)
    test_cos_holds_what_the_report_says(seeded, policy)
    test_elasticsearch_holds_what_the_report_says(seeded, policy)
    test_mysql_holds_what_the_report_says(seeded, policy)


def test_no_personal_data_in_the_seeders_log_lines(seeded: Seeded) -> None:
    assert seeded.log_lines  # the seeder did log
    secrets_ = known_personal_data(seeded.config)
    text = "\n".join(seeded.log_lines)
    assert not [s for s in secrets_ if s in text]
