"""The SQL of a MySQL selection: identifiers, table metadata, the WHERE clause and the keyset walk.

Pure: no connection, no I/O. :class:`~include.retention.stores.mysql.MySqlStore` reads
``information_schema`` and runs what these functions write.

- Identifiers (table, columns) come only from the validated policy target and are checked
  again here; index and partition names come from ``information_schema`` and must be real.
  Every value (tenant, subject id, cut-off, keys) is a bound parameter.
- A keyset walk reads the next batch of primary keys with ``SELECT ... WHERE <selection> AND
  (<walk columns>) > (<last seen>) ORDER BY <walk columns> LIMIT n`` on an index whose order
  matches the walk (no filesort, no OFFSET).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Sequence

from include.retention.policy import MySqlTarget
from include.retention.results import UnsupportedSelection
from include.retention.selections import ExpiredSelection, Selection, SubjectSelection, TenantSelection
from include.retention.timeutil import UTC, to_naive_utc

#: Start of the first partition and end of ``pmax``. Not datetime.min/max, so that
#: ``astimezone()`` into any zone still works for a caller.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)
TO_DAYS_OFFSET = 365  # MySQL TO_DAYS(d) == d.toordinal() + 365

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def quote_identifier(name: str) -> str:
    """Backquote a plain identifier, refusing anything that is not one."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r:.80}")
    return f"`{name}`"


def to_days_date(value: int) -> date:
    """The date whose MySQL ``TO_DAYS()`` is ``value``."""
    return date.fromordinal(value - TO_DAYS_OFFSET)


def check_target(target: MySqlTarget) -> MySqlTarget:
    """``target`` itself, once every identifier it names is a plain one."""
    for column in (target.table, target.key_column, target.tenant_column, target.time_column,
                   *target.subject_columns.values()):
        quote_identifier(column)
    return target


# --------------------------------------------------------------------------- table metadata


@dataclass(frozen=True)
class Partition:
    """One RANGE partition: rows with ``TO_DAYS(time) < bound`` (``bound`` None: MAXVALUE)."""

    name: str
    start: datetime
    end: datetime
    bound: int | None

    @property
    def is_maxvalue(self) -> bool:
        return self.bound is None


@dataclass(frozen=True)
class TableInfo:
    """What the purge needs to know about a table, read from ``information_schema``."""

    table: str
    primary_key: tuple[str, ...]
    indexes: dict[str, tuple[str, ...]] = field(hash=False)
    not_null: frozenset[str] = frozenset()
    temporal: frozenset[str] = frozenset()
    partitions: tuple[Partition, ...] = ()
    partition_expression: str | None = None


def table_indexes(target: MySqlTarget, rows: Sequence[tuple[Any, ...]]) -> dict[str, tuple[str, ...]]:
    """The indexes of the target's table, from ``(INDEX_NAME, COLUMN_NAME)`` rows of
    ``information_schema.STATISTICS`` in index and column order; the key column must lead
    the primary key. Index names that are not plain identifiers are left out."""
    if not rows:
        raise ValueError(f"table {target.table} of {target.qualified_name} does not exist or has no index")
    indexes: dict[str, list[str]] = {}
    for index, column in rows:
        indexes.setdefault(str(index), []).append(str(column))
    primary = tuple(indexes.get("PRIMARY", ()))
    if not primary or primary[0] != target.key_column:
        raise UnsupportedSelection(
            f"{target.qualified_name}: key_column {target.key_column} must be the first column of the "
            f"primary key of {target.table} (it is {', '.join(primary) or 'missing'})"
        )
    return {k: tuple(v) for k, v in indexes.items() if _IDENTIFIER.match(k) or k == "PRIMARY"}


def build_table_info(
    target: MySqlTarget,
    indexes: dict[str, tuple[str, ...]],
    column_rows: Sequence[tuple[Any, ...]],
    partitions: tuple[Partition, ...],
    partition_expression: str | None,
) -> TableInfo:
    """The :class:`TableInfo` of the target's table.

    :param indexes: from :func:`table_indexes`.
    :param column_rows: ``(COLUMN_NAME, IS_NULLABLE, DATA_TYPE)`` rows of ``information_schema.COLUMNS``.
    """
    return TableInfo(
        table=target.table,
        primary_key=indexes["PRIMARY"],
        indexes=indexes,
        not_null=frozenset(str(name) for name, nullable, _type in column_rows if nullable == "NO"),
        temporal=frozenset(
            str(name) for name, _nullable, data_type in column_rows
            if str(data_type).lower() in ("datetime", "timestamp", "date", "time")
        ),
        partitions=partitions,
        partition_expression=partition_expression,
    )


def is_range_to_days(target: MySqlTarget, method: str, expression: str) -> bool:
    """Whether a table is partitioned ``RANGE (TO_DAYS(<time column>))``: the only partitioning
    whose bounds are read (anything else is purged row by row, never dropped on a guess)."""
    normalised = re.sub(r"[\s`]", "", expression).lower()
    return method == "RANGE" and normalised == f"to_days({target.time_column.lower()})"


def range_partitions(rows: Sequence[tuple[Any, ...]]) -> tuple[Partition, ...]:
    """The partitions of a ``RANGE (TO_DAYS(time))`` table from its ``information_schema.PARTITIONS``
    rows ``(PARTITION_NAME, PARTITION_METHOD, PARTITION_EXPRESSION, PARTITION_DESCRIPTION)``, in order."""
    out: list[Partition] = []
    seen: set[str] = set()
    start = EARLIEST
    for name, _method, _expr, description in rows:
        name = str(name)
        if name in seen:  # one row per subpartition
            continue
        seen.add(name)
        if str(description).upper() == "MAXVALUE":
            out.append(Partition(name, start, LATEST, None))
            continue
        bound = int(str(description))
        day = to_days_date(bound)
        end = datetime(day.year, day.month, day.day, tzinfo=UTC)
        out.append(Partition(name, start, end, bound))
        start = end
    return tuple(out)


# --------------------------------------------------------------------------- selection -> WHERE


def subject_column(target: MySqlTarget, subject_type: str) -> str:
    """The target's column holding ids of ``subject_type``; UnsupportedSelection if it has none."""
    column = target.subject_columns.get(subject_type)
    if column is None:
        raise UnsupportedSelection(
            f"{target.qualified_name} has no column for subject type {subject_type!r}"
            f" (it has: {', '.join(target.subject_columns) or 'none'})"
        )
    return column


def held_subjects(target: MySqlTarget, selection: ExpiredSelection | SubjectSelection) -> list[tuple[str, str, str]]:
    """Excluded subjects this table can identify: (tenant, column, subject id)."""
    out = []
    for held_tenant, subject_type, subject_id in sorted(selection.exclude_subjects):
        column = target.subject_columns.get(subject_type)
        if column is not None:
            out.append((held_tenant, column, subject_id))
    return out


def _exclude_held(target: MySqlTarget, selection: ExpiredSelection | SubjectSelection,
                  clauses: list[str], params: list[Any]) -> None:
    """Append the clauses that keep every row naming a held subject."""
    tenant = quote_identifier(target.tenant_column)
    for held_tenant, column, subject_id in held_subjects(target, selection):
        # <=> so that a NULL subject column still reads as "not this subject".
        clauses.append(f"NOT ({tenant} <=> %s AND {quote_identifier(column)} <=> %s)")
        params.extend([held_tenant, subject_id])


def predicate(target: MySqlTarget, selection: Selection) -> tuple[str, list[Any]]:
    """The WHERE clause (and its bound values) of exactly the rows the selection names."""
    tenant = quote_identifier(target.tenant_column)
    if isinstance(selection, TenantSelection):
        return f"{tenant} = %s", [selection.tenant]
    if isinstance(selection, SubjectSelection):
        column = quote_identifier(subject_column(target, selection.subject_type))
        clauses, params = [f"{tenant} = %s AND {column} = %s"], [selection.tenant, selection.subject_id]
        _exclude_held(target, selection, clauses, params)
        return " AND ".join(clauses), params
    if not isinstance(selection, ExpiredSelection):
        raise UnsupportedSelection(f"unknown selection {type(selection).__name__}")
    clauses = [f"{quote_identifier(target.time_column)} < %s"]
    params: list[Any] = [to_naive_utc(selection.before)]
    if selection.tenant is not None:
        clauses.append(f"{tenant} = %s")
        params.append(selection.tenant)
    if selection.exclude_tenants:
        excluded = sorted(selection.exclude_tenants)
        clauses.append(f"({tenant} IS NULL OR {tenant} NOT IN ({', '.join(['%s'] * len(excluded))}))")
        params.extend(excluded)
    _exclude_held(target, selection, clauses, params)
    return " AND ".join(clauses), params


# --------------------------------------------------------------------------- the keyset walk


@dataclass(frozen=True)
class WalkPlan:
    """How to walk a selection in key batches.

    :param index: the index to read (``PRIMARY`` or a secondary index).
    :param order: the walk's total order: index columns after the pinned ones, then the
        rest of the primary key; the keyset compares these.
    :param sort: the ORDER BY. On a partitioned table the server cannot sort by the primary
        key columns a secondary index carries implicitly without a filesort, so it sorts by
        the explicit columns only; ties then come in primary-key order (InnoDB keeps index
        entries sorted by key and primary key, and equal times share a partition), which
        the walk checks on every batch.
    """

    index: str
    order: tuple[str, ...]
    sort: tuple[str, ...]

    @property
    def checks_ties(self) -> bool:
        return self.sort != self.order


class WalkOrderError(RuntimeError):
    """The server returned a batch out of the walk's order; stop rather than skip rows."""


def choose_walk(info: TableInfo, equal: Sequence[str], range_column: str | None) -> WalkPlan:
    """Pick the index whose order lets each batch start where the last ended, without a sort.

    :param equal: columns the selection pins to one value (tenant, subject column).
    :param range_column: the column of a ``< cut-off`` range (expired selections), or None.

    An index that starts with the equality columns followed by the range column walks
    exactly the selection; one that is exactly the equality columns walks the tenant's or
    subject's rows in key order. Walk columns must be NOT NULL, since a keyset comparison
    with NULL would end the walk early. Without a usable index the primary key is walked.
    """
    equal_set = set(equal)
    best: tuple[int, int, str] | None = None
    for name, columns in info.indexes.items():
        if name == "PRIMARY" or len(columns) < len(equal):
            continue
        if set(columns[: len(equal)]) != equal_set:
            continue
        rest = columns[len(equal) :]
        walk = tuple(rest) + tuple(c for c in info.primary_key if c not in columns)
        if any(c not in info.not_null for c in walk):
            continue
        if range_column is not None and rest[:1] == (range_column,):
            score = 3
        elif not rest:
            score = 2 if range_column is None else 1
        elif equal:
            score = 1
        else:
            continue  # an index on unrelated columns narrows nothing
        candidate = (score, -len(columns), name)
        if best is None or candidate > best:
            best = candidate
    if best is None:
        return WalkPlan("PRIMARY", info.primary_key, info.primary_key)
    name = best[2]
    columns = info.indexes[name]
    rest = tuple(columns[len(equal) :])
    order = rest + tuple(c for c in info.primary_key if c not in columns)
    sort = rest if info.partitions and rest else order
    return WalkPlan(name, order, sort)


def walk_plan(target: MySqlTarget, selection: Selection, info: TableInfo) -> WalkPlan:
    """The walk of a selection: pinned to its tenant (and subject), ranged by time when expired."""
    if isinstance(selection, TenantSelection):
        return choose_walk(info, [target.tenant_column], None)
    if isinstance(selection, SubjectSelection):
        column = subject_column(target, selection.subject_type)
        return choose_walk(info, [target.tenant_column, column], None)
    assert isinstance(selection, ExpiredSelection)
    equal = [target.tenant_column] if selection.tenant is not None else []
    return choose_walk(info, equal, target.time_column)


def keyset_after(order: Sequence[str], last: Sequence[Any]) -> tuple[str, list[Any]]:
    """``(c1, c2, ...) > (v1, v2, ...)`` written so that the range optimizer can use it."""
    terms: list[str] = []
    params: list[Any] = []
    for i, column in enumerate(order):
        parts = [f"{quote_identifier(c)} = %s" for c in order[:i]] + [f"{quote_identifier(column)} > %s"]
        terms.append("(" + " AND ".join(parts) + ")")
        params.extend(list(last[:i]) + [last[i]])
    return "(" + " OR ".join(terms) + ")", params


def _walk_select(
    target: MySqlTarget, selection: Selection, info: TableInfo, after: Sequence[Any] | None,
    extra_columns: Sequence[str] = (), *, descending: bool = False,
) -> tuple[str, list[Any], WalkPlan, tuple[str, ...]]:
    """The SELECT of the walk after ``after``, without its LIMIT: (sql, params, plan, columns)."""
    plan = walk_plan(target, selection, info)
    where, params = predicate(target, selection)
    if after is not None:
        keyset, keyset_params = keyset_after(plan.order, after)
        where = f"{where} AND {keyset}"
        params = params + keyset_params
    walked = tuple(dict.fromkeys([*plan.order, *info.primary_key]))
    # Walk columns travel as text: the driver parses a DATETIME in Python (about 9 us a
    # value, most of a batch's client time), and the server reads the text back exactly.
    # Extra columns (fetch_column) come after them, as the driver returns them.
    selected = [
        f"CAST({quote_identifier(c)} AS CHAR)" if c in info.temporal else quote_identifier(c) for c in walked
    ] + [quote_identifier(c) for c in extra_columns]
    columns = walked + tuple(f"extra:{c}" for c in extra_columns)
    index = "PRIMARY" if plan.index == "PRIMARY" else quote_identifier(plan.index)
    direction = " DESC" if descending else ""
    sql = (
        f"SELECT {', '.join(selected)} FROM {quote_identifier(target.table)}"
        f" FORCE INDEX ({index}) WHERE {where}"
        f" ORDER BY {', '.join(quote_identifier(c) + direction for c in plan.sort)}"
    )
    return sql, params, plan, columns


def walk_sql(
    target: MySqlTarget, selection: Selection, info: TableInfo, *, limit: int, after: Sequence[Any] | None,
    extra_columns: Sequence[str] = (),
) -> tuple[str, list[Any], WalkPlan, tuple[str, ...]]:
    """The SELECT of the next batch: (sql, params, plan, selected columns)."""
    sql, params, plan, columns = _walk_select(target, selection, info, after, extra_columns)
    return f"{sql} LIMIT %s", params + [limit], plan, columns


def bounds_sql(
    target: MySqlTarget, selection: Selection, info: TableInfo, *, limit: int, after: Sequence[Any] | None,
) -> tuple[str, list[Any], WalkPlan, tuple[str, ...]]:
    """Where the next batch starts and ends, in one statement of at most three rows (index-only
    when the walk's index holds every column the selection tests: time, tenant).

    The first column tells the rows apart: ``0`` is the ``limit``-th selected row after
    ``after`` in walk order (absent when fewer are left), ``1`` the last selected row and
    ``2`` the first one (both absent when none is left). Only for walks whose ORDER BY is
    their whole order (``not plan.checks_ties``): the rows between two walk positions are
    then exactly those the server returns between them. ``(sql, params, plan, columns)``;
    the columns are those of a row after its first.
    """
    forward, params, plan, columns = _walk_select(target, selection, info, after)
    if plan.checks_ties:
        raise ValueError(f"{target.qualified_name}: a walk that checks ties has no bounds query")
    backward, _, _, _ = _walk_select(target, selection, info, after, descending=True)
    nth = forward.replace("SELECT ", "SELECT 0, ", 1)
    last = backward.replace("SELECT ", "SELECT 1, ", 1)
    first = forward.replace("SELECT ", "SELECT 2, ", 1)
    sql = f"({nth} LIMIT %s, 1) UNION ALL ({last} LIMIT 1) UNION ALL ({first} LIMIT 1)"
    return sql, [*params, limit - 1, *params, *params], plan, columns


def keyset_upto(order: Sequence[str], last: Sequence[Any]) -> tuple[str, list[Any]]:
    """``(c1, c2, ...) <= (v1, v2, ...)``, written as :func:`keyset_after` is."""
    terms: list[str] = []
    params: list[Any] = []
    for i, column in enumerate(order):
        operator = "<=" if i == len(order) - 1 else "<"
        parts = [f"{quote_identifier(c)} = %s" for c in order[:i]] + [f"{quote_identifier(column)} {operator} %s"]
        terms.append("(" + " AND ".join(parts) + ")")
        params.extend(list(last[:i]) + [last[i]])
    return "(" + " OR ".join(terms) + ")", params


def chunk_delete_sql(
    target: MySqlTarget, selection: Selection, info: TableInfo, *, after: Sequence[Any] | None,
    upto: Sequence[Any], limit: int,
) -> tuple[str, list[Any]]:
    """The DELETE of one chunk: the selected rows after walk position ``after`` (None: from the
    start) up to and including ``upto``, at most ``limit`` of them, in walk order.

    The selection's predicate is repeated in full: a row that changed since the bounds were
    read, or that another selection keeps, is never deleted. ``ORDER BY`` the walk's whole
    order (unique) with ``LIMIT``: deterministic, so safe for statement-based replication.
    """
    plan = walk_plan(target, selection, info)
    if plan.checks_ties:
        raise ValueError(f"{target.qualified_name}: a walk that checks ties has no chunk DELETE")
    where, params = predicate(target, selection)
    clauses = [where]
    if after is not None:
        keyset, keyset_params = keyset_after(plan.order, after)
        clauses.append(keyset)
        params = params + keyset_params
    bound, bound_params = keyset_upto(plan.order, upto)
    clauses.append(bound)
    params = params + bound_params
    sql = (
        f"DELETE FROM {quote_identifier(target.table)} WHERE {' AND '.join(clauses)}"
        f" ORDER BY {', '.join(quote_identifier(c) for c in plan.order)} LIMIT %s"
    )
    return sql, params + [limit]


def check_order(target: MySqlTarget, rows: Sequence[tuple[Any, ...]], at: Sequence[int],
                after: Sequence[Any] | None) -> None:
    """Raise :class:`WalkOrderError` unless the walk columns (``at``) of ``rows`` rise strictly
    from ``after`` on."""
    previous = tuple(after) if after is not None else None
    for row in rows:
        current = tuple(row[i] for i in at)
        if previous is not None and not current > previous:
            raise WalkOrderError(
                f"{target.qualified_name}: the server returned rows out of key order; stopped so that"
                " no selected row is skipped"
            )
        previous = current
