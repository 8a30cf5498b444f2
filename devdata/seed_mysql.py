"""The contact center's MySQL database: the schema (``devdata.schema``) filled from the world.

Tenants (some terminated), agents and administrators (names, e-mails, phones Fernet-encrypted
with the demo key), call_records (``started_at`` UTC, ``customer_number`` E.164 +65...,
``recording_key`` pointing at the COS object), call_metrics (per agent per local day, stamped
with the UTC instant the local day starts), service_records, and the configuration tables.
Monthly partitions cover the span plus ``future_months``. Every DATETIME is UTC.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Iterator, Sequence

from devdata import schema
from devdata.report import SeedReport, store_report
from devdata.world import SeedConfig, build_world, calls_on, data_fernet, days, named_rng, span
from include.retention.policy import MySqlTarget, Policy, load_policy
from include.retention.timeutil import UTC, add_months, to_naive_utc

log = logging.getLogger(__name__)

QUICK_REPLIES = (
    ("Greeting", "Thank you for calling, how may I help you today?"),
    ("Hold", "May I put you on hold for a moment while I check?"),
    ("Callback", "We will call you back within one working day."),
    ("Closing", "Is there anything else I can help you with?"),
    ("Transfer", "I will transfer you to the right department now."),
    ("Verification", "For your security, may I verify a few details?"),
)
KEYWORDS = ("refund", "complaint", "cancel", "upgrade", "delivery", "invoice", "password", "outage", "promotion")
ROLES = {
    "admin": ("tenant.manage", "agents.manage", "reports.view", "recordings.play", "config.edit"),
    "supervisor": ("agents.monitor", "reports.view", "recordings.play"),
    "agent": ("calls.handle", "quick_replies.use"),
}


def _mysql_targets(policy: Policy) -> dict[str, str]:
    """table -> qualified target name."""
    return {t.table: t.qualified_name for t in policy.targets if isinstance(t, MySqlTarget)}


def _insert(cursor: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], chunk: int) -> int:
    """executemany in chunks (MySQLdb turns each chunk into one multi-row INSERT)."""
    sql = f"INSERT INTO `{table}` ({', '.join(f'`{c}`' for c in columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
    total, batch = 0, []
    for row in rows:
        batch.append(row)
        if len(batch) >= chunk:
            cursor.executemany(sql, batch)
            total += len(batch)
            batch = []
    if batch:
        cursor.executemany(sql, batch)
        total += len(batch)
    return total


def _months_between(first: date, last: date) -> int:
    return (last.year - first.year) * 12 + last.month - first.month + 1


def seed_mysql(
    config: SeedConfig,
    *,
    mysql_conn_id: str = "retention_mysql",
    database: str | None = None,
    reset: bool = False,
    policy: Policy | None = None,
) -> SeedReport:
    """Create the schema in ``database`` (default: the connection's) and fill it.

    :param reset: drop and recreate the database first. Without it, seeding refuses a
        database that already holds any of these tenants (a second run would duplicate rows).
    """
    from airflow.providers.mysql.hooks.mysql import MySqlHook

    policy = policy or load_policy()
    started = time.monotonic()
    world = build_world(config, policy)
    hook = MySqlHook(mysql_conn_id=mysql_conn_id, schema="information_schema")
    if database is None:
        database = hook.get_connection(mysql_conn_id).schema
    if not database:
        raise ValueError(f"no database: pass database= or set one in connection {mysql_conn_id!r}")
    first_day, end_day = span(config)
    # The first partition starts a month early: local midnight on the 1st is the previous UTC day.
    first_month = add_months(first_day.replace(day=1), -1)
    months = _months_between(first_month, end_day) + config.future_months
    fernet = data_fernet(config)
    tables = _mysql_targets(policy)
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    conn = hook.get_conn()
    try:
        cursor = conn.cursor()
        schema.create_schema(cursor, database, first_month, months, drop=reset)
        ids = [t.tenant_id for t in world]
        cursor.execute(
            f"SELECT COUNT(*) FROM tenants WHERE tenant_id IN ({', '.join(['%s'] * len(ids))})", ids
        )
        if cursor.fetchone()[0]:
            raise ValueError(f"database {database!r} already holds these tenants; seed with reset=True")
        chunk = config.chunk_rows

        def count(table: str, tenant: str, n: int) -> None:
            tally[tenant][tables.get(table, f"mysql.{table}")] += n

        for tenant in world:
            t = tenant.tenant_id
            count("tenants", t, _insert(cursor, "tenants", ("tenant_id", "name", "region", "created_at", "terminated_at"), [
                (t, tenant.name, "ap-singapore", to_naive_utc(tenant.created_at),
                 to_naive_utc(tenant.terminated_at) if tenant.terminated_at else None)], chunk))
            rng = named_rng(config, "mysql-people", t)
            people_updated = to_naive_utc(datetime.combine(first_day, datetime.min.time(), UTC)) + timedelta(days=rng.randint(0, 60))
            count("agents", t, _insert(cursor, "agents", (
                "tenant_id", "agent_id", "name_enc", "email_enc", "phone_enc", "role", "created_at", "updated_at"), [
                (t, p.person_id, fernet.encrypt(p.name.encode()), fernet.encrypt(p.email.encode()),
                 fernet.encrypt((p.phone or "").encode()), p.role, to_naive_utc(tenant.created_at), people_updated)
                for p in tenant.agents], chunk))
            count("administrators", t, _insert(cursor, "administrators", (
                "tenant_id", "admin_id", "name_enc", "email_enc", "created_at", "updated_at"), [
                (t, p.person_id, fernet.encrypt(p.name.encode()), fernet.encrypt(p.email.encode()),
                 to_naive_utc(tenant.created_at), people_updated) for p in tenant.admins], chunk))
            config_time = to_naive_utc(tenant.created_at) + timedelta(days=rng.randint(1, 25))
            count("quick_replies", t, _insert(cursor, "quick_replies", ("tenant_id", "title", "body", "updated_at"), [
                (t, title, body, config_time) for title, body in QUICK_REPLIES[: rng.randint(3, len(QUICK_REPLIES))]],
                chunk))
            count("blacklist_numbers", t, _insert(cursor, "blacklist_numbers", (
                "tenant_id", "phone_number", "reason", "created_at"), [
                (t, number, rng.choice(("spam", "abuse", "fraud", "requested")), config_time)
                for number in tenant.blacklist], chunk))
            count("keywords", t, _insert(cursor, "keywords", ("tenant_id", "keyword", "updated_at"), [
                (t, word, config_time) for word in rng.sample(KEYWORDS, rng.randint(4, len(KEYWORDS)))], chunk))
            count("role_permissions", t, _insert(cursor, "role_permissions", (
                "tenant_id", "role", "permission", "updated_at"), [
                (t, role, perm, config_time) for role, perms in ROLES.items() for perm in perms], chunk))
            count("popup_settings", t, _insert(cursor, "popup_settings", ("tenant_id", "name", "url", "updated_at"), [
                (t, name, f"https://crm.{tenant.domain}/{path}?call={{call_id}}", config_time)
                for name, path in (("CRM contact", "contacts"), ("Ticket", "tickets/new"))], chunk))
            count("crm_callbacks", t, _insert(cursor, "crm_callbacks", ("tenant_id", "contact", "slot", "status"), [
                (t, number, config_time + timedelta(days=i), ("scheduled", "done")[i % 2])
                for i, number in enumerate(tenant.customers[:10])], chunk))

            metrics: list[tuple[Any, ...]] = []
            service: list[tuple[Any, ...]] = []

            def call_rows() -> Iterator[tuple[Any, ...]]:
                for day in days(config, tenant):
                    calls = calls_on(config, tenant, day, policy)
                    per_agent: dict[str, list[int]] = {p.person_id: [0, 0, 0] for p in tenant.agents}
                    for c in calls:
                        if c.agent_id:
                            stats = per_agent[c.agent_id]
                            stats[0] += 1
                            if c.answered:
                                stats[1] += 1
                                stats[2] += c.duration_s
                        if c.service:
                            created, rating, note = c.service
                            service.append((to_naive_utc(created), t, c.call_id, c.agent_id, c.customer_number, rating,
                                            fernet.encrypt(note.encode())))
                        yield (to_naive_utc(c.started_at), t, c.call_id, c.direction, c.agent_id, c.customer_number,
                               c.duration_s, c.recording_key)
                    day_start = to_naive_utc(datetime.combine(day, datetime.min.time(), policy.timezone))
                    for agent_id, (n_calls, answered, handle) in per_agent.items():
                        metrics.append((day_start, t, agent_id, n_calls, answered, handle // answered if answered else 0))

            count("call_records", t, _insert(cursor, "call_records", (
                "started_at", "tenant_id", "call_id", "direction", "agent_id", "customer_number", "duration_s",
                "recording_key"), call_rows(), chunk))
            count("call_metrics", t, _insert(cursor, "call_metrics", (
                "metric_date", "tenant_id", "agent_id", "calls", "answered", "avg_handle_s"), metrics, chunk))
            count("service_records", t, _insert(cursor, "service_records", (
                "created_at", "tenant_id", "call_id", "agent_id", "customer_number", "rating", "note_enc"), service,
                chunk))
            conn.commit()
    finally:
        conn.close()
    seconds = time.monotonic() - started
    report = store_report(tally, [t.tenant_id for t in world], "mysql", seconds, {"mysql_database": database})
    log.info("Seeded MySQL database %s: %d rows in %.1fs", database, sum(report.counts.values()), seconds)
    return report
