"""The one small interface every store module implements, and the values it trades in.

A *selection* says what to delete (policy); a *store* says how (mechanism). Every store
offers the same verbs: list its dated units, count a selection, purge it in bounded
batches (with a dry-run twin), and verify it is gone by an independent re-count.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Generic, Literal, TypeVar, Union

from include.retention.policy import Target

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 5_000


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


# --------------------------------------------------------------------------- results


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


@dataclass(frozen=True)
class PurgeResult:
    """What one purge of one selection in one target did. Counts only, no personal data."""

    target: str
    store: str
    method: str
    planned: int
    deleted: int
    remaining: int | None = None  # from verify(); None when not yet verified
    batches: int = 0
    dry_run: bool = False
    seconds: float = 0.0
    details: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "target": self.target,
            "store": self.store,
            "method": self.method,
            "planned": self.planned,
            "deleted": self.deleted,
            "remaining": self.remaining,
            "batches": self.batches,
            "dry_run": self.dry_run,
            "seconds": round(self.seconds, 3),
            **({"details": self.details} if self.details else {}),
        }


class PartialPurgeError(RuntimeError):
    """A purge failed part-way. What was deleted before the failure stays deleted;
    a rerun of the same selection finishes the job (every purge is idempotent)."""

    def __init__(self, target: str, deleted: int, cause: BaseException | str) -> None:
        self.target, self.deleted, self.cause = target, deleted, cause
        super().__init__(f"purge of {target} failed after deleting {deleted}: {cause}")


class UnsupportedSelection(ValueError):
    """The store cannot address this selection in this target (e.g. no subject column)."""


# --------------------------------------------------------------------------- the interface

T = TypeVar("T", bound=Target)


class RetentionStore(ABC, Generic[T]):
    """How one store finds, counts, purges and verifies data. No I/O in ``__init__``.

    Implementations obtain their client lazily from the provider hook named by the
    connection id, so constructing a store at DAG parse time costs nothing.
    """

    store: str = ""

    def __init__(self, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if not 1 <= batch_size <= 100_000:
            raise ValueError(f"batch_size must be between 1 and 100000, got {batch_size}")
        self.batch_size = batch_size

    @abstractmethod
    def dated_units(self, target: T) -> list[DatedUnit]:
        """The dated units that exist now (partitions, day prefixes, dated indices)."""

    @abstractmethod
    def count(self, target: T, selection: Selection) -> int:
        """How many records (rows, keys, objects, documents) the selection matches now."""

    @abstractmethod
    def purge(self, target: T, selection: Selection, *, dry_run: bool = False) -> PurgeResult:
        """Delete the selection in bounded batches; with ``dry_run`` count and delete nothing.

        Idempotent: a second call deletes 0. Raises PartialPurgeError on failure part-way.
        """

    def verify(self, target: T, selection: Selection) -> int:
        """Independent re-count after a purge; 0 means the selection is gone."""
        return self.count(target, selection)
