"""MySQL (MariaDB) store: drop whole expired partitions, delete the rest in keyset-chunked batches.

How a selection becomes SQL:

- Identifiers (table, columns) come only from the validated policy target and are checked
  again here; index and partition names come from ``information_schema`` and must be real.
  Every value (tenant, subject id, cut-off, keys) is a bound parameter.
- Expired data in a RANGE-partitioned table: each partition the planner listed in
  ``selection.units`` whose upper bound is at or before the cut-off is dropped with
  ``ALTER TABLE ... DROP PARTITION`` (rows counted first, for the audit), unless the
  selection is for one tenant or an excluded tenant or subject has rows in it.
- Everything else is deleted in chunks of at most ``batch_size`` rows, each its own short
  transaction (autocommit), along a walk of an index whose order matches the selection
  (no filesort; an OFFSET never reaches past one chunk). Per chunk, one statement reads
  the walk positions of the chunk's first and last row (``bounds_sql``: nothing but those
  comes back), and one ``DELETE ... WHERE <selection> AND <after the previous position>
  AND <up to this one> ORDER BY <walk> LIMIT n`` removes the rows between. The selection
  predicate is repeated in every DELETE, so a row outside the selection is never deleted,
  whatever changed between the two statements, and the count is the DELETEs' own. When a
  full chunk is consecutive integer keys, the following key windows (each no wider than a
  batch) are deleted without reading anything first, while every window is full; then the
  walk resumes. A partitioned table walked by a secondary index (whose ties the walk checks
  row by row) reads each batch's keys and deletes them by key range or list.

``DELETE ... WHERE <date range> ORDER BY id LIMIT n`` is never used: it sorts the whole range
on every chunk (field notes: 17k rows/s against 184k rows/s for keyset chunks). A chunk's
DELETE orders by the index it ranges over, within one chunk's bounds.

This module is the purge loop and the verbs; the SQL is written in ``mysql_sql`` (pure), and
the connection, statements and pacing live in ``mysql_connection``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterator, Literal, Sequence

from include.retention.policy import MySqlTarget
from include.retention.results import PartialPurgeError, PurgeResult, UnsupportedSelection
from include.retention.selections import DatedUnit, ExpiredSelection, Selection, SubjectSelection, TenantSelection
from include.retention.stores.base import DEFAULT_BATCH_SIZE
from include.retention.stores.mysql_connection import MySqlConnection, describe_db_error
from include.retention.stores.mysql_sql import (
    Partition,
    TableInfo,
    WalkOrderError,
    bounds_sql,
    build_table_info,
    check_order,
    chunk_delete_sql,
    check_target,
    held_subjects,
    is_range_to_days,
    predicate,
    quote_identifier,
    range_partitions,
    table_indexes,
    walk_plan,
    walk_sql,
)

log = logging.getLogger(__name__)

DEFAULT_MYSQL_CONN_ID = "retention_mysql"


class MySqlStore(MySqlConnection):
    """Purges rows of policy tables in MySQL/MariaDB through the ``retention_mysql`` connection.

    :param mysql_conn_id: Airflow connection of the database holding the tables.
    :param batch_size: most rows one DELETE statement removes.
    :param sleep_between_batches: seconds to pause after each batch (load shedding).
    :param replica_conn_id: a replica to watch; with ``max_replica_lag_seconds`` the purge
        pauses while the replica is further behind than that.
    :param max_replica_lag_seconds: highest acceptable ``Seconds_Behind_Master``.
    :param replica_wait_timeout_seconds: how long to wait for the replica to catch up
        before failing the purge (PartialPurgeError; a rerun continues).
    :param partition_row_counts: how the rows of a partition about to be dropped are
        counted for the result and the audit: ``exact`` (COUNT(*), about 0.2 s per million
        rows) or ``estimate`` (InnoDB's TABLE_ROWS statistic, instant but often 10-40% off;
        the result's details say which).

    The DAGs build their stores with these defaults. A deployment tunes them where the
    database is described, in the connection's extra: ``{"retention_tuning": {"batch_size":
    2000, "sleep_between_batches": 0.05, "replica_conn_id": "mysql_replica",
    "max_replica_lag_seconds": 5}}`` (any of :data:`TUNABLE`). Read when the store first
    connects, before anything is deleted; it overrides the constructor's values, and an
    unknown key or bad value fails the purge.
    """

    store = "mysql"

    def __init__(
        self,
        *,
        mysql_conn_id: str = DEFAULT_MYSQL_CONN_ID,
        batch_size: int = DEFAULT_BATCH_SIZE,
        sleep_between_batches: float = 0.0,
        replica_conn_id: str | None = None,
        max_replica_lag_seconds: float | None = None,
        replica_wait_timeout_seconds: float = 600.0,
        partition_row_counts: Literal["exact", "estimate"] = "exact",
    ) -> None:
        super().__init__(
            mysql_conn_id=mysql_conn_id, batch_size=batch_size, sleep_between_batches=sleep_between_batches,
            replica_conn_id=replica_conn_id, max_replica_lag_seconds=max_replica_lag_seconds,
            replica_wait_timeout_seconds=replica_wait_timeout_seconds, partition_row_counts=partition_row_counts,
        )
        self.range_deletes = True  # False: always delete by key list (benchmarks compare both)

    # ------------------------------------------------------------------ metadata

    def table_info(self, target: MySqlTarget) -> TableInfo:
        """Primary key, indexes, NOT NULL columns and RANGE partitions of the target's table."""
        check_target(target)
        indexes = table_indexes(target, self._query(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS"
            " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (self._schema(), target.table),
        ))
        columns = self._query(
            "SELECT COLUMN_NAME, IS_NULLABLE, DATA_TYPE FROM information_schema.COLUMNS"
            " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (self._schema(), target.table),
        )
        partitions, expression = self._partitions(target)
        return build_table_info(target, indexes, columns, partitions, expression)

    def _partitions(self, target: MySqlTarget) -> tuple[tuple[Partition, ...], str | None]:
        rows = self._query(
            "SELECT PARTITION_NAME, PARTITION_METHOD, PARTITION_EXPRESSION, PARTITION_DESCRIPTION"
            " FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s"
            " ORDER BY PARTITION_ORDINAL_POSITION, SUBPARTITION_ORDINAL_POSITION",
            (self._schema(), target.table),
        )
        if not rows or rows[0][0] is None:
            return (), None  # not partitioned
        method, expression = str(rows[0][1] or ""), str(rows[0][2] or "")
        if not is_range_to_days(target, method, expression):
            log.warning(
                "%s: partitioned by %s %s, not RANGE (TO_DAYS(%s)); its partitions are not dropped",
                target.qualified_name, method, expression, target.time_column,
            )
            return (), expression
        return range_partitions(rows), expression

    def dated_units(self, target: MySqlTarget) -> list[DatedUnit]:
        """One unit per RANGE partition (tenant None, UTC); an unpartitioned table has none."""
        partitions, _ = self._partitions(check_target(target))
        return [DatedUnit(name=p.name, start=p.start, end=p.end, tenant=None) for p in partitions]

    # ------------------------------------------------------------------ the walk

    def _walk(
        self, target: MySqlTarget, selection: Selection, info: TableInfo, limit: int,
        extra_columns: Sequence[str] = (),
    ) -> Iterator[tuple[list[tuple[Any, ...]], dict[str, int]]]:
        """Batches of selected rows in walk order, each starting after the last one's end.

        The caller may delete each batch before asking for the next.
        """
        after: Sequence[Any] | None = None
        while True:
            sql, params, plan, columns = walk_sql(
                target, selection, info, limit=limit, after=after, extra_columns=extra_columns
            )
            rows = self._query(sql, params)
            if not rows:
                return
            position = {c: i for i, c in enumerate(columns)}
            if plan.checks_ties:
                check_order(target, rows, [position[c] for c in plan.order], after)
            yield rows, position
            if len(rows) < limit:
                return
            after = [rows[-1][position[c]] for c in plan.order]

    # ------------------------------------------------------------------ verbs

    def count(self, target: MySqlTarget, selection: Selection) -> int:
        """Rows the selection matches now: one independent COUNT(*)."""
        check_target(target)
        where, params = predicate(target, selection)
        rows = self._query(f"SELECT COUNT(*) FROM {quote_identifier(target.table)} WHERE {where}", params)
        return int(rows[0][0])

    def count_by_tenant(self, target: MySqlTarget, selection: Selection) -> dict[str, int]:
        """Rows the selection matches now, per tenant: one grouped COUNT(*) (the breaker's per-tenant share)."""
        check_target(target)
        where, params = predicate(target, selection)
        tenant = quote_identifier(target.tenant_column)
        rows = self._query(
            f"SELECT {tenant}, COUNT(*) FROM {quote_identifier(target.table)} WHERE {where} GROUP BY {tenant}", params)
        return {str(t): int(n) for t, n in rows if t is not None}

    def _droppable(self, target: MySqlTarget, selection: Selection, info: TableInfo) -> list[Partition]:
        """Partitions the selection names that may be dropped whole, in table order."""
        if not isinstance(selection, ExpiredSelection) or selection.tenant is not None or not selection.units:
            return []
        wanted = set(selection.units)
        candidates = [
            p for p in info.partitions
            if p.name in wanted and not p.is_maxvalue and p.end <= selection.before
        ]
        if not candidates:
            return []
        tenant = quote_identifier(target.tenant_column)
        guard: list[str] = []
        params: list[Any] = []
        if selection.exclude_tenants:
            excluded = sorted(selection.exclude_tenants)
            guard.append(f"{tenant} IN ({', '.join(['%s'] * len(excluded))})")
            params.extend(excluded)
        for held_tenant, column, subject_id in held_subjects(target, selection):
            guard.append(f"({tenant} = %s AND {quote_identifier(column)} = %s)")
            params.extend([held_tenant, subject_id])
        if target.time_column not in info.not_null:
            # RANGE partitioning files NULL times in the first partition; they are not expired.
            guard.append(f"{quote_identifier(target.time_column)} IS NULL")
        if len(candidates) == len(info.partitions):
            candidates = candidates[:-1]  # a table keeps at least one partition; its rows go by batches
        if not guard:
            return candidates
        out = []
        for partition in candidates:
            held = self._query(
                f"SELECT 1 FROM {quote_identifier(target.table)} PARTITION ({quote_identifier(partition.name)})"
                f" WHERE {' OR '.join(guard)} LIMIT 1",
                params,
            )
            if held:
                log.info("%s: partition %s holds rows that must stay; deleting its rows one batch at a time",
                         target.qualified_name, partition.name)
            else:
                out.append(partition)
        return out

    def _partition_rows(self, target: MySqlTarget, partitions: Sequence[Partition]) -> dict[str, int]:
        """Row count of each partition (for the audit), in one statement."""
        if not partitions:
            return {}
        if self.partition_row_counts == "estimate":
            names = [p.name for p in partitions]
            rows = self._query(
                "SELECT PARTITION_NAME, SUM(TABLE_ROWS) FROM information_schema.PARTITIONS"
                " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s"
                f" AND PARTITION_NAME IN ({', '.join(['%s'] * len(names))}) GROUP BY PARTITION_NAME",
                (self._schema(), target.table, *names),
            )
            return {str(name): int(n or 0) for name, n in rows}
        table = quote_identifier(target.table)
        sql = " UNION ALL ".join(
            f"SELECT %s, COUNT(*) FROM {table} PARTITION ({quote_identifier(p.name)})" for p in partitions
        )
        return {str(name): int(n) for name, n in self._query(sql, [p.name for p in partitions])}

    def purge(self, target: MySqlTarget, selection: Selection, *, dry_run: bool = False) -> PurgeResult:
        """Drop fully expired partitions, then delete the remaining selected rows in key batches."""
        started = time.monotonic()
        check_target(target)
        predicate(target, selection)  # UnsupportedSelection before any work
        deleted = 0
        batches = 0
        details: dict[str, object] = {}
        try:
            info = self.table_info(target)
            drops = self._droppable(target, selection, info)
            method = "drop_partition+keyset_delete" if drops else "keyset_delete"
            if drops:
                details["partitions"] = [p.name for p in drops]
            if dry_run:
                planned = self.count(target, selection)
                log.info("Dry run: %s would delete %d rows (%d whole partitions)",
                         target.qualified_name, planned, len(drops))
                return PurgeResult(
                    target=target.qualified_name, store=self.store, method=method, planned=planned, deleted=0,
                    dry_run=True, seconds=time.monotonic() - started, details=details,
                )
            partition_rows = self._partition_rows(target, drops)
            planned = sum(partition_rows.values()) + self._count_outside(target, selection, info, drops)
            if drops:
                self._wait_for_replica(target, deleted)
                self._execute(
                    f"ALTER TABLE {quote_identifier(target.table)} DROP PARTITION "
                    + ", ".join(quote_identifier(p.name) for p in drops)
                )
                deleted += sum(partition_rows.values())
                details["partition_rows"] = deleted
                details["partition_rows_counted"] = self.partition_row_counts
                log.info("Dropped %d partitions of %s holding %d rows", len(drops), target.qualified_name, deleted)
            for n in self._delete_batches(target, selection, info, lambda: deleted):
                deleted += n
                batches += 1
        except PartialPurgeError:
            self._discard()
            raise
        except Exception as exc:
            import MySQLdb

            if not isinstance(exc, (MySQLdb.Error, WalkOrderError)):
                raise
            self._discard()
            cause = describe_db_error(exc)
            log.error("Purge of %s failed after deleting %d rows in %d batches: %s",
                      target.qualified_name, deleted, batches, cause)
            raise PartialPurgeError(target.qualified_name, deleted, cause) from None
        seconds = time.monotonic() - started
        log.info("Deleted %d rows from %s in %d batches (%s, %.2f s)",
                 deleted, target.qualified_name, batches, method, seconds)
        return PurgeResult(
            target=target.qualified_name, store=self.store, method=method, planned=planned, deleted=deleted,
            batches=batches, seconds=seconds, details=details,
        )

    def _count_outside(self, target: MySqlTarget, selection: Selection, info: TableInfo,
                       drops: Sequence[Partition]) -> int:
        """Selected rows outside the partitions about to be dropped."""
        if not drops:
            return self.count(target, selection)
        dropped = {p.name for p in drops}
        keep = [p.name for p in info.partitions if p.name not in dropped]
        where, params = predicate(target, selection)
        rows = self._query(
            f"SELECT COUNT(*) FROM {quote_identifier(target.table)}"
            f" PARTITION ({', '.join(quote_identifier(n) for n in keep)}) WHERE {where}",
            params,
        )
        return int(rows[0][0])

    def _delete_batches(
        self, target: MySqlTarget, selection: Selection, info: TableInfo, deleted_so_far: Callable[[], int]
    ) -> Iterator[int]:
        """Delete the selection one chunk at a time, each its own transaction; yields the rows
        each DELETE removed (the count is theirs, so it is exact)."""
        self._wait_for_replica(target, deleted_so_far())
        if self.range_deletes and not walk_plan(target, selection, info).checks_ties:
            yield from self._delete_chunks(target, selection, info, deleted_so_far)
        else:
            yield from self._delete_listed(target, selection, info, deleted_so_far)

    def _delete_chunks(
        self, target: MySqlTarget, selection: Selection, info: TableInfo, deleted_so_far: Callable[[], int]
    ) -> Iterator[int]:
        """Chunks by walk position: read where the next chunk ends, delete up to there.

        One statement (:func:`bounds_sql`; index-only unless the selection tests a column
        the index lacks, such as a held tenant's) returns the walk positions of the first
        and the batch-th selected row (or of the last one left); one DELETE (:func:`chunk_delete_sql`)
        then removes the selected rows between the previous position and that one, the
        selection's predicate repeated and ``LIMIT`` the batch. No key travels to the client
        and back. When a full chunk's integer keys turn out consecutive (a table filled in
        time order), the key windows that follow are deleted
        without reading anything first (:meth:`_delete_windows`).
        """
        batch = self.batch_size
        after: list[Any] | None = None
        while True:
            sql, params, plan, columns = bounds_sql(target, selection, info, limit=batch, after=after)
            found = {row[0]: row[1:] for row in self._query(sql, params)}
            full, last, first = found.get(0), found.get(1), found.get(2)
            end = full if full is not None else last
            if end is None or first is None:
                return  # nothing selected is left after the walk's position
            position = {c: i for i, c in enumerate(columns)}
            upto = [end[position[c]] for c in plan.order]
            sql, params = chunk_delete_sql(target, selection, info, after=after, upto=upto, limit=batch)
            n = self._execute(sql, params)
            log.debug("Deleted %d rows from %s", n, target.qualified_name)
            yield n
            if full is None and n < batch:
                return  # that was the tail of the selection
            self._between_batches(target, deleted_so_far())
            if full is None:
                continue  # rows arrived in the tail while it was deleted: read it again
            after = upto
            low, high = first[position[target.key_column]], end[position[target.key_column]]
            if n == batch and isinstance(low, int) and isinstance(high, int) and high - low == batch - 1:
                # A full chunk of consecutive keys: what follows is likely more of them.
                yield from self._delete_windows(target, selection, high + 1, deleted_so_far)

    def _delete_windows(
        self, target: MySqlTarget, selection: Selection, start: int, deleted_so_far: Callable[[], int]
    ) -> Iterator[int]:
        """Delete the selected rows of consecutive key windows from ``start`` on, while every
        window is full. A window is no wider than a batch, so it never removes more rows than
        one; the selection's predicate is repeated, so it removes only selected rows."""
        table = quote_identifier(target.table)
        key = quote_identifier(target.key_column)
        where, where_params = predicate(target, selection)
        while True:
            n = self._execute(
                f"DELETE FROM {table} WHERE {key} BETWEEN %s AND %s AND {where}",
                [start, start + self.batch_size - 1, *where_params],
            )
            if n:
                yield n
            if n < self.batch_size:
                return  # a gap or the end of the selection: back to the walk
            self._between_batches(target, deleted_so_far())
            start += self.batch_size

    def _delete_listed(
        self, target: MySqlTarget, selection: Selection, info: TableInfo, deleted_so_far: Callable[[], int]
    ) -> Iterator[int]:
        """Chunks whose keys are read first: for walks that check their order as they go (a
        partitioned table's secondary index) and for ``range_deletes = False``.

        Each batch's keys come from the keyset walk. When a full batch turns out to be
        consecutive integer keys (expired rows of a table filled in time order), the
        windows of keys that follow are deleted directly, without reading their keys
        first, for as long as each window is entirely selected; then the walk resumes.
        A window is never wider than a batch, so it never removes more rows than one.
        """
        table = quote_identifier(target.table)
        key = quote_identifier(target.key_column)
        where, where_params = predicate(target, selection)
        other_pk = [c for c in info.primary_key if c != target.key_column]
        for rows, position in self._walk(target, selection, info, self.batch_size):
            keys = list(dict.fromkeys(row[position[target.key_column]] for row in rows))
            low, high = min(keys), max(keys)
            dense = self.range_deletes and all(isinstance(k, int) for k in keys) and high - low < self.batch_size
            if dense:
                # One key range is cheaper than a list, and a range no wider than the
                # batch cannot hold more rows than it.
                clauses = [f"{key} BETWEEN %s AND %s"]
                params: list[Any] = [low, high]
            else:
                clauses = [f"{key} IN ({', '.join(['%s'] * len(keys))})"]
                params = list(keys)
            for column in other_pk:
                # Bounds of the rest of the primary key (the partitioning column) let the
                # server prune partitions; every row of the batch lies within them.
                values = [row[position[column]] for row in rows]
                clauses.append(f"{quote_identifier(column)} BETWEEN %s AND %s")
                params.extend([min(values), max(values)])
            # The selection's predicate again: a row that changed since it was read stays.
            n = self._execute(f"DELETE FROM {table} WHERE {' AND '.join(clauses)} AND {where}",
                              params + where_params)
            log.debug("Deleted %d rows from %s", n, target.qualified_name)
            yield n
            if len(rows) < self.batch_size:
                continue  # the walk ends here
            self._between_batches(target, deleted_so_far())
            if dense and n == self.batch_size:
                yield from self._delete_windows(target, selection, high + 1, deleted_so_far)

    def fetch_column(
        self, target: MySqlTarget, selection: Selection, column: str, batch: int | None = None
    ) -> Iterator[Any]:
        """Stream the non-NULL values of ``column`` in the rows of a tenant or subject selection.

        Used to find what rows point at elsewhere (the recording keys of a subject's calls)
        before the rows themselves are purged. Reads in keyset batches of ``batch`` rows.
        """
        if not isinstance(selection, (TenantSelection, SubjectSelection)):
            raise UnsupportedSelection("fetch_column takes a tenant or subject selection")
        quote_identifier(column)
        limit = batch or self.batch_size
        if not 1 <= limit <= 100_000:
            raise ValueError(f"batch must be between 1 and 100000, got {limit}")
        info = self.table_info(target)
        for rows, position in self._walk(target, selection, info, limit, extra_columns=(column,)):
            for row in rows:
                value = row[position[f"extra:{column}"]]
                if value is not None:
                    yield value
