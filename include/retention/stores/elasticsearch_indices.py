"""Which indices an Elasticsearch selection names, and the exact queries for the rest. Pure, no I/O.

The store lists the target's indices (``_cat/indices``); these functions turn that listing
into an :class:`IndexPlan`: the indices to drop, those of tenants with held subjects to thin
out by query instead, those refused because they were created after the cut-off their name
puts them before, and those kept whole because a held subject there cannot be told apart.
Subject queries are bool filters of exact ``term`` queries, on fields mapped as keyword.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, Iterable, Mapping

from include.retention.identifiers import Template
from include.retention.policy import ElasticsearchTarget
from include.retention.results import UnsupportedSelection
from include.retention.selections import ExpiredSelection, SubjectSelection
from include.retention.timeutil import UTC

log = logging.getLogger(__name__)

#: Field types on which a ``term`` query matches the exact id (no analysis).
EXACT_FIELD_TYPES = frozenset(
    {"keyword", "constant_keyword", "wildcard", "long", "integer", "short", "byte", "unsigned_long"}
)


@dataclass(frozen=True)
class IndexInfo:
    """One listed index whose name parses as the target's template."""

    name: str
    tenant: str
    start: datetime | None  # the unit's bounds on the policy calendar; None for undated templates
    end: datetime | None
    docs: int | None  # None when the index is closed (its documents cannot be counted)
    created: datetime | None
    status: str

    @property
    def closed(self) -> bool:
        return self.status == "close"


@dataclass(frozen=True)
class IndexPlan:
    """What a tenant or expiry purge will do: indices to drop, and indices to thin out by query."""

    drop: tuple[IndexInfo, ...]
    thin: tuple[IndexInfo, ...] = ()  # expired indices of tenants with held subjects
    thin_query: Mapping[str, dict[str, Any]] | None = None  # per tenant: what to delete in them
    refused: tuple[IndexInfo, ...] = ()
    kept_for_hold: tuple[IndexInfo, ...] = ()
    unrecognised: tuple[str, ...] = ()


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def field_type(mappings: Mapping[str, Any], path: str) -> str | None:
    """The mapped type of a dotted field path (through objects and multi-fields), or None."""
    props: Mapping[str, Any] = mappings.get("properties", {})
    parts = path.split(".")
    i = 0
    spec: Mapping[str, Any] | None = None
    while i < len(parts):
        # Dotted names may be mapped as one key ("a.b") or as nested objects (a -> b).
        for j in range(len(parts), i, -1):
            key = ".".join(parts[i:j])
            if key in props:
                spec, i = props[key], j
                break
        else:
            return None
        if i < len(parts):
            if "properties" in spec:
                props = spec["properties"]
            elif "fields" in spec:
                props = spec["fields"]
            else:
                return None
    if spec is None:
        return None
    return str(spec.get("type", "object"))


def index_mappings(target: ElasticsearchTarget) -> dict[str, Any]:
    """The mappings (for an index template) under which this store's exact term queries work:
    the tenant and subject fields as ``keyword``, the time field as ``date``."""
    properties: dict[str, Any] = {target.tenant_field: {"type": "keyword"}, target.time_field: {"type": "date"}}
    for field in target.subject_fields.values():
        properties[field] = {"type": "keyword"}
    return {"properties": properties}


# --------------------------------------------------------------------------- listed names


def index_template(target: ElasticsearchTarget) -> Template:
    """The target's index name template; UnsupportedSelection when it has none."""
    if target.index is None:
        raise UnsupportedSelection(f"{target.qualified_name} has no index template")
    return target.index


def index_bounds(
    template: Template, values: Mapping[str, object], tz: tzinfo
) -> tuple[datetime | None, datetime | None]:
    """[start, end) of the month (or day) a parsed index name stands for, on the calendar of ``tz``;
    (None, None) for an undated template."""
    placeholder = template.date_placeholder
    if placeholder is None:
        return None, None
    day = values[placeholder]
    assert isinstance(day, date)
    if placeholder == "month":
        first = day.replace(day=1)
        nxt = _next_month(first)
    else:
        first, nxt = day, day + timedelta(days=1)
    return (
        datetime(first.year, first.month, first.day, tzinfo=tz),
        datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz),
    )


def index_info(row: Mapping[str, Any], values: Mapping[str, object], template: Template, tz: tzinfo) -> IndexInfo:
    """One ``_cat/indices`` row (``index,docs.count,creation.date,health,status``) whose name
    parsed as ``values``."""
    start, end = index_bounds(template, values, tz)
    created_ms = row.get("creation.date")
    created = (
        datetime.fromtimestamp(int(created_ms) / 1000, tz=UTC)
        if created_ms not in (None, "")
        else None
    )
    docs = row.get("docs.count")
    return IndexInfo(
        name=str(row["index"]),
        tenant=str(values["tenant"]),
        start=start,
        end=end,
        docs=int(docs) if docs not in (None, "") else None,
        created=created,
        status=str(row.get("status") or "open"),
    )


# --------------------------------------------------------------------------- plans


def held_clauses(target: ElasticsearchTarget, subjects: Iterable[tuple[str, str]]) -> list[dict[str, Any]] | None:
    """Exact term queries for held (subject_type, subject_id) of one tenant, for a ``must_not``;
    None when one of them has no field here, so its documents cannot be told apart."""
    template = index_template(target)
    clauses = []
    for subject_type, subject_id in sorted(subjects):
        field = target.subject_fields.get(subject_type)
        fmt = template.fields.get(subject_type)
        if field is None or fmt is None:
            return None
        clauses.append({"term": {field: fmt.validate(subject_id, echo=False)}})
    return clauses


def expired_plan(
    target: ElasticsearchTarget, sel: ExpiredSelection, infos: list[IndexInfo], unrecognised: list[str], tz: tzinfo
) -> IndexPlan:
    """The plan of an expiry over the listed indices ``infos`` (the names that did not parse: ``unrecognised``).

    With ``sel.units`` exactly those units go, each checked against the template, the cut-off
    and the tenants in scope; without, every listed index wholly before the cut-off.
    """
    template = index_template(target)
    by_name = {i.name: i for i in infos}

    def in_scope(tenant: str) -> bool:
        return (sel.tenant is None or tenant == sel.tenant) and tenant not in sel.exclude_tenants

    candidates: list[IndexInfo] = []
    if sel.units:
        for name in sel.units:
            values = template.parse(name, whole=True)
            if values is None:
                raise ValueError(f"unit {name!r} is not an index of {target.qualified_name} ({template.text})")
            _, end = index_bounds(template, values, tz)
            tenant = str(values["tenant"])
            if end is None or end > sel.before:
                raise ValueError(f"unit {name!r} is not wholly before the cut-off {sel.before.isoformat()}")
            if not in_scope(tenant):
                raise ValueError(f"unit {name!r} belongs to tenant {tenant}, which this selection excludes")
            if name in by_name:  # a unit already gone is fine: purges are idempotent
                candidates.append(by_name[name])
    else:
        candidates = [i for i in infos if i.end is not None and i.end <= sel.before and in_scope(i.tenant)]

    # An index whose name says it is old but which was created after the cut-off may hold
    # current data written under a wrong name: never drop it on the strength of its name.
    refused = [i for i in candidates if i.created is not None and i.created >= sel.before]
    for info in refused:
        log.error(
            "Refusing to drop %s: its name dates it before %s but it was created %s",
            info.name,
            sel.before.isoformat(),
            info.created.isoformat() if info.created else "?",
        )
    candidates = [i for i in candidates if i not in refused]

    # Held subjects stay: their tenants' expired indices are thinned by query, not dropped.
    held: dict[str, list[tuple[str, str]]] = {}
    for tenant, subject_type, subject_id in sel.exclude_subjects:
        held.setdefault(tenant, []).append((subject_type, subject_id))
    thin_query: dict[str, dict[str, Any]] = {}
    kept: list[IndexInfo] = []
    for tenant, subjects in held.items():
        clauses = held_clauses(target, subjects)
        if clauses is None:
            # We cannot tell the held subject's documents apart here: keep the indices whole.
            kept.extend(i for i in candidates if i.tenant == tenant)
        else:
            thin_query[tenant] = {
                "bool": {"filter": [{"term": {target.tenant_field: tenant}}], "must_not": clauses}
            }
    kept_names = {i.name for i in kept}
    thin = [i for i in candidates if i.tenant in thin_query and i.name not in kept_names]
    drop = [i for i in candidates if i.tenant not in thin_query and i.name not in kept_names]
    if kept:
        log.warning(
            "Keeping %d expired index(es) whole: a held subject there has no field in %s",
            len(kept),
            target.qualified_name,
        )
    return IndexPlan(
        drop=tuple(drop),
        thin=tuple(thin),
        thin_query=thin_query,
        refused=tuple(refused),
        kept_for_hold=tuple(kept),
        unrecognised=tuple(unrecognised),
    )


def thin_fields(target: ElasticsearchTarget, plan: IndexPlan) -> tuple[str, ...]:
    """The fields a plan's thinning queries match on (tenant and held subjects), sorted."""
    fields = {target.tenant_field} | {
        str(next(iter(clause["term"])))
        for query in (plan.thin_query or {}).values()
        for clause in query["bool"]["must_not"]
    }
    return tuple(sorted(fields))


# --------------------------------------------------------------------------- subjects


def subject_field(target: ElasticsearchTarget, sel: SubjectSelection) -> tuple[str, str]:
    """The field holding the subject's ids, and the subject id checked against its format."""
    template = index_template(target)
    field = target.subject_fields.get(sel.subject_type)
    if field is None:
        raise UnsupportedSelection(f"{target.qualified_name} has no field for subject type {sel.subject_type!r}")
    fmt = template.fields.get(sel.subject_type)
    if fmt is None:
        raise UnsupportedSelection(f"unknown subject type {sel.subject_type!r}")
    return field, fmt.validate(sel.subject_id, echo=False)


def subject_query(
    target: ElasticsearchTarget, sel: SubjectSelection, field: str, subject_id: str
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The exact query of one subject's documents (sparing any that also name a held subject),
    and the fields it matches on, which must be mapped for exact matches."""
    query: dict[str, Any] = {
        "bool": {"filter": [{"term": {target.tenant_field: sel.tenant}}, {"term": {field: subject_id}}]}
    }
    # As in MySQL, a document names a held subject only through a subject field of the target.
    held = held_clauses(target, [
        (k, i) for t, k, i in sel.exclude_subjects if t == sel.tenant and k in target.subject_fields
    ])
    if held is None:
        raise UnsupportedSelection(f"{target.qualified_name}: a held subject's type has no id format in the policy")
    if held:
        query["bool"]["must_not"] = held  # a document that also names a held subject stays
    held_fields = [str(next(iter(clause["term"]))) for clause in held]
    return query, tuple(dict.fromkeys([target.tenant_field, field, *held_fields]))


def check_exact_fields(name: str, mappings: Mapping[str, Any], fields: Iterable[str]) -> None:
    """Refuse fields of index ``name`` a term query cannot match exactly (analyzed text, or
    unmapped but present)."""
    for field in fields:
        ftype = field_type(mappings, field)
        if ftype is None:
            if str(mappings.get("dynamic", "true")).lower() == "false":
                raise UnsupportedSelection(
                    f"index {name}: field {field} is not mapped and dynamic mapping is off, so documents "
                    "may hold it without it being searchable; map it as keyword"
                )
            continue  # never mapped: no document has it
        if ftype not in EXACT_FIELD_TYPES:
            raise UnsupportedSelection(
                f"index {name}: field {field} is mapped as {ftype}, on which a term query does not match "
                "exact ids; map it as keyword or point the policy at its .keyword sub-field"
            )
