"""Load and validate the retention policy (``policy.yaml``) into frozen dataclasses.

Every error names the file, the rule and the fix, because the person who reads it is the
operator who just edited the YAML.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from include.retention.identifiers import IdentifierError, IdentifierFormat, Template
from include.retention.policy_elasticsearch import ES_FIELDS, ElasticsearchLayout, elasticsearch_target_fields

DEFAULT_POLICY_PATH = Path(__file__).with_name("policy.yaml")
POLICY_PATH_ENV = "RETENTION_POLICY_PATH"

STORES = ("mysql", "redis", "cos", "elasticsearch")
REQUEST_TYPES = ("termination", "deletion")
SQL_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
TARGET_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
FIELD_NAME = re.compile(r"^[A-Za-z@_][A-Za-z0-9_.]{0,63}$")  # an Elasticsearch field: never a pattern
MAX_MONTHS = 120  # ten years: anything longer is a typo, not a retention period
MAX_DAYS = 3660


class PolicyError(ValueError):
    """The policy file is invalid. The message names the file, the rule and the fix."""

    def __init__(self, path: Path | str, rule: str, problem: str, fix: str) -> None:
        self.path, self.rule, self.problem, self.fix = str(path), rule, problem, fix
        super().__init__(f"{path}: {rule}: {problem}. Fix: {fix}")


@dataclass(frozen=True)
class Retention:
    """How long data may live: calendar months or days after its timestamp, or until termination.

    Data kept ``until_termination`` never expires with age; it goes when the tenant
    terminates or a deletion request names its subject.
    """

    months: int | None = None
    days: int | None = None
    until_termination: bool = False
    extendable: bool = False  # a tenant that bought extended storage may keep it longer

    @property
    def is_age_based(self) -> bool:
        return self.months is not None or self.days is not None

    def describe(self) -> str:
        if self.until_termination:
            return "until termination"
        if self.months is not None:
            base = f"{self.months} calendar months"
        else:
            base = f"{self.days} days"
        return base + (" (extendable per tenant)" if self.extendable else "")


@dataclass(frozen=True, eq=False)
class Target:
    """One place in one store that holds a category's data."""

    category: str
    name: str
    store: str
    description: str
    retention: Retention

    @property
    def qualified_name(self) -> str:
        return f"{self.category}.{self.name}"

    @property
    def subject_types(self) -> tuple[str, ...]:
        return ()

    @property
    def is_dated(self) -> bool:
        """Whether this target's data carries a date the planner can expire by age."""
        return False

    @property
    def holds_backups(self) -> bool:
        """Backups: whole dated units that name no subject; they expire by date, never per subject."""
        return False


@dataclass(frozen=True, eq=False)
class MySqlTarget(Target):
    table: str = ""
    key_column: str = "id"
    tenant_column: str = "tenant_id"
    time_column: str = ""
    subject_columns: Mapping[str, str] = field(default_factory=dict)

    @property
    def subject_types(self) -> tuple[str, ...]:
        return tuple(self.subject_columns)

    @property
    def is_dated(self) -> bool:
        return True


@dataclass(frozen=True, eq=False)
class RedisTarget(Target):
    key: Template | None = None

    @property
    def subject_types(self) -> tuple[str, ...]:
        assert self.key is not None
        return tuple(self.key.subject_types)


@dataclass(frozen=True, eq=False)
class SubjectKeysFrom:
    """Object keys of a subject are found in a MySQL target's column (recordings)."""

    target: str
    column: str


@dataclass(frozen=True, eq=False)
class CosTarget(Target):
    prefix: Template | None = None
    subject_keys_from: SubjectKeysFrom | None = None
    subject_types_via: tuple[str, ...] = ()

    @property
    def subject_types(self) -> tuple[str, ...]:
        assert self.prefix is not None
        return tuple(self.prefix.subject_types) + self.subject_types_via

    @property
    def is_dated(self) -> bool:
        return self.prefix is not None and self.prefix.date_placeholder is not None

    @property
    def holds_backups(self) -> bool:
        """Backups: dated, kept for days, naming no subject. They expire by date, never per subject."""
        return self.is_dated and self.retention.days is not None and not self.subject_types


@dataclass(frozen=True, eq=False)
class ElasticsearchTarget(Target):
    index: Template | None = None
    tenant_field: str = "tenant_id"
    time_field: str = "@timestamp"
    subject_fields: Mapping[str, str] = field(default_factory=dict)
    layout: ElasticsearchLayout = ElasticsearchLayout()  # per-tenant indices, shared indices or a data stream

    @property
    def subject_types(self) -> tuple[str, ...]:
        return tuple(self.subject_fields)

    @property
    def is_dated(self) -> bool:
        return self.layout.shared or (self.index is not None and self.index.date_placeholder is not None)


@dataclass(frozen=True, eq=False)
class Category:
    name: str
    description: str
    retention: Retention
    requests: frozenset[str]
    targets: tuple[Target, ...]

    def target(self, name: str) -> Target:
        for target in self.targets:
            if target.name == name:
                return target
        raise KeyError(f"category {self.name} has no target {name!r}")


@dataclass(frozen=True)
class TenantRegistry:
    """The contact center's table of tenants: a request or an override names a tenant that must be in it."""

    table: str = "tenants"
    column: str = "tenant_id"


@dataclass(frozen=True)
class RequestApproval:
    """Which request types wait for a second Airflow user's approval before their first purge, and how long."""

    required_for: tuple[str, ...] = ("termination",)
    timeout_minutes: int = 240
    approvers: tuple[str, ...] = ()  # Airflow user names that may answer; empty: any user with access

    def required(self, request_type: str) -> bool:
        return request_type in self.required_for


#: A request run ends after 6 hours (``dagrun_timeout``): an approval must come well before.
MAX_APPROVAL_MINUTES = 300

BREAKER_ACTIONS = ("fail", "ask")


@dataclass(frozen=True)
class CircuitBreaker:
    """What a daily run does when its circuit breaker trips: ``fail`` at once (nothing deleted;
    rerun with ``allow_large_purge``), or ``ask`` a person under "Required actions" and wait."""

    on_trip: str = "fail"
    approval_timeout_minutes: int = 24 * 60
    approvers: tuple[str, ...] = ()  # Airflow user names that may answer; empty: any user with access


#: A daily purge may run for 2 hours after its approval; a day's run is due before the next.
MAX_BREAKER_APPROVAL_MINUTES = 20 * 60 + 24 * 60


@dataclass(frozen=True, eq=False)
class Policy:
    path: Path
    version: int
    timezone_name: str
    request_window_days: int
    sla_warning_days: int
    tenant_format: IdentifierFormat
    subject_formats: Mapping[str, IdentifierFormat]
    categories: Mapping[str, Category]
    tenant_registry: TenantRegistry = TenantRegistry()
    request_approval: RequestApproval = RequestApproval()
    circuit_breaker: CircuitBreaker = CircuitBreaker()

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone_name)

    @property
    def targets(self) -> tuple[Target, ...]:
        return tuple(t for c in self.categories.values() for t in c.targets)

    def category(self, name: str) -> Category:
        try:
            return self.categories[name]
        except KeyError:
            known = ", ".join(self.categories)
            raise KeyError(f"unknown category {name!r:.40}; the policy has: {known}") from None

    def target(self, qualified_name: str) -> Target:
        category, _, name = qualified_name.partition(".")
        return self.category(category).target(name)

    def validate_tenant_id(self, value: object) -> str:
        return self.tenant_format.validate(value, echo=True)

    def validate_subject(self, subject_type: object, value: object) -> str:
        """Validate a subject id; the error never repeats the id, which may be personal data."""
        if subject_type not in self.subject_formats:
            known = ", ".join(self.subject_formats)
            raise IdentifierError(f"unknown subject type {subject_type!r:.40}; known: {known}")
        return self.subject_formats[str(subject_type)].validate(value, echo=False)


# --------------------------------------------------------------------------- loading


def policy_path() -> Path:
    return Path(os.environ.get(POLICY_PATH_ENV) or DEFAULT_POLICY_PATH)


def load_policy(path: Path | str | None = None) -> Policy:
    """Load and validate the policy at ``path`` (default: ``$RETENTION_POLICY_PATH`` or the packaged one)."""
    resolved = Path(path) if path is not None else policy_path()
    return _load_cached(resolved.resolve(), resolved.stat().st_mtime_ns if resolved.exists() else 0)


@functools.lru_cache(maxsize=8)
def _load_cached(path: Path, _mtime: int) -> Policy:
    if not path.exists():
        raise PolicyError(path, "file", "the policy file does not exist", f"create it or set {POLICY_PATH_ENV}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PolicyError(path, "file", f"not valid YAML ({exc})", "correct the YAML syntax") from exc
    return parse_policy(raw, path)


def parse_policy(raw: Any, path: Path | str = "<policy>") -> Policy:
    """Validate an already-parsed policy document."""
    p = _Parser(Path(str(path)))
    return p.policy(raw)


class _Parser:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, rule: str, problem: str, fix: str) -> PolicyError:
        return PolicyError(self.path, rule, problem, fix)

    def mapping(self, value: Any, rule: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(rule, f"expected a mapping, got {type(value).__name__}", "write it as key: value pairs")
        return value

    def only(self, value: dict[str, Any], rule: str, allowed: set[str]) -> None:
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(rule, f"unknown field(s) {', '.join(unknown)}", f"use only: {', '.join(sorted(allowed))}")

    def positive_int(self, value: Any, rule: str, what: str, maximum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(rule, f"{what} must be a positive whole number, got {value!r}", f"give {what} as 1 or more")
        if value > maximum:
            raise self.fail(rule, f"{what} of {value} is absurdly long", f"give at most {maximum}")
        return value

    def policy(self, raw: Any) -> Policy:
        doc = self.mapping(raw, "policy")
        self.only(
            doc,
            "policy",
            {"version", "timezone", "request_window_days", "sla_warning_days", "identifiers", "tenant_registry",
             "request_approval", "circuit_breaker", "categories"},
        )
        if doc.get("version") != 1:
            raise self.fail("version", f"unsupported version {doc.get('version')!r}", "set version: 1")
        tz_name = doc.get("timezone")
        try:
            ZoneInfo(str(tz_name))
        except (ZoneInfoNotFoundError, ValueError):
            raise self.fail("timezone", f"unknown time zone {tz_name!r}", "use an IANA name such as Asia/Singapore") from None
        window = self.positive_int(doc.get("request_window_days"), "request_window_days", "request_window_days", 366)
        warning = self.positive_int(doc.get("sla_warning_days", 7), "sla_warning_days", "sla_warning_days", 366)
        if warning >= window:
            raise self.fail("sla_warning_days", "the warning comes before the request is received", "make it smaller than request_window_days")
        tenant_format, subject_formats = self.identifiers(doc.get("identifiers"))
        registry = self.tenant_registry(doc.get("tenant_registry", {}))
        approval = self.request_approval(doc.get("request_approval", {}))
        breaker = self.circuit_breaker(doc.get("circuit_breaker", {}))
        categories_raw = self.mapping(doc.get("categories"), "categories")
        if not categories_raw:
            raise self.fail("categories", "no categories", "list at least one category")
        categories = {}
        for name, body in categories_raw.items():
            categories[name] = self.category(str(name), body, tenant_format, subject_formats)
        policy = Policy(
            path=self.path,
            version=1,
            timezone_name=str(tz_name),
            request_window_days=window,
            sla_warning_days=warning,
            tenant_format=tenant_format,
            subject_formats=MappingProxyType(subject_formats),
            categories=MappingProxyType(categories),
            tenant_registry=registry,
            request_approval=approval,
            circuit_breaker=breaker,
        )
        self.cross_check(policy)
        return policy

    def tenant_registry(self, raw: Any) -> TenantRegistry:
        doc = self.mapping(raw, "tenant_registry")
        self.only(doc, "tenant_registry", {"table", "column"})
        default = TenantRegistry()
        return TenantRegistry(
            table=self.sql_identifier(doc.get("table", default.table), "tenant_registry.table", "table"),
            column=self.sql_identifier(doc.get("column", default.column), "tenant_registry.column", "column"),
        )

    def request_approval(self, raw: Any) -> RequestApproval:
        doc = self.mapping(raw, "request_approval")
        self.only(doc, "request_approval", {"required_for", "timeout_minutes", "approvers"})
        default = RequestApproval()
        required = doc.get("required_for", list(default.required_for))
        if not isinstance(required, list) or any(r not in REQUEST_TYPES for r in required):
            raise self.fail("request_approval.required_for", f"unknown request type in {required!r:.80}",
                            f"use a list of {', '.join(REQUEST_TYPES)} (or [] for none)")
        timeout = self.positive_int(doc.get("timeout_minutes", default.timeout_minutes),
                                    "request_approval.timeout_minutes", "timeout_minutes", MAX_APPROVAL_MINUTES)
        approvers = self.user_names(doc.get("approvers", []), "request_approval.approvers")
        return RequestApproval(tuple(dict.fromkeys(required)), timeout, approvers)

    def user_names(self, value: Any, rule: str) -> tuple[str, ...]:
        """A list of Airflow user names (who may approve); empty: any user with access."""
        if not isinstance(value, list) or any(not isinstance(a, str) or not a.strip() for a in value):
            raise self.fail(rule, f"expected a list of Airflow user names, got {value!r:.80}",
                            "list user names, or leave it empty so that any user with access may approve")
        return tuple(a.strip() for a in value)

    def circuit_breaker(self, raw: Any) -> CircuitBreaker:
        doc = self.mapping(raw, "circuit_breaker")
        self.only(doc, "circuit_breaker", {"on_trip", "approval_timeout_minutes", "approvers"})
        default = CircuitBreaker()
        on_trip = doc.get("on_trip", default.on_trip)
        if on_trip not in BREAKER_ACTIONS:
            raise self.fail("circuit_breaker.on_trip", f"unknown action {on_trip!r:.80}",
                            "use fail (the run fails at once) or ask (it waits for a person's approval)")
        timeout = self.positive_int(doc.get("approval_timeout_minutes", default.approval_timeout_minutes),
                                    "circuit_breaker.approval_timeout_minutes", "approval_timeout_minutes",
                                    MAX_BREAKER_APPROVAL_MINUTES)
        approvers = self.user_names(doc.get("approvers", []), "circuit_breaker.approvers")
        return CircuitBreaker(str(on_trip), timeout, approvers)

    def identifiers(self, raw: Any) -> tuple[IdentifierFormat, dict[str, IdentifierFormat]]:
        doc = self.mapping(raw, "identifiers")
        self.only(doc, "identifiers", {"tenant", "subjects"})
        try:
            tenant = IdentifierFormat("tenant", str(doc.get("tenant")))
        except ValueError as exc:
            raise self.fail("identifiers.tenant", str(exc), "give an anchored regex of explicit characters, e.g. '^[1-9][0-9]{0,19}$'") from None
        subjects: dict[str, IdentifierFormat] = {}
        for kind, pattern in self.mapping(doc.get("subjects"), "identifiers.subjects").items():
            if not TARGET_NAME.fullmatch(str(kind)) or kind in ("tenant", "date", "month"):
                raise self.fail(f"identifiers.subjects.{kind}", "not a usable subject type name", "use lower-case letters and _")
            try:
                subjects[str(kind)] = IdentifierFormat(str(kind), str(pattern))
            except ValueError as exc:
                raise self.fail(f"identifiers.subjects.{kind}", str(exc), "give an anchored regex of explicit characters") from None
        return tenant, subjects

    def retention(self, raw: Any, rule: str) -> Retention:
        if raw is None:
            raise self.fail(rule, "no retention rule", "add retention: {months: N}, {days: N} or {until: termination}")
        doc = self.mapping(raw, rule)
        self.only(doc, rule, {"months", "days", "until", "extendable"})
        kinds = [k for k in ("months", "days", "until") if k in doc]
        if len(kinds) != 1:
            raise self.fail(rule, "a retention rule needs exactly one of months, days or until", "keep one of them")
        extendable = doc.get("extendable", False)
        if not isinstance(extendable, bool):
            raise self.fail(rule, "extendable must be true or false", "write extendable: true")
        if "until" in doc:
            if doc["until"] != "termination":
                raise self.fail(rule, f"unknown until value {doc['until']!r}", "write until: termination")
            if extendable:
                raise self.fail(rule, "data kept until termination cannot be extended", "remove extendable")
            return Retention(until_termination=True)
        if "months" in doc:
            return Retention(months=self.positive_int(doc["months"], rule, "months", MAX_MONTHS), extendable=extendable)
        return Retention(days=self.positive_int(doc["days"], rule, "days", MAX_DAYS), extendable=extendable)

    def category(
        self,
        name: str,
        raw: Any,
        tenant_format: IdentifierFormat,
        subject_formats: dict[str, IdentifierFormat],
    ) -> Category:
        rule = f"categories.{name}"
        if not TARGET_NAME.fullmatch(name):
            raise self.fail(rule, "not a usable category name", "use lower-case letters, digits and _")
        doc = self.mapping(raw, rule)
        self.only(doc, rule, {"description", "retention", "requests", "targets"})
        retention = self.retention(doc.get("retention"), f"{rule}.retention")
        requests = doc.get("requests", [])
        if not isinstance(requests, list) or any(r not in REQUEST_TYPES for r in requests):
            raise self.fail(f"{rule}.requests", f"unknown request type in {requests!r}", f"use a list of {', '.join(REQUEST_TYPES)}")
        targets_raw = doc.get("targets")
        if not isinstance(targets_raw, list) or not targets_raw:
            raise self.fail(f"{rule}.targets", "no targets", "list where this category's data lives")
        targets: list[Target] = []
        for index, body in enumerate(targets_raw):
            target = self.target(name, index, body, retention, tenant_format, subject_formats)
            if any(t.name == target.name for t in targets):
                raise self.fail(f"{rule}.targets[{index}]", f"duplicate target name {target.name!r}", "give each target its own name")
            targets.append(target)
        if "deletion" in requests and not any(t.subject_types for t in targets):
            raise self.fail(f"{rule}.requests", "deletion requests are allowed but no target names a subject", "add subject columns or remove deletion")
        return Category(
            name=name,
            description=str(doc.get("description", "")),
            retention=retention,
            requests=frozenset(requests),
            targets=tuple(targets),
        )

    def sql_identifier(self, value: Any, rule: str, what: str) -> str:
        if not isinstance(value, str) or not SQL_IDENTIFIER.fullmatch(value):  # match() lets "name\n" through
            raise self.fail(rule, f"{what} {value!r:.60} is not a plain SQL identifier", "use letters, digits and _ only, starting with a letter")
        return value

    def field_name(self, value: Any, rule: str, what: str) -> str:
        if not isinstance(value, str) or not FIELD_NAME.fullmatch(value):
            raise self.fail(rule, f"{what} {value!r:.60} is not a plain field name", "use letters, digits, _, . and @ only")
        return value

    def template(self, raw: Any, rule: str, fields: dict[str, IdentifierFormat], date_format: str | None) -> Template:
        try:
            return Template(str(raw), MappingProxyType(fields), date_format)
        except ValueError as exc:
            raise self.fail(rule, str(exc), "start with {tenant}, end each placeholder at a delimiter its ids cannot "
                            "contain, and keep the literal parts to letters, digits and . _ : / -") from None

    def target(
        self,
        category: str,
        index: int,
        raw: Any,
        category_retention: Retention,
        tenant_format: IdentifierFormat,
        subject_formats: dict[str, IdentifierFormat],
    ) -> Target:
        rule = f"categories.{category}.targets[{index}]"
        doc = self.mapping(raw, rule)
        name = doc.get("name")
        if not isinstance(name, str) or not TARGET_NAME.fullmatch(name):
            raise self.fail(rule, f"target name {name!r:.40} is missing or unusable", "give name: lower_case_with_underscores")
        rule = f"categories.{category}.targets.{name}"
        store = doc.get("store")
        if store not in STORES:
            raise self.fail(rule, f"unknown store {store!r:.40}", f"use one of {', '.join(STORES)}")
        retention = self.retention(doc["retention"], f"{rule}.retention") if "retention" in doc else category_retention
        common = {
            "category": category,
            "name": name,
            "store": store,
            "description": str(doc.get("description", "")),
            "retention": retention,
        }
        base_fields = {"name", "store", "description", "retention"}
        fields = {"tenant": tenant_format, **subject_formats}

        def subject_map(key: str, what: str) -> dict[str, str]:
            mapping = self.mapping(doc.get(key, {}), f"{rule}.{key}")
            for kind, column in mapping.items():
                if kind not in subject_formats:
                    raise self.fail(f"{rule}.{key}", f"unknown subject type {kind!r}", f"use one of {', '.join(subject_formats)}")
                if what == "column":
                    self.sql_identifier(column, f"{rule}.{key}.{kind}", "column")
                else:
                    self.field_name(column, f"{rule}.{key}.{kind}", "field")
            return mapping

        if store == "mysql":
            self.only(doc, rule, base_fields | {"table", "key_column", "tenant_column", "time_column", "subject_columns"})
            return MySqlTarget(
                **common,
                table=self.sql_identifier(doc.get("table"), f"{rule}.table", "table name"),
                key_column=self.sql_identifier(doc.get("key_column", "id"), f"{rule}.key_column", "key column"),
                tenant_column=self.sql_identifier(doc.get("tenant_column"), f"{rule}.tenant_column", "tenant column"),
                time_column=self.sql_identifier(doc.get("time_column"), f"{rule}.time_column", "time column"),
                subject_columns=MappingProxyType(subject_map("subject_columns", "column")),
            )
        if store == "redis":
            self.only(doc, rule, base_fields | {"key"})
            key = self.template(doc.get("key"), f"{rule}.key", fields, None)
            if key.date_placeholder:
                raise self.fail(f"{rule}.key", "Redis keys here carry no date", "remove the date placeholder")
            if retention.is_age_based:
                raise self.fail(f"{rule}.retention", "Redis keys carry no date to expire by", "keep them until termination")
            return RedisTarget(**common, key=key)
        if store == "cos":
            self.only(doc, rule, base_fields | {"prefix", "date_format", "subject_keys_from"})
            prefix = self.template(doc.get("prefix"), f"{rule}.prefix", fields, doc.get("date_format"))
            if not prefix.text.endswith("/"):
                raise self.fail(f"{rule}.prefix", "a prefix must end with '/'", "end the prefix with '/'")
            via = None
            via_types: tuple[str, ...] = ()
            if "subject_keys_from" in doc:
                via_doc = self.mapping(doc["subject_keys_from"], f"{rule}.subject_keys_from")
                self.only(via_doc, f"{rule}.subject_keys_from", {"target", "column"})
                via = SubjectKeysFrom(
                    target=str(via_doc.get("target")),
                    column=self.sql_identifier(via_doc.get("column"), f"{rule}.subject_keys_from.column", "column"),
                )
            if retention.is_age_based and not prefix.date_placeholder:
                raise self.fail(f"{rule}.retention", "age-based retention needs a {date} in the prefix", "add {date} or keep until termination")
            return CosTarget(**common, prefix=prefix, subject_keys_from=via, subject_types_via=via_types)
        self.only(doc, rule, base_fields | ES_FIELDS)
        es = elasticsearch_target_fields(self, doc, rule, fields, lambda: subject_map("subject_fields", "field"))
        return ElasticsearchTarget(**common, **es)

    def cross_check(self, policy: Policy) -> None:
        """Checks that span targets: references between them."""
        for target in policy.targets:
            if isinstance(target, CosTarget) and target.subject_keys_from:
                rule = f"categories.{target.category}.targets.{target.name}.subject_keys_from"
                ref = target.subject_keys_from.target
                try:
                    source = policy.category(target.category).target(ref)
                except KeyError:
                    raise self.fail(rule, f"no target {ref!r} in category {target.category}", "name a MySQL target of the same category") from None
                if not isinstance(source, MySqlTarget):
                    raise self.fail(rule, f"target {ref!r} is not a MySQL table", "name a MySQL target")
                object.__setattr__(target, "subject_types_via", tuple(source.subject_columns))
