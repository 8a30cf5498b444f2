"""MySQL: every table and column of the configured schemas, from ``information_schema``.

Tables and columns are read from ``information_schema.COLUMNS``; a table the policy does not
cover (nor exempts) has its text columns sampled, a column the policy does not name in a
covered table has that column sampled: ``SELECT <columns> FROM <table> LIMIT n``, reduced
to counts at once. Identifiers come from ``information_schema`` and are quoted; there are no
values in any statement.

The account needs ``SELECT`` on the schemas (``information_schema`` shows each account only
the tables it holds a privilege on): the coverage connection ``retention_coverage_mysql``, a
read-only account. Without it, ``retention_mysql`` is used, which sees only the policy's
tables, and the result says so.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Callable, Sequence

from include.retention.coverage.classify import mysql_columns, mysql_tables
from include.retention.coverage.items import Item, ValueCounts, scrub_name
from include.retention.policy import Policy

log = logging.getLogger(__name__)

TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "json", "set"})
DEFAULT_ROWS_SAMPLED = 200


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def read_columns(cursor: Any, schemas: Sequence[str]) -> list[tuple[str, str, str, str]]:
    """(schema, table, column, data type) of every column of ``schemas``."""
    if not schemas:
        return []
    cursor.execute(
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
        f"WHERE TABLE_SCHEMA IN ({', '.join(['%s'] * len(schemas))}) "
        "ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
        tuple(schemas),
    )
    return [tuple(str(v.decode() if isinstance(v, bytes) else v) for v in row) for row in cursor.fetchall()]  # type: ignore[misc]


def sample_columns(cursor: Any, schema: str, table: str, columns: Sequence[str], rows: int) -> dict[str, ValueCounts]:
    """Counts of phone- and e-mail-shaped values in the first ``rows`` rows of these columns."""
    counts = {c: ValueCounts() for c in columns}
    if not columns or rows <= 0:
        return counts
    cursor.execute(
        f"SELECT {', '.join(_quoted(c) for c in columns)} FROM {_quoted(schema)}.{_quoted(table)} LIMIT %s",
        (int(rows),),
    )
    for row in cursor.fetchall():
        for column, value in zip(columns, row):
            counts[column].add(value)
    return counts


def inventory(
    conn: Any,
    policy: Policy,
    schemas: Sequence[str],
    *,
    should_sample: Callable[[Item], bool],
    rows: int = DEFAULT_ROWS_SAMPLED,
) -> list[Item]:
    """The tables and columns of ``schemas`` as items; unknown ones carry their sample's counts."""
    cursor = conn.cursor()
    covered_tables, covered_columns = mysql_tables(policy), mysql_columns(policy)
    layout: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for schema, table, column, data_type in read_columns(cursor, schemas):
        layout[(schema, table)].append((column, data_type.lower()))
    tables: dict[str, Item] = {}
    columns: dict[str, Item] = {}
    for (schema, table), cols in layout.items():
        table_item = Item("mysql", "table", scrub_name(table), covered_by=covered_tables.get(table))
        table_sampled = not table_item.covered_by and should_sample(table_item)
        col_items = [Item("mysql", "column", scrub_name(f"{table}.{column}"),
                          covered_by=covered_columns.get((table, column))) for column, _ in cols]
        wanted = [column for (column, data_type), item in zip(cols, col_items)
                  if data_type in TEXT_TYPES and not item.covered_by and (table_sampled or should_sample(item))]
        counts = sample_columns(cursor, schema, table, wanted, rows) if wanted else {}
        total = ValueCounts()
        for (column, _), item in zip(cols, col_items):
            found = counts.get(column, ValueCounts())
            total = total.merged(found)
            previous = columns.get(item.id)
            columns[item.id] = Item(item.store, item.kind, item.name, (previous.members + 1) if previous else 1,
                                    item.covered_by, found.merged(previous.counts) if previous else found)
        previous_table = tables.get(table_item.id)
        tables[table_item.id] = Item(
            "mysql", "table", table_item.name, (previous_table.members + 1) if previous_table else 1,
            table_item.covered_by, total.merged(previous_table.counts) if previous_table else total,
            tuple(scrub_name(c) for c, _ in cols)[:200])
    log.info("MySQL coverage: %d tables, %d columns in %d schema(s)", len(tables), len(columns), len(schemas))
    return list(tables.values()) + list(columns.values())
