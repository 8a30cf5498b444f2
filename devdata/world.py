"""The synthetic contact center as pure data: tenants, their people, customers and calls.

One seed, one scale and one span (``months`` ending at ``as_of``) give the same tenants,
agents, customers, calls and documents every time: every random draw comes from a
``random.Random`` seeded with the seed and the thing being drawn (``7/calls/1600123/2026-03-01``),
so any store can regenerate exactly the calls another store saw, one day at a time, without
holding the span in memory. Nothing here touches a server.

Days are on the policy's calendar (Asia/Singapore); instants are aware UTC, so a call at 07:00
in Singapore lands on the previous UTC day. Tenant ids include a pair where one is a prefix
of the other (``{base}12`` and ``{base}123``), agents ``a1`` and ``a10`` share a prefix, and a
few customer numbers call several tenants, so that every purge's exactness is exercised.
"""

from __future__ import annotations

import base64
import hashlib
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Iterator

from include.retention.policy import CosTarget, Policy, load_policy
from include.retention.timeutil import UTC, add_months

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
NOTES = (
    "Customer asked about delivery status.", "Billing question resolved.", "Follow-up scheduled.",
    "Escalated to second line.", "Product information provided.", "Complaint logged.",
)


def named_rng(config: SeedConfig, *parts: object) -> random.Random:
    """A generator for one named draw: deterministic across runs and processes."""
    return random.Random("/".join([str(config.seed), *map(str, parts)]))


def span(config: SeedConfig) -> tuple[date, date]:
    """Local days of activity: ``[first, end)`` with ``end == as_of``."""
    return add_months(config.as_of, -config.months), config.as_of


def tenant_ids(config: SeedConfig) -> tuple[str, ...]:
    """The tenants' ids: explicit, or ``{base}12``, ``{base}123`` and random ones after them."""
    if config.tenant_ids:
        return tuple(config.tenant_ids)
    ids = [f"{config.tenant_base}12", f"{config.tenant_base}123"][: config.tenants]
    rng = named_rng(config, "tenant-ids")
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
    shared_rng = named_rng(config, "shared-customers")
    shared = tuple(_phone(shared_rng, taken) for _ in range(3))  # people who call every tenant
    terminated_from = len(ids) - min(config.terminated_tenants, max(len(ids) - 1, 0))
    tenants = []
    for index, tenant_id in enumerate(ids):
        rng = named_rng(config, "tenant", tenant_id)
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
    rng = named_rng(config, "calls", tenant.tenant_id, day.isoformat())
    tz = policy.timezone
    recordings = recordings_target(policy)
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


def recordings_target(policy: Policy) -> CosTarget:
    """The COS target whose keys a MySQL column holds: the calls' recordings."""
    for target in policy.targets:
        if isinstance(target, CosTarget) and target.subject_keys_from is not None:
            return target
    raise LookupError("the policy has no COS target whose keys come from a MySQL column (recordings)")


def data_fernet(config: SeedConfig) -> Any:
    """The demo key the ``*_enc`` columns are encrypted with (Fernet, derived by SHA-256)."""
    from cryptography.fernet import Fernet

    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(config.data_key.encode()).digest()))


def decrypt(config: SeedConfig, token: bytes | str) -> str:
    """Read back an ``*_enc`` column written by the seeder (demo key)."""
    raw = token.encode() if isinstance(token, str) else bytes(token)
    return data_fernet(config).decrypt(raw).decode()
