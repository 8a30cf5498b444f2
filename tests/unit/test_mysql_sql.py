"""The SQL of a MySQL purge chunk, without a server: what the bounds read and the DELETE say.

The store tests (tests/stores/test_mysql.py) run the same statements against MariaDB; these
pin their shape and, by evaluating the keyset clauses in Python, that a chunk is exactly the
rows between two walk positions.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timezone
from typing import Any, Sequence

import pytest

from include.retention.policy import MySqlTarget, load_policy
from include.retention.selections import ExpiredSelection, Selection, SubjectSelection, TenantSelection
from include.retention.stores.mysql_sql import (
    Partition,
    TableInfo,
    bounds_sql,
    chunk_delete_sql,
    keyset_after,
    keyset_upto,
    predicate,
    walk_plan,
)

UTC = timezone.utc
CUTOFF = datetime(2026, 7, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def service() -> MySqlTarget:
    t = load_policy().target("call_analytics.service_records")
    assert isinstance(t, MySqlTarget)
    return t


def service_info(partitions: tuple[Partition, ...] = ()) -> TableInfo:
    """``service_records`` as information_schema describes it (devdata/schema.py)."""
    return TableInfo(
        table="service_records",
        primary_key=("id",),
        indexes={"PRIMARY": ("id",), "ix_tenant_time": ("tenant_id", "created_at"),
                 "ix_tenant_customer": ("tenant_id", "customer_number"), "ix_tenant_agent": ("tenant_id", "agent_id"),
                 "ix_time": ("created_at",)},
        not_null=frozenset({"id", "created_at", "tenant_id", "call_id"}),
        temporal=frozenset({"created_at"}),
        partitions=partitions,
    )


SELECTIONS = [
    pytest.param(ExpiredSelection(before=CUTOFF), id="expired"),
    pytest.param(ExpiredSelection(before=CUTOFF, exclude_tenants=frozenset({"7", "123"}),
                                  exclude_subjects=frozenset({("12", "phone_number", "+6591234567")})),
                 id="expired-with-holds"),
    pytest.param(ExpiredSelection(before=CUTOFF, tenant="12"), id="expired-one-tenant"),
    pytest.param(TenantSelection("12"), id="tenant"),
    pytest.param(SubjectSelection("12", "phone_number", "+6591234567", subject_hash="h" * 64), id="subject"),
]


def position(service: MySqlTarget, selection: Selection, n: int) -> list[Any]:
    plan = walk_plan(service, selection, service_info())
    return [f"2026-02-0{n} 00:00:00" if c == "created_at" else (f"+65{n}" if c != "id" else 1000 * n)
            for c in plan.order]


@pytest.mark.parametrize("selection", SELECTIONS)
def test_a_chunk_delete_repeats_the_whole_selection_and_is_bounded(service: MySqlTarget, selection: Selection) -> None:
    info = service_info()
    plan = walk_plan(service, selection, info)
    after, upto = position(service, selection, 1), position(service, selection, 2)
    sql, params = chunk_delete_sql(service, selection, info, after=after, upto=upto, limit=5000)

    where, where_params = predicate(service, selection)
    lower, lower_params = keyset_after(plan.order, after)
    upper, upper_params = keyset_upto(plan.order, upto)
    order = ", ".join(f"`{c}`" for c in plan.order)
    assert sql == (f"DELETE FROM `service_records` WHERE {where} AND {lower} AND {upper}"
                   f" ORDER BY {order} LIMIT %s")
    assert params == [*where_params, *lower_params, *upper_params, 5000]
    assert sql.count("%s") == len(params)
    # Values are bound, never written into the statement.
    assert not re.search(r"'|\d{3}", sql.replace("`", ""))


def test_the_first_chunk_has_no_lower_bound(service: MySqlTarget) -> None:
    selection = ExpiredSelection(before=CUTOFF)
    sql, params = chunk_delete_sql(service, selection, service_info(), after=None,
                                   upto=["2026-02-01 00:00:00", 7], limit=100)
    assert sql == ("DELETE FROM `service_records` WHERE `created_at` < %s AND ((`created_at` < %s) OR"
                   " (`created_at` = %s AND `id` <= %s)) ORDER BY `created_at`, `id` LIMIT %s")
    assert params == [CUTOFF.replace(tzinfo=None), "2026-02-01 00:00:00", "2026-02-01 00:00:00", 7, 100]


@pytest.mark.parametrize("selection", SELECTIONS)
@pytest.mark.parametrize("after", [pytest.param(None, id="first"), pytest.param(1, id="next")])
def test_bounds_are_one_statement_on_the_walk_index_returning_at_most_three_rows(
    service: MySqlTarget, selection: Selection, after: int | None
) -> None:
    info = service_info()
    plan = walk_plan(service, selection, info)
    start = None if after is None else position(service, selection, after)
    sql, params, got_plan, columns = bounds_sql(service, selection, info, limit=5000, after=start)

    assert got_plan == plan and columns == tuple(dict.fromkeys([*plan.order, "id"]))
    parts = sql.split(" UNION ALL ")
    assert [p[:10] for p in parts] == ["(SELECT 0,", "(SELECT 1,", "(SELECT 2,"]
    assert all(f"FORCE INDEX (`{plan.index}`)" in p for p in parts)
    assert parts[0].endswith("LIMIT %s, 1)") and parts[1].endswith("DESC LIMIT 1)") and parts[2].endswith(
        "LIMIT 1)")
    where, where_params = predicate(service, selection)
    lower, lower_params = keyset_after(plan.order, start) if start is not None else ("", [])
    one = [*where_params, *lower_params]
    assert params == [*one, 4999, *one, *one]
    assert all(f"WHERE {where}{' AND ' + lower if lower else ''} ORDER BY" in p for p in parts)


def test_a_walk_that_checks_ties_has_no_bounds_or_chunk_delete(service: MySqlTarget) -> None:
    """A partitioned table's secondary index returns ties in an order the walk checks row by row."""
    partitioned = service_info(partitions=(Partition("p1", CUTOFF, CUTOFF, 1),))
    selection = ExpiredSelection(before=CUTOFF)
    assert walk_plan(service, selection, partitioned).checks_ties
    with pytest.raises(ValueError, match="checks ties"):
        bounds_sql(service, selection, partitioned, limit=10, after=None)
    with pytest.raises(ValueError, match="checks ties"):
        chunk_delete_sql(service, selection, partitioned, after=None, upto=["2026-01-01 00:00:00", 1], limit=10)


def evaluate(clause: str, params: Sequence[Any], row: dict[str, Any]) -> bool:
    """A keyset clause (only `col` = / < / <= / > %s, AND, OR, parentheses) evaluated on ``row``."""
    values = iter(params)
    python = re.sub(r"`(\w+)` (=|<=|<|>) %s",
                    lambda m: repr(_compare(row[m.group(1)], m.group(2), next(values))), clause)
    python = python.replace(" AND ", " and ").replace(" OR ", " or ")
    assert set(python) <= set("TrueFalse andor()"), python
    return bool(eval(python))  # noqa: S307 - only True/False/and/or/parentheses remain


def _compare(value: Any, operator: str, bound: Any) -> bool:
    return {"=": value == bound, "<": value < bound, "<=": value <= bound, ">": value > bound}[operator]


@pytest.mark.parametrize("width, values", [(1, 4), (2, 3), (3, 2)])
def test_a_chunk_is_exactly_the_rows_after_one_position_up_to_the_next(width: int, values: int) -> None:
    """For every pair of walk positions a, b: after(a) AND upto(b) holds for exactly a < row <= b."""
    order = [f"c{i}" for i in range(width)]
    grid = list(itertools.product(range(values), repeat=width))
    for a, b in itertools.product(grid, repeat=2):
        lower, lower_params = keyset_after(order, a)
        upper, upper_params = keyset_upto(order, b)
        for row in grid:
            named = dict(zip(order, row))
            inside = evaluate(lower, lower_params, named) and evaluate(upper, upper_params, named)
            assert inside == (a < row <= b), (a, b, row)
