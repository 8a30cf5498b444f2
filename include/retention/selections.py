"""What to delete, as values: the selections that planning produces and every store accepts.

A *selection* says what (policy); a store says how (mechanism). These values, the dated
units a store reports, and their JSON form for XCom are all that planning and the stores
share, so the planner never imports a store.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Mapping, Union

if TYPE_CHECKING:
    from include.retention.crypto import RetentionCrypto


# --------------------------------------------------------------------------- selections


@dataclass(frozen=True)
class TenantSelection:
    """Everything a tenant has in a target (termination)."""

    tenant: str
    kind: Literal["tenant"] = "tenant"


@dataclass(frozen=True)
class SubjectSelection:
    """One subject (an agent, a phone number) of one tenant (deletion request).

    ``subject_id`` is personal data: it reaches the store as a bound value and is never
    logged, audited or returned; ``describe()`` shows its keyed hash instead.

    :param exclude_subjects: (tenant, subject_type, subject_id) of other subjects on legal
        hold: a record that also names one of them is kept (a hold wins over an erasure).
    """

    tenant: str
    subject_type: str
    subject_id: str = field(repr=False)
    subject_hash: str = ""
    exclude_subjects: frozenset[tuple[str, str, str]] = field(default=frozenset(), repr=False)
    kind: Literal["subject"] = "subject"

    def without_holds(self) -> SubjectSelection:
        """Every record of the subject, held or not: what is withheld is the difference of two counts."""
        return replace(self, exclude_subjects=frozenset())


@dataclass(frozen=True)
class ExpiredSelection:
    """Records older than ``before``, for one tenant or for every tenant but the excluded.

    :param before: the cut-off instant (aware); a record timestamped exactly at it stays.
    :param tenant: only this tenant (a tenant with its own cut-off), or None for all.
    :param exclude_tenants: tenants kept out of an all-tenant selection (held, extended).
    :param exclude_subjects: (tenant, subject_type, subject_id) kept out (held subjects).
    :param units: names of whole dated units (partitions, day prefixes, indices) lying
        entirely before ``before``; stores that address data by unit delete exactly these.
    """

    before: datetime
    tenant: str | None = None
    exclude_tenants: frozenset[str] = frozenset()
    exclude_subjects: frozenset[tuple[str, str, str]] = field(default=frozenset(), repr=False)
    units: tuple[str, ...] = ()
    kind: Literal["expired"] = "expired"

    def __post_init__(self) -> None:
        if self.before.tzinfo is None:
            raise ValueError("ExpiredSelection.before must be timezone-aware")


Selection = Union[TenantSelection, SubjectSelection, ExpiredSelection]


def describe_selection(selection: Selection) -> dict[str, object]:
    """A JSON-safe description with no personal data (for logs, XCom and the audit ledger)."""
    if isinstance(selection, TenantSelection):
        return {"kind": "tenant", "tenant": selection.tenant}
    if isinstance(selection, SubjectSelection):
        if not selection.subject_hash:
            raise ValueError("a subject selection must carry its keyed hash before it is described")
        return {
            "kind": "subject",
            "tenant": selection.tenant,
            "subject_type": selection.subject_type,
            "subject_hash": selection.subject_hash,
            **({"excluded_subjects": len(selection.exclude_subjects)} if selection.exclude_subjects else {}),
        }
    return {
        "kind": "expired",
        "before": selection.before.isoformat(),
        "tenant": selection.tenant,
        "exclude_tenants": sorted(selection.exclude_tenants),
        "excluded_subjects": len(selection.exclude_subjects),
        "units": list(selection.units),
    }


# --------------------------------------------------------------------------- dated units


@dataclass(frozen=True)
class DatedUnit:
    """A unit of data a store can address by date: a partition, a day prefix, a monthly index.

    ``start`` is inclusive and ``end`` exclusive, both aware. ``tenant`` is None for units
    shared by all tenants (a MySQL partition).
    """

    name: str
    start: datetime
    end: datetime
    tenant: str | None = None



# --------------------------------------------------------------------------- the XCom codec


def selection_to_doc(selection: Selection, crypto: RetentionCrypto) -> dict[str, Any]:
    """JSON for XCom: subjects become keyed hashes, never raw ids."""
    if isinstance(selection, TenantSelection):
        return {"kind": "tenant", "tenant": selection.tenant}
    if isinstance(selection, SubjectSelection):
        return {
            "kind": "subject",
            "tenant": selection.tenant,
            "subject_type": selection.subject_type,
            "subject_hash": selection.subject_hash or crypto.subject_hash(selection.tenant, selection.subject_type, selection.subject_id),
            **({"exclude_subject_hashes": _held_hashes(selection, crypto)} if selection.exclude_subjects else {}),
        }
    return {
        "kind": "expired",
        "before": selection.before.isoformat(),
        "tenant": selection.tenant,
        "exclude_tenants": sorted(selection.exclude_tenants),
        "exclude_subject_hashes": _held_hashes(selection, crypto),
        "units": list(selection.units),
    }


def _held_hashes(selection: ExpiredSelection | SubjectSelection, crypto: RetentionCrypto) -> list[str]:
    return sorted(crypto.subject_hash(t, k, s) for t, k, s in selection.exclude_subjects)


def _held_subjects(doc: Mapping[str, Any], subjects: Mapping[str, tuple[str, str, str]]) -> frozenset[tuple[str, str, str]]:
    excluded = []
    for h in doc.get("exclude_subject_hashes", []):
        if h not in subjects:
            # A hold we cannot resolve must not be silently dropped: refuse instead.
            raise LookupError(f"held subject {h[:12]} cannot be resolved; refusing to purge around it")
        excluded.append(subjects[h])
    return frozenset(excluded)


def selection_from_doc(doc: Mapping[str, Any], subjects: Mapping[str, tuple[str, str, str]]) -> Selection:
    """Rebuild a selection; ``subjects`` maps a subject hash to (tenant, type, id) from the ledger."""
    kind = doc["kind"]
    if kind == "tenant":
        return TenantSelection(doc["tenant"])
    if kind == "subject":
        try:
            tenant, subject_type, subject_id = subjects[doc["subject_hash"]]
        except KeyError:
            raise LookupError(f"subject {doc['subject_hash'][:12]} is no longer in the ledger") from None
        return SubjectSelection(tenant, subject_type, subject_id, doc["subject_hash"], _held_subjects(doc, subjects))
    return ExpiredSelection(
        before=datetime.fromisoformat(doc["before"]),
        tenant=doc.get("tenant"),
        exclude_tenants=frozenset(doc.get("exclude_tenants", [])),
        exclude_subjects=_held_subjects(doc, subjects),
        units=tuple(doc.get("units", [])),
    )
