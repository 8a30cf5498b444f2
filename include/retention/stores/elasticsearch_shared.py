"""Indices shared by tenants (shared dated indices, a data stream's backing indices): what a
selection means in them, as exact queries and plans. Pure, no I/O.

Tenants share these indices, so every selection is a query: a bool filter of exact ``term``
queries on the tenant (and subject) field and, for expiry, a ``range`` on the time field
below the cut-off. A held tenant, a tenant on extended retention and a held subject are
``must_not`` clauses. An index goes whole only when it lies wholly before the cut-off and
every document in it matches the expiry query (so no kept tenant or subject is left in it);
the rest are thinned by ``_delete_by_query``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from include.retention.policy import ElasticsearchTarget
from include.retention.results import UnsupportedSelection
from include.retention.selections import ExpiredSelection, Selection, SubjectSelection, TenantSelection
from include.retention.timeutil import UTC


@dataclass(frozen=True)
class SharedIndex:
    """One concrete index of a shared layout.

    :param start: inclusive start of what it holds: its month or day (shared indices) or its
        oldest document (backing indices); None for an empty backing index.
    :param end: exclusive end: the next month or day, or just after its newest document.
    :param write_index: the data stream's current write index (never deleted before a rollover).
    """

    name: str
    docs: int
    start: datetime | None
    end: datetime | None
    status: str = "open"
    write_index: bool = False

    @property
    def closed(self) -> bool:
        return self.status == "close"


@dataclass(frozen=True)
class SharedPlan:
    """What a purge in a shared layout does: indices to drop whole, and per index the documents
    to delete by query (``matched``, counted after a refresh)."""

    query: dict[str, Any]
    drop: tuple[SharedIndex, ...] = ()
    thin: tuple[SharedIndex, ...] = ()
    matched: Mapping[str, int] | None = None
    total: int | None = None  # counted over all indices at once (terminations, deletions)

    @property
    def planned(self) -> int:
        if self.total is not None:
            return self.total
        return sum((self.matched or {}).get(i.name, 0) for i in self.drop + self.thin)


def id_format(target: ElasticsearchTarget, kind: str) -> Any:
    """The id format of ``kind`` (tenant or a subject type), or None."""
    formats = target.index.fields if target.index is not None else target.layout.formats
    return formats.get(kind)


def _term(field: str, value: str) -> dict[str, Any]:
    return {"term": {field: value}}


def held_subject_clauses(target: ElasticsearchTarget, held: Iterable[tuple[str, str, str]]) -> tuple[list[dict[str, Any]], set[str]]:
    """``must_not`` clauses for held (tenant, type, id): one bool per subject, scoped to its tenant;
    and the tenants kept whole because a held subject's type has no field in this target."""
    clauses: list[dict[str, Any]] = []
    whole: set[str] = set()
    for tenant, kind, subject_id in sorted(held):
        field, fmt = target.subject_fields.get(kind), id_format(target, kind)
        if field is None or fmt is None:
            whole.add(tenant)
            continue
        clauses.append({"bool": {"filter": [_term(target.tenant_field, tenant), _term(field, fmt.validate(subject_id, echo=False))]}})
    return clauses, whole


def selection_query(target: ElasticsearchTarget, selection: Selection) -> dict[str, Any]:
    """The exact query of a selection's documents in a shared layout."""
    tenant_fmt = id_format(target, "tenant")
    if isinstance(selection, TenantSelection):
        return {"bool": {"filter": [_term(target.tenant_field, tenant_fmt.validate(selection.tenant, echo=True))]}}
    if isinstance(selection, SubjectSelection):
        field = target.subject_fields.get(selection.subject_type)
        fmt = id_format(target, selection.subject_type)
        if field is None or fmt is None:
            raise UnsupportedSelection(f"{target.qualified_name} has no field for subject type {selection.subject_type!r}")
        query: dict[str, Any] = {"bool": {"filter": [
            _term(target.tenant_field, tenant_fmt.validate(selection.tenant, echo=True)),
            _term(field, fmt.validate(selection.subject_id, echo=False)),
        ]}}
        held = [(t, k, i) for t, k, i in selection.exclude_subjects if t == selection.tenant and k in target.subject_fields]
        clauses, _ = held_subject_clauses(target, held)
        if clauses:
            query["bool"]["must_not"] = clauses  # a document that also names a held subject stays
        return query
    assert isinstance(selection, ExpiredSelection)
    filters: list[dict[str, Any]] = [{"range": {target.time_field: {"lt": selection.before.isoformat()}}}]
    if selection.tenant is not None:
        filters.insert(0, _term(target.tenant_field, tenant_fmt.validate(selection.tenant, echo=True)))
    clauses, whole = held_subject_clauses(target, selection.exclude_subjects)
    kept = sorted(set(selection.exclude_tenants) | whole)
    must_not = ([{"terms": {target.tenant_field: kept}}] if kept else []) + clauses
    query = {"bool": {"filter": filters}}
    if must_not:
        query["bool"]["must_not"] = must_not
    return query


def query_fields(target: ElasticsearchTarget, selection: Selection) -> tuple[str, ...]:
    """Fields a selection's query matches on exactly: they must be mapped as keyword."""
    fields = {target.tenant_field}
    if isinstance(selection, SubjectSelection):
        fields.add(target.subject_fields.get(selection.subject_type, target.tenant_field))
    if not isinstance(selection, TenantSelection):
        fields |= {target.subject_fields[k] for _, k, _ in selection.exclude_subjects if k in target.subject_fields}
    return tuple(sorted(fields))


def in_scope(index: SharedIndex, selection: Selection) -> bool:
    """Whether an index can hold documents of the selection (expiry: it starts before the cut-off)."""
    if isinstance(selection, ExpiredSelection):
        return index.start is not None and index.start < selection.before
    return True


def droppable(index: SharedIndex, selection: Selection, matched: int) -> bool:
    """An index goes whole only for an all-tenant expiry, when it lies wholly before the cut-off
    and every document in it is one the selection deletes (none of a kept tenant or subject)."""
    return (
        isinstance(selection, ExpiredSelection)
        and selection.tenant is None
        and index.end is not None
        and index.end <= selection.before
        and matched == index.docs
    )


def document_time(value: Any) -> datetime | None:
    """A document's time field value (ISO string, epoch millis, or a list of them) as an aware instant."""
    if isinstance(value, list):
        times = [t for t in (document_time(v) for v in value) if t is not None]
        return max(times) if times else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def just_after(instant: datetime) -> datetime:
    """The exclusive end after a newest document (Elasticsearch dates are in milliseconds)."""
    return instant + timedelta(milliseconds=1)
