"""Deterministic synthetic contact-center data in all four stores, named by the policy.

One seed, one scale and one span (``months`` ending at ``as_of``) give the same tenants,
agents, customers, calls and documents every time: every random draw comes from a
``random.Random`` seeded with the seed and the thing being drawn (``7/calls/1600123/2026-03-01``),
so any store can regenerate exactly the calls another store saw, one day at a time, without
holding the span in memory. Only the ciphertexts of the ``*_enc`` columns differ between runs
(Fernet tokens carry a random IV and a timestamp); their plaintexts are deterministic.

What is written (every name rendered from the policy's templates):

- MySQL (``schema.create_schema``, monthly partitions over the span plus ``future_months``):
  tenants (some terminated), agents and administrators (names, e-mails, phones Fernet-encrypted
  with a demo key), call_records (``started_at`` UTC, ``customer_number`` E.164 +65...,
  ``recording_key`` pointing at the COS object), call_metrics (per agent per local day, stamped
  with the UTC instant the local day starts), service_records, and the configuration tables;
- Redis: ``cc:{tenant}:agent:{agent}:profile`` (hash: name, email) and ``:status``,
  ``cc:{tenant}:session:{agent}:{session}``, and keys no policy target names
  (``cc:{tenant}:queue:{name}``, ``cc:{tenant}:ivr:menu``) that a purge must never touch;
- COS: ``recordings/{tenant}/{yyyy}/{mm}/{dd}/{call_id}.wav`` for a share of answered calls,
  and ``backups/{tenant}/{yyyy-mm-dd}/{category}/{table}.json.gz`` for the last ``backup_days``;
- Elasticsearch: ``cc-logs-{tenant}-{yyyy.mm}`` with operation logs, agent status changes, call
  trajectories and SIP/MOS records (``tenant_id``, ``agent_id``, ``phone_number``, ``@timestamp``).

Days, day prefixes and index months are on the policy's calendar (Asia/Singapore); every
DATETIME is UTC, so a call at 07:00 in Singapore lands on the previous UTC day.

Tenant ids include a pair where one is a prefix of the other (``{base}12`` and ``{base}123``),
agents ``a1`` and ``a10`` share a prefix, and a few customer numbers call several tenants, so
that every purge's exactness is exercised.

Usage::

    report = seed_all(SeedConfig(seed=7, as_of=date(2026, 11, 28)), mysql_database="contact_center")
    secrets = known_personal_data(config)   # to prove none of it reaches a log line
"""

from __future__ import annotations

import base64
import calendar
import gzip
import hashlib
import io
import json
import logging
import random
import struct
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Iterable, Iterator, Mapping, Sequence
from zoneinfo import ZoneInfo

from include.contact_center import schema
from include.retention.policy import CosTarget, ElasticsearchTarget, MySqlTarget, Policy, RedisTarget, load_policy

log = logging.getLogger(__name__)

UTC = timezone.utc
DEFAULT_DATA_KEY = "cc-demo-data-key: synthetic data only, not a secret"


def _today_in_policy_zone() -> date:
    return datetime.now(load_policy().timezone).date()


@dataclass(frozen=True)
class SeedConfig:
    """What to generate. Same values, same data (ciphertexts aside).

    :param seed: the seed every random draw derives from.
    :param tenants: how many tenants (ignored when ``tenant_ids`` is given).
    :param agents_per_tenant: agents per tenant, ids ``a1``..``aN`` (so ``a1`` and ``a10`` meet at 10).
    :param admins_per_tenant: administrators per tenant, ids ``adm1``..
    :param calls_per_day_per_tenant: mean calls a day (weekends half), varied +-40 % day to day.
    :param months: calendar months of history ending at ``as_of``.
    :param as_of: the span ends the day before this local date (default: today in the policy zone).
    :param tenant_base: leading digits of generated tenant ids; the first two are ``{base}12``
        and ``{base}123``, the rest random.
    :param tenant_ids: explicit tenant ids (overrides ``tenants`` and ``tenant_base``).
    :param terminated_tenants: how many of the last tenants terminated (``terminated_days_ago``
        days before ``as_of``); they have no activity after that.
    :param customers_per_tenant: size of each tenant's customer pool (plus a few numbers shared by
        every tenant).
    :param recording_share: share of answered calls with a recording (uploaded to COS).
    :param service_record_share: share of answered calls with a service record.
    :param backup_days: daily backups for this many days before ``as_of``.
    :param future_months: empty monthly partitions after ``as_of``'s month.
    :param sessions_per_agent: Redis session keys per agent.
    :param data_key: demo key the ``*_enc`` columns are encrypted with (Fernet, derived by SHA-256).
    :param cos_workers: threads uploading objects.
    :param chunk_rows: rows per ``executemany`` (MySQL) and documents per bulk request (ES).
    """

    seed: int = 7
    tenants: int = 6
    agents_per_tenant: int = 12
    admins_per_tenant: int = 2
    calls_per_day_per_tenant: int = 30
    months: int = 9
    as_of: date = field(default_factory=_today_in_policy_zone)
    tenant_base: str = "1600"
    tenant_ids: tuple[str, ...] = ()
    terminated_tenants: int = 1
    terminated_days_ago: int = 20
    customers_per_tenant: int = 150
    recording_share: float = 0.05
    service_record_share: float = 0.3
    backup_days: int = 40
    future_months: int = 3
    sessions_per_agent: int = 2
    data_key: str = field(default=DEFAULT_DATA_KEY, repr=False)
    cos_workers: int = 8
    chunk_rows: int = 5_000

    def __post_init__(self) -> None:
        if self.months < 1 or self.months > 36:
            raise ValueError(f"months must be 1..36, got {self.months}")
        if not self.tenant_ids and self.tenants < 1:
            raise ValueError("give at least one tenant")
        if self.agents_per_tenant < 1 or self.admins_per_tenant < 0:
            raise ValueError("give at least one agent per tenant")
        if not 0 <= self.recording_share <= 1 or not 0 <= self.service_record_share <= 1:
            raise ValueError("shares are between 0 and 1")
        if not self.tenant_base.isdigit() or self.tenant_base.startswith("0"):
            raise ValueError("tenant_base must be digits not starting with 0")


# --------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class Person:
    """An agent or administrator. ``name``, ``email`` and ``phone`` are personal data."""

    person_id: str
    name: str = field(repr=False)
    email: str = field(repr=False)
    phone: str | None = field(default=None, repr=False)
    role: str = "agent"


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    domain: str
    created_at: datetime  # UTC
    terminated_at: datetime | None  # UTC
    last_day: date  # local: activity on days before this one
    agents: tuple[Person, ...]
    admins: tuple[Person, ...]
    customers: tuple[str, ...] = field(repr=False)
    blacklist: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True)
class Call:
    tenant_id: str
    call_id: str
    started_at: datetime  # aware, UTC
    local_day: date
    direction: str
    agent_id: str | None
    customer_number: str = field(repr=False)
    answered: bool = False
    duration_s: int = 0
    recording_key: str | None = None
    service: tuple[datetime, int | None, str] | None = None  # (created_at UTC, rating, note)


@dataclass(frozen=True)
class SeedReport:
    """What was written: counts per policy target (``category.target``) and per other thing
    (``mysql.tenants``, ``redis.other_keys``), in total and per tenant. No personal data."""

    counts: Mapping[str, int]
    by_tenant: Mapping[str, Mapping[str, int]]
    tenants: tuple[str, ...]
    seconds: Mapping[str, float] = field(default_factory=dict)
    details: Mapping[str, object] = field(default_factory=dict)

    def merged(self, other: SeedReport) -> SeedReport:
        by_tenant: dict[str, dict[str, int]] = {t: dict(c) for t, c in self.by_tenant.items()}
        for tenant, counts in other.by_tenant.items():
            by_tenant.setdefault(tenant, {}).update(counts)
        return SeedReport(
            counts=MappingProxyType({**self.counts, **other.counts}),
            by_tenant=MappingProxyType({t: MappingProxyType(c) for t, c in by_tenant.items()}),
            tenants=self.tenants or other.tenants,
            seconds=MappingProxyType({**self.seconds, **other.seconds}),
            details=MappingProxyType({**self.details, **other.details}),
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "tenants": list(self.tenants),
            "counts": dict(self.counts),
            "by_tenant": {t: dict(c) for t, c in self.by_tenant.items()},
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "details": dict(self.details),
        }


def _report(tally: Mapping[str, Counter[str]], tenants: Sequence[str], store: str, seconds: float,
            details: Mapping[str, object] | None = None) -> SeedReport:
    totals: Counter[str] = Counter()
    for counts in tally.values():
        totals.update(counts)
    return SeedReport(
        counts=MappingProxyType(dict(totals)),
        by_tenant=MappingProxyType({t: MappingProxyType(dict(tally.get(t, Counter()))) for t in tenants}),
        tenants=tuple(tenants),
        seconds=MappingProxyType({store: seconds}),
        details=MappingProxyType(dict(details or {})),
    )


FIRST_NAMES = (
    "Wei Ming", "Hui Min", "Jun Jie", "Siew Ling", "Arjun", "Priya", "Nur Aisyah", "Muhammad Faiz",
    "Kavitha", "Rajesh", "Mei Ling", "Zhi Hao", "Siti Nurhaliza", "Daniel", "Rachel", "Marcus",
    "Farah", "Hafiz", "Deepa", "Vikram", "Li Ting", "Kai Wen", "Aaron", "Grace",
)
LAST_NAMES = (
    "Tan", "Lim", "Lee", "Ng", "Wong", "Goh", "Chua", "Chan", "Koh", "Teo", "Ong", "Ho",
    "Kumar", "Nair", "Pillai", "Rahman", "Abdullah", "Ismail", "Yeo", "Sim", "Chong", "Low",
)
COMPANY_WORDS = (
    ("Lion", "Bay", "Merlion", "Harbour", "Orchid", "Straits", "Raffles", "Sentosa", "Kallang", "Tiong"),
    ("Logistics", "Telecom", "Insurance", "Travel", "Clinics", "Retail", "Finance", "Energy", "Foods", "Realty"),
)
QUEUES = ("inbound", "vip", "callback")
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
NOTES = (
    "Customer asked about delivery status.", "Billing question resolved.", "Follow-up scheduled.",
    "Escalated to second line.", "Product information provided.", "Complaint logged.",
)
AGENT_STATUSES = ("idle", "busy", "after_call_work", "offline")


def _rng(config: SeedConfig, *parts: object) -> random.Random:
    """A generator for one named draw: deterministic across runs and processes."""
    return random.Random("/".join([str(config.seed), *map(str, parts)]))


def _add_months(day: date, months: int) -> date:
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def span(config: SeedConfig) -> tuple[date, date]:
    """Local days of activity: ``[first, end)`` with ``end == as_of``."""
    return _add_months(config.as_of, -config.months), config.as_of


def tenant_ids(config: SeedConfig) -> tuple[str, ...]:
    """The tenants' ids: explicit, or ``{base}12``, ``{base}123`` and random ones after them."""
    if config.tenant_ids:
        return tuple(config.tenant_ids)
    ids = [f"{config.tenant_base}12", f"{config.tenant_base}123"][: config.tenants]
    rng = _rng(config, "tenant-ids")
    while len(ids) < config.tenants:
        candidate = f"{config.tenant_base}{rng.randint(1000, 999999)}"
        if candidate not in ids:
            ids.append(candidate)
    return tuple(ids)


def _phone(rng: random.Random, taken: set[str], first_digits: str = "89") -> str:
    while True:
        number = f"+65{rng.choice(first_digits)}{rng.randint(0, 9_999_999):07d}"
        if number not in taken:
            taken.add(number)
            return number


def build_world(config: SeedConfig, policy: Policy | None = None) -> tuple[Tenant, ...]:
    """Tenants, their people and customer pools (no events). Pure and deterministic."""
    policy = policy or load_policy()
    tz = policy.timezone
    first_day, end_day = span(config)
    ids = tenant_ids(config)
    for tenant_id in ids:
        policy.validate_tenant_id(tenant_id)
    taken: set[str] = set()
    shared_rng = _rng(config, "shared-customers")
    shared = tuple(_phone(shared_rng, taken) for _ in range(3))  # people who call every tenant
    terminated_from = len(ids) - min(config.terminated_tenants, max(len(ids) - 1, 0))
    tenants = []
    for index, tenant_id in enumerate(ids):
        rng = _rng(config, "tenant", tenant_id)
        company = f"{rng.choice(COMPANY_WORDS[0])} {rng.choice(COMPANY_WORDS[1])}"
        domain = company.lower().replace(" ", "-") + f"-{index + 1}.example"
        created_local = datetime.combine(first_day - timedelta(days=rng.randint(30, 400)), datetime.min.time(), tz)
        terminated_at, last_day = None, end_day
        if index >= terminated_from:
            last_day = end_day - timedelta(days=config.terminated_days_ago)
            terminated_at = datetime.combine(last_day, datetime.min.time(), tz).astimezone(UTC)

        def person(prefix: str, n: int, role: str, with_phone: bool) -> Person:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            local = f"{first.split()[0]}.{last}{n}".lower()
            return Person(
                person_id=f"{prefix}{n}",
                name=f"{last} {first}" if rng.random() < 0.6 else f"{first} {last}",
                email=f"{local}@{domain}",
                phone=_phone(rng, taken) if with_phone else None,
                role=role,
            )

        agents = tuple(
            person("a", n, "supervisor" if n % 8 == 0 else "agent", True) for n in range(1, config.agents_per_tenant + 1)
        )
        admins = tuple(person("adm", n, "admin", False) for n in range(1, config.admins_per_tenant + 1))
        customers = tuple(_phone(rng, taken) for _ in range(config.customers_per_tenant)) + shared
        blacklist = tuple(_phone(rng, taken, "3689") for _ in range(rng.randint(3, 8)))
        tenants.append(
            Tenant(
                tenant_id=tenant_id,
                name=company,
                domain=domain,
                created_at=created_local.astimezone(UTC),
                terminated_at=terminated_at,
                last_day=last_day,
                agents=agents,
                admins=admins,
                customers=customers,
                blacklist=blacklist,
            )
        )
    return tuple(tenants)


def known_personal_data(config: SeedConfig, policy: Policy | None = None) -> set[str]:
    """Every phone number, name and e-mail the seeder writes (no server is touched)."""
    out: set[str] = set()
    for tenant in build_world(config, policy):
        for person in tenant.agents + tenant.admins:
            out.update(v for v in (person.name, person.email, person.phone) if v)
        out.update(tenant.customers)
        out.update(tenant.blacklist)
    return out


def days(config: SeedConfig, tenant: Tenant) -> Iterator[date]:
    first_day, end_day = span(config)
    day = first_day
    while day < min(end_day, tenant.last_day):
        yield day
        day += timedelta(days=1)


def calls_on(config: SeedConfig, tenant: Tenant, day: date, policy: Policy) -> list[Call]:
    """The tenant's calls on one local day, sorted by start. Deterministic."""
    rng = _rng(config, "calls", tenant.tenant_id, day.isoformat())
    tz = policy.timezone
    recordings = _recordings_target(policy)
    mean = config.calls_per_day_per_tenant * (0.5 if day.weekday() >= 5 else 1.0)
    n = rng.randint(round(mean * 0.6), max(round(mean * 1.4), round(mean * 0.6)))
    day_start = datetime.combine(day, datetime.min.time(), tz)
    recording_prefix = recordings.prefix.render(tenant=tenant.tenant_id, date=day)  # type: ignore[union-attr]
    out = []
    for _ in range(n):
        # Mostly business hours; a few before 08:00 local, i.e. on the previous UTC day.
        if rng.random() < 0.04:
            seconds = rng.randint(0, 8 * 3600 - 1)
        else:
            seconds = rng.randint(8 * 3600, 22 * 3600 - 1)
        started = (day_start + timedelta(seconds=seconds)).astimezone(UTC)
        call_id = f"{rng.getrandbits(128):032x}"
        direction = "inbound" if rng.random() < 0.7 else "outbound"
        customer = rng.choice(tenant.customers)
        agent: Person | None = rng.choice(tenant.agents)
        answered = True
        roll = rng.random()
        if direction == "inbound" and roll < 0.05:
            agent, answered = None, False  # abandoned in the queue
        elif roll < 0.12:
            answered = False  # rang the agent (or the customer) without an answer
        duration = rng.randint(20, 1_200) if answered else 0
        recording_key = None
        if answered and rng.random() < config.recording_share:
            recording_key = f"{recording_prefix}{call_id}.wav"
        service = None
        if answered and rng.random() < config.service_record_share:
            rating = rng.randint(1, 5) if rng.random() < 0.7 else None
            service = (started + timedelta(seconds=duration + rng.randint(5, 600)), rating, rng.choice(NOTES))
        out.append(
            Call(
                tenant_id=tenant.tenant_id,
                call_id=call_id,
                started_at=started,
                local_day=day,
                direction=direction,
                agent_id=agent.person_id if agent else None,
                customer_number=customer,
                answered=answered,
                duration_s=duration,
                recording_key=recording_key,
                service=service,
            )
        )
    out.sort(key=lambda c: c.started_at)
    return out


# --------------------------------------------------------------------------- policy look-ups


def _recordings_target(policy: Policy) -> CosTarget:
    for target in policy.targets:
        if isinstance(target, CosTarget) and target.subject_keys_from is not None:
            return target
    raise LookupError("the policy has no COS target whose keys come from a MySQL column (recordings)")


def _mysql_targets(policy: Policy) -> dict[str, str]:
    """table -> qualified target name."""
    return {t.table: t.qualified_name for t in policy.targets if isinstance(t, MySqlTarget)}


def _redis_target(policy: Policy, subject_text: str) -> RedisTarget:
    for target in policy.targets:
        if isinstance(target, RedisTarget) and target.key is not None and subject_text in target.key.text:
            return target
    raise LookupError(f"the policy has no Redis target with {subject_text!r} in its key")


def _backup_targets(policy: Policy) -> list[tuple[CosTarget, list[str]]]:
    """Dated COS targets that back up their category's MySQL tables, with those tables."""
    out = []
    for category in policy.categories.values():
        tables = [t.table for t in category.targets if isinstance(t, MySqlTarget)]
        for target in category.targets:
            if isinstance(target, CosTarget) and target.subject_keys_from is None and target.is_dated and tables:
                out.append((target, tables))
    return out


def _es_target(policy: Policy) -> ElasticsearchTarget:
    for target in policy.targets:
        if isinstance(target, ElasticsearchTarget):
            return target
    raise LookupError("the policy has no Elasticsearch target")


# --------------------------------------------------------------------------- encryption


def _fernet(config: SeedConfig) -> Any:
    from cryptography.fernet import Fernet

    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(config.data_key.encode()).digest()))


def decrypt(config: SeedConfig, token: bytes | str) -> str:
    """Read back an ``*_enc`` column written by the seeder (demo key)."""
    raw = token.encode() if isinstance(token, str) else bytes(token)
    return _fernet(config).decrypt(raw).decode()


# --------------------------------------------------------------------------- MySQL


def _naive(moment: datetime) -> datetime:
    """An aware instant as the naive UTC DATETIME MySQL stores."""
    return moment.astimezone(UTC).replace(tzinfo=None)


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
    first_month = _add_months(first_day.replace(day=1), -1)
    months = _months_between(first_month, end_day) + config.future_months
    fernet = _fernet(config)
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
                (t, tenant.name, "ap-singapore", _naive(tenant.created_at),
                 _naive(tenant.terminated_at) if tenant.terminated_at else None)], chunk))
            rng = _rng(config, "mysql-people", t)
            people_updated = _naive(datetime.combine(first_day, datetime.min.time(), UTC)) + timedelta(days=rng.randint(0, 60))
            count("agents", t, _insert(cursor, "agents", (
                "tenant_id", "agent_id", "name_enc", "email_enc", "phone_enc", "role", "created_at", "updated_at"), [
                (t, p.person_id, fernet.encrypt(p.name.encode()), fernet.encrypt(p.email.encode()),
                 fernet.encrypt((p.phone or "").encode()), p.role, _naive(tenant.created_at), people_updated)
                for p in tenant.agents], chunk))
            count("administrators", t, _insert(cursor, "administrators", (
                "tenant_id", "admin_id", "name_enc", "email_enc", "created_at", "updated_at"), [
                (t, p.person_id, fernet.encrypt(p.name.encode()), fernet.encrypt(p.email.encode()),
                 _naive(tenant.created_at), people_updated) for p in tenant.admins], chunk))
            config_time = _naive(tenant.created_at) + timedelta(days=rng.randint(1, 25))
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
                            service.append((_naive(created), t, c.call_id, c.agent_id, c.customer_number, rating,
                                            fernet.encrypt(note.encode())))
                        yield (_naive(c.started_at), t, c.call_id, c.direction, c.agent_id, c.customer_number,
                               c.duration_s, c.recording_key)
                    day_start = _naive(datetime.combine(day, datetime.min.time(), policy.timezone))
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
    report = _report(tally, [t.tenant_id for t in world], "mysql", seconds, {"mysql_database": database})
    log.info("Seeded MySQL database %s: %d rows in %.1fs", database, sum(report.counts.values()), seconds)
    return report


# --------------------------------------------------------------------------- Redis


def queue_key(tenant: str, name: str) -> str:
    """A queue key: no policy target names it, so no purge may ever delete it."""
    return f"cc:{tenant}:queue:{name}"


def seed_redis(config: SeedConfig, *, redis_conn_id: str = "retention_redis", policy: Policy | None = None) -> SeedReport:
    """Agent profiles and statuses, sessions, and queue and IVR keys that no target names."""
    from airflow.providers.redis.hooks.redis import RedisHook

    policy = policy or load_policy()
    started = time.monotonic()
    world = build_world(config, policy)
    state, sessions = _redis_target(policy, "{tenant}:agent:"), _redis_target(policy, "{tenant}:session:")
    client = RedisHook(redis_conn_id=redis_conn_id).get_conn()
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    _, end_day = span(config)
    pipe = client.pipeline(transaction=False)
    for tenant in world:
        t = tenant.tenant_id
        rng = _rng(config, "redis", t)
        for agent in tenant.agents:
            prefix = state.key.render(tenant=t, agent=agent.person_id)  # type: ignore[union-attr]
            pipe.hset(prefix + "profile", mapping={"name": agent.name, "email": agent.email, "role": agent.role})
            pipe.set(prefix + "status", rng.choice(AGENT_STATUSES))
            tally[t][state.qualified_name] += 2
            session_prefix = sessions.key.render(tenant=t, agent=agent.person_id)  # type: ignore[union-attr]
            for _ in range(config.sessions_per_agent):
                login = datetime.combine(end_day, datetime.min.time(), UTC) - timedelta(minutes=rng.randint(5, 60 * 48))
                pipe.hset(f"{session_prefix}{rng.getrandbits(64):016x}",
                          mapping={"login_at": login.isoformat(), "client": rng.choice(("web", "desktop", "mobile"))})
                tally[t][sessions.qualified_name] += 1
        for name in QUEUES:
            pipe.delete(queue_key(t, name))
            pipe.rpush(queue_key(t, name), *[f"{rng.getrandbits(128):032x}" for _ in range(rng.randint(1, 5))])
            tally[t]["redis.other_keys"] += 1
        pipe.hset(f"cc:{t}:ivr:menu", mapping={"1": "sales", "2": "support", "0": "operator"})
        tally[t]["redis.other_keys"] += 1
        if len(pipe) >= 2_000:
            pipe.execute()
    pipe.execute()
    seconds = time.monotonic() - started
    report = _report(tally, [t.tenant_id for t in world], "redis", seconds)
    log.info("Seeded Redis: %d keys in %.1fs", sum(report.counts.values()), seconds)
    return report


# --------------------------------------------------------------------------- COS


def _wav(call_id: str, seconds: float = 0.05, rate: int = 8_000) -> bytes:
    """A tiny valid 8 kHz mono PCM WAV (silence with a faint deterministic tone)."""
    frames = int(seconds * rate)
    seed = int(call_id[:8], 16)
    data = bytes((128 + ((seed >> (i % 24)) & 7)) & 0xFF for i in range(frames))
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, rate, 1, 8) + b"data" + struct.pack("<I", len(data))
    return header + data


def _backup_body(tenant: str, day: date, category: str, table: str, rows: int) -> bytes:
    doc = {"tenant_id": tenant, "date": day.isoformat(), "category": category, "table": table, "rows": rows,
           "format": "synthetic backup manifest"}
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
        gz.write(json.dumps(doc, sort_keys=True).encode())
    return buffer.getvalue()


def cos_objects(config: SeedConfig, policy: Policy | None = None) -> Iterator[tuple[str, str, str, bytes]]:
    """(tenant, target, key, body) of every object the seeder writes, generated lazily."""
    policy = policy or load_policy()
    recordings = _recordings_target(policy)
    backups = _backup_targets(policy)
    _, end_day = span(config)
    for tenant in build_world(config, policy):
        for day in days(config, tenant):
            for call in calls_on(config, tenant, day, policy):
                if call.recording_key:
                    yield tenant.tenant_id, recordings.qualified_name, call.recording_key, _wav(call.call_id)
        rng = _rng(config, "backups", tenant.tenant_id)
        for offset in range(config.backup_days, 0, -1):
            day = end_day - timedelta(days=offset)
            if day >= tenant.last_day:
                continue
            for target, tables in backups:
                prefix = target.prefix.render(tenant=tenant.tenant_id, date=day)  # type: ignore[union-attr]
                for table in tables:
                    body = _backup_body(tenant.tenant_id, day, target.category, table, rng.randint(10, 50_000))
                    yield tenant.tenant_id, target.qualified_name, f"{prefix}{table}.json.gz", body


def seed_cos(
    config: SeedConfig,
    *,
    aws_conn_id: str = "retention_cos",
    bucket: str | None = None,
    policy: Policy | None = None,
) -> SeedReport:
    """Recordings and daily backups, uploaded by a small thread pool (bucket created if missing)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    policy = policy or load_policy()
    started = time.monotonic()
    hook = S3Hook(aws_conn_id=aws_conn_id)
    bucket = bucket or hook.service_config.get("bucket_name")
    if not bucket:
        raise ValueError(f"no bucket: pass bucket= or set service_config.s3.bucket_name in {aws_conn_id!r}")
    client = hook.get_conn()
    _ensure_bucket(client, bucket)
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    in_flight = max(config.cos_workers * 4, 8)

    def put(key: str, body: bytes) -> None:
        content_type = "audio/wav" if key.endswith(".wav") else "application/gzip"
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    with ThreadPoolExecutor(max_workers=config.cos_workers, thread_name_prefix="seed-cos") as pool:
        pending = []
        for tenant, target, key, body in cos_objects(config, policy):
            pending.append(pool.submit(put, key, body))
            tally[tenant][target] += 1
            if len(pending) >= in_flight:  # bounded: never queue the whole span in memory
                for future in pending:
                    future.result()
                pending = []
        for future in pending:
            future.result()
    seconds = time.monotonic() - started
    report = _report(tally, tenant_ids(config), "cos", seconds, {"bucket": bucket})
    log.info("Seeded COS bucket %s: %d objects in %.1fs", bucket, sum(report.counts.values()), seconds)
    return report


def _ensure_bucket(client: Any, bucket: str) -> None:
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) not in ("404", "NoSuchBucket", "NotFound"):
            raise
        client.create_bucket(Bucket=bucket)


# --------------------------------------------------------------------------- Elasticsearch


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def es_documents(config: SeedConfig, policy: Policy | None = None) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(tenant, index, doc id, source) of every log document, generated lazily."""
    policy = policy or load_policy()
    target = _es_target(policy)
    tz = policy.timezone
    tenant_field, time_field = target.tenant_field, target.time_field
    agent_field = target.subject_fields.get("agent", "agent_id")
    phone_field = target.subject_fields.get("phone_number", "phone_number")

    def index_of(tenant: str, moment: datetime) -> str:
        local = moment.astimezone(tz).date()
        return target.index.render(tenant=tenant, month=local.replace(day=1))  # type: ignore[union-attr]

    for tenant in build_world(config, policy):
        t = tenant.tenant_id
        for day in days(config, tenant):
            rng = _rng(config, "es", t, day.isoformat())
            day_start = datetime.combine(day, datetime.min.time(), tz)
            for agent in tenant.agents:
                for hour, (old, new) in ((8, ("offline", "idle")), (18, ("idle", "offline"))):
                    moment = day_start + timedelta(hours=hour, seconds=rng.randint(0, 3_599))
                    yield t, index_of(t, moment), f"st-{t}-{agent.person_id}-{day:%Y%m%d}-{hour}", {
                        "log_type": "status_change", tenant_field: t, agent_field: agent.person_id,
                        time_field: _iso(moment), "from_status": old, "to_status": new}
            for admin in tenant.admins:
                moment = day_start + timedelta(hours=9, seconds=rng.randint(0, 8 * 3_600))
                yield t, index_of(t, moment), f"op-{t}-{admin.person_id}-{day:%Y%m%d}", {
                    "log_type": "operation_log", tenant_field: t, agent_field: admin.person_id,
                    time_field: _iso(moment), "action": rng.choice(("quick_reply.update", "agent.update",
                                                                   "keyword.add", "report.export"))}
            for call in calls_on(config, tenant, day, policy):
                base = {tenant_field: t, agent_field: call.agent_id, phone_field: call.customer_number,
                        "call_id": call.call_id, "direction": call.direction}
                yield t, index_of(t, call.started_at), f"tr-{call.call_id}", {
                    **base, "log_type": "call_trajectory", time_field: _iso(call.started_at),
                    "events": ["ringing", "answered", "hangup"] if call.answered else ["ringing", "no_answer"],
                    "duration_s": call.duration_s}
                if call.answered:
                    ended = call.started_at + timedelta(seconds=call.duration_s)
                    yield t, index_of(t, ended), f"sip-{call.call_id}", {
                        **base, "log_type": "sip_mos", time_field: _iso(ended), "sip_code": 200,
                        "mos": round(rng.uniform(3.2, 4.5), 2), "jitter_ms": rng.randint(1, 40),
                        "packet_loss_pct": round(rng.uniform(0, 1.5), 2)}


def es_mappings(target: ElasticsearchTarget) -> dict[str, Any]:
    """Exact (keyword) tenant, subject and id fields and a date time field, as term queries need."""
    properties: dict[str, Any] = {target.tenant_field: {"type": "keyword"}, target.time_field: {"type": "date"}}
    for name in (*target.subject_fields.values(), "log_type", "call_id", "direction", "action", "from_status",
                 "to_status", "events"):
        properties[name] = {"type": "keyword"}
    return {"properties": properties}


def es_client(elasticsearch_conn_id: str = "retention_elasticsearch") -> Any:
    """The official client from an Airflow connection ``elasticsearch://user:pw@host:port/scheme``."""
    from airflow.providers.elasticsearch.hooks.elasticsearch import ElasticsearchPythonHook
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(elasticsearch_conn_id)
    extra = conn.extra_dejson
    host, scheme = conn.host or "localhost", conn.schema or str(extra.get("scheme") or "http")
    if "://" in host:
        scheme, _, host = host.partition("://")
    args: dict[str, Any] = {"request_timeout": 120}
    if extra.get("api_key"):
        args["api_key"] = extra["api_key"]
    elif conn.login:
        args["basic_auth"] = (conn.login, conn.password or "")
    for key in ("ca_certs", "verify_certs"):
        if key in extra:
            args[key] = extra[key]
    return ElasticsearchPythonHook(hosts=[f"{scheme}://{host}:{conn.port or 9200}"], es_conn_args=args).get_conn


def seed_elasticsearch(
    config: SeedConfig,
    *,
    elasticsearch_conn_id: str = "retention_elasticsearch",
    policy: Policy | None = None,
) -> SeedReport:
    """Monthly log indices per tenant (created with keyword mappings), filled with bulk requests.

    Document ids are deterministic, so seeding again overwrites rather than duplicates.
    """
    from elasticsearch import helpers

    policy = policy or load_policy()
    started = time.monotonic()
    target = _es_target(policy)
    client = es_client(elasticsearch_conn_id)
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    per_index: Counter[str] = Counter()
    created: set[str] = set()
    mappings = es_mappings(target)

    def actions() -> Iterator[dict[str, Any]]:
        for tenant, index, doc_id, source in es_documents(config, policy):
            if index not in created:
                if not client.indices.exists(index=index):
                    client.options(ignore_status=400).indices.create(
                        index=index, mappings=mappings, settings={"number_of_shards": 1, "number_of_replicas": 0})
                created.add(index)
            tally[tenant][target.qualified_name] += 1
            per_index[index] += 1
            yield {"_op_type": "index", "_index": index, "_id": doc_id, "_source": source}

    _, errors = helpers.bulk(client, actions(), chunk_size=min(config.chunk_rows, 5_000), raise_on_error=True,
                             stats_only=True)
    if errors:
        raise RuntimeError(f"{errors} documents failed to index")
    if created:
        client.indices.refresh(index=",".join(sorted(created)))
    seconds = time.monotonic() - started
    report = _report(tally, tenant_ids(config), "elasticsearch", seconds, {"indices": dict(sorted(per_index.items()))})
    log.info("Seeded Elasticsearch: %d documents in %d indices in %.1fs", sum(per_index.values()), len(created), seconds)
    return report


# --------------------------------------------------------------------------- all stores

STORES = ("mysql", "redis", "cos", "elasticsearch")


def _import_drivers(stores: Iterable[str]) -> None:
    import importlib

    modules = {
        "mysql": ("airflow.providers.mysql.hooks.mysql", "MySQLdb"),
        "redis": ("airflow.providers.redis.hooks.redis", "redis"),
        "cos": ("airflow.providers.amazon.aws.hooks.s3", "botocore.exceptions", "cryptography.fernet"),
        "elasticsearch": ("airflow.providers.elasticsearch.hooks.elasticsearch", "elasticsearch.helpers", "airflow.sdk"),
    }
    importlib.import_module("cryptography.fernet")
    for store in stores:
        for name in modules[store]:
            importlib.import_module(name)


def seed_all(
    config: SeedConfig,
    *,
    mysql_conn_id: str = "retention_mysql",
    redis_conn_id: str = "retention_redis",
    aws_conn_id: str = "retention_cos",
    elasticsearch_conn_id: str = "retention_elasticsearch",
    mysql_database: str | None = None,
    reset_mysql: bool = False,
    cos_bucket: str | None = None,
    stores: Iterable[str] = STORES,
    policy: Policy | None = None,
    parallel: bool = True,
) -> SeedReport:
    """Seed every store named in ``stores``; the report merges theirs.

    :param parallel: seed the stores at the same time, one thread each (each store mostly
        waits on its server, so the whole takes about as long as the slowest store).
    """
    policy = policy or load_policy()
    chosen = tuple(dict.fromkeys(stores))
    unknown = set(chosen) - set(STORES)
    if unknown:
        raise ValueError(f"unknown store(s) {sorted(unknown)}; use {', '.join(STORES)}")
    jobs = {
        "mysql": lambda: seed_mysql(config, mysql_conn_id=mysql_conn_id, database=mysql_database, reset=reset_mysql,
                                    policy=policy),
        "redis": lambda: seed_redis(config, redis_conn_id=redis_conn_id, policy=policy),
        "cos": lambda: seed_cos(config, aws_conn_id=aws_conn_id, bucket=cos_bucket, policy=policy),
        "elasticsearch": lambda: seed_elasticsearch(config, elasticsearch_conn_id=elasticsearch_conn_id,
                                                    policy=policy),
    }
    started = time.monotonic()
    if parallel and len(chosen) > 1:
        _import_drivers(chosen)  # importing airflow from several threads at once deadlocks
        with ThreadPoolExecutor(max_workers=len(chosen), thread_name_prefix="seed") as pool:
            futures = {store: pool.submit(jobs[store]) for store in chosen}
            reports = [futures[store].result() for store in chosen]  # re-raises the first failure
    else:
        reports = [jobs[store]() for store in chosen]
    report = SeedReport(counts={}, by_tenant={}, tenants=tenant_ids(config))
    for part in reports:
        report = report.merged(part)
    report = report.merged(SeedReport(counts={}, by_tenant={}, tenants=(),
                                      seconds={"total": time.monotonic() - started}))
    log.info("Seeded %s in %.1fs", ", ".join(chosen), time.monotonic() - started)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m include.contact_center.seed [--as-of 2026-11-28] [--database contact_center] ...``

    Connections come from the environment (``AIRFLOW_CONN_RETENTION_*``, e.g. from
    ``python -m devservers env``). Prints the report as JSON.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m include.contact_center.seed", description=main.__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tenants", type=int, default=6)
    parser.add_argument("--agents-per-tenant", type=int, default=12)
    parser.add_argument("--calls-per-day-per-tenant", type=int, default=30)
    parser.add_argument("--months", type=int, default=9)
    parser.add_argument("--as-of", type=date.fromisoformat, default=None, help="local date (default: today)")
    parser.add_argument("--recording-share", type=float, default=0.05)
    parser.add_argument("--database", default=None, help="MySQL database (default: the connection's)")
    parser.add_argument("--reset", action="store_true", help="drop and recreate the MySQL database first")
    parser.add_argument("--stores", default=",".join(STORES), help="comma-separated subset of " + ",".join(STORES))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    extra = {"as_of": args.as_of} if args.as_of else {}
    config = SeedConfig(
        seed=args.seed, tenants=args.tenants, agents_per_tenant=args.agents_per_tenant,
        calls_per_day_per_tenant=args.calls_per_day_per_tenant, months=args.months,
        recording_share=args.recording_share, **extra,
    )
    report = seed_all(config, mysql_database=args.database, reset_mysql=args.reset,
                      stores=[s.strip() for s in args.stores.split(",") if s.strip()])
    print(json.dumps(report.as_dict(), indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
