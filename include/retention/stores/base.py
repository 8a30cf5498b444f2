"""The one small interface every store module implements, and the capabilities some add.

A *selection* says what to delete (policy); a *store* says how (mechanism). Every store
offers the same verbs: list its dated units, count a selection, purge it in bounded
batches (with a dry-run twin), and verify it is gone by an independent re-count.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any, Generic, Iterable, Iterator, Protocol, Sequence, TypeVar, runtime_checkable

from include.retention.policy import CosTarget, MySqlTarget, Target
from include.retention.results import PurgeResult
from include.retention.selections import DatedUnit, Selection

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 5_000


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

    def count_each(self, target: T, selections: Sequence[Selection]) -> list[int]:
        """``count`` of each selection, in order (a record two of them match counts in both).

        One query per selection here; a store that lists a target once for all of them
        (:class:`OnePassPurge`) overrides it.
        """
        return [self.count(target, selection) for selection in selections]

    def verify_each(self, target: T, selections: Sequence[Selection]) -> list[int]:
        """``verify`` of each selection, in order; 0 for each means all of them are gone."""
        return [self.verify(target, selection) for selection in selections]


# --------------------------------------------------------------------------- capabilities


@runtime_checkable
class ColumnSource(Protocol):
    """A store that can read one column of a selection's rows (MySQL: the recording keys of a
    subject's calls, read before the rows themselves go)."""

    def fetch_column(
        self, target: MySqlTarget, selection: Selection, column: str, batch: int | None = None
    ) -> Iterator[Any]: ...


@runtime_checkable
class ExplicitKeys(Protocol):
    """A store that can count and purge explicit object keys of one tenant (COS: a subject's
    recordings, whose keys come from a :class:`ColumnSource`)."""

    def count_keys(self, target: CosTarget, tenant: str, keys: Iterable[str]) -> int: ...

    def purge_keys(
        self, target: CosTarget, tenant: str, keys: Iterable[str], *, dry_run: bool = False
    ) -> PurgeResult: ...


@runtime_checkable
class OnePassPurge(Protocol):
    """A store that purges several selections of one target in one listing of it (Redis: one
    SCAN for every terminated tenant and deleted subject of a key layout), each selection's
    counts exact.

    A record two of the selections match goes with the first of them, as purging them one
    after another would have it (the second finds it gone): ``count_claimed`` counts the same
    way, so it says what ``purge_each`` deletes for each. A dry run counts each selection on
    its own (``count_each``). On failure part-way ``purge_each`` raises
    :class:`~include.retention.results.PartialPurgesError` with what each selection lost.
    """

    def count_claimed(self, target: Any, selections: Sequence[Selection]) -> list[int]: ...

    def purge_each(self, target: Any, selections: Sequence[Selection], *,
                   dry_run: bool = False) -> list[PurgeResult]: ...


@runtime_checkable
class TenantCounts(Protocol):
    """A store that can count a selection per tenant in one query (MySQL: shared tables,
    whose all-tenant selections the circuit breaker also measures tenant by tenant)."""

    def count_by_tenant(self, target: MySqlTarget, selection: Selection) -> dict[str, int]: ...


def as_column_source(store: object) -> ColumnSource:
    """``store`` as a :class:`ColumnSource`; a clear error when it is not one."""
    if not isinstance(store, ColumnSource):
        raise TypeError(f"{type(store).__name__} cannot read a column of its rows")
    return store


def as_explicit_keys(store: object) -> ExplicitKeys:
    """``store`` as an :class:`ExplicitKeys` store; a clear error when it is not one."""
    if not isinstance(store, ExplicitKeys):
        raise TypeError(f"{type(store).__name__} cannot purge explicit object keys")
    return store
