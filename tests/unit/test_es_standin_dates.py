"""Date math, custom formats and rounding in range queries, as Elasticsearch 8's "Range query"
reference states them ("Date math and rounding", "Missing date components"); every case is a 200
whose hits are ES's. Source checked: ``JavaDateMathParser`` (anchor before ``||`` parsed without
rounding; ``gt``/``lte`` round up, ``gte``/``lt`` down)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from elasticsearch import Elasticsearch

pytest.register_assert_rewrite("tests.unit.es_standin_harness")
from tests.unit.es_standin_harness import load  # noqa: E402 - after the rewrite hook

from devservers.es_standin_dates import parse_bound  # noqa: E402

pytest_plugins = ["tests.unit.es_standin_harness"]  # its fixtures: server, es, index

pytestmark = pytest.mark.timeout(60)

DAY = [
    "2025-01-01T23:59:59.999Z",  # 0
    "2025-01-02T00:00:00Z",  # 1
    "2025-01-02T23:59:59.999Z",  # 2
    "2025-01-03T00:00:00Z",  # 3
]


@pytest.mark.parametrize(
    "bounds, expected",
    [
        pytest.param({"lte": "2025-01-02"}, {"0", "1", "2"}, id="lte-date-rounds-up-to-end-of-day"),
        pytest.param({"gt": "2025-01-02"}, {"3"}, id="gt-date-excludes-the-day"),
        pytest.param({"gte": "2025-01-02", "lt": "2025-01-03"}, {"1", "2"}, id="gte-lt-round-down"),
        pytest.param({"gte": "2025-01-02||/d", "lte": "2025-01-02||/d"}, {"1", "2"}, id="anchor-rounded-to-day"),
        pytest.param({"gt": "2025-01-01T12:00:00Z||+1d/d"}, {"3"}, id="anchor-plus-one-day-rounded-up"),
        pytest.param({"gte": "02/01/2025", "format": "dd/MM/yyyy"}, {"1", "2", "3"}, id="custom-format"),
        pytest.param({"lte": "2025.01.01", "format": "yyyy.MM.dd"}, {"0"}, id="custom-format-rounds-up"),
        pytest.param({"lt": "1735776000", "format": "epoch_second"}, {"0"}, id="epoch_second"),
        pytest.param(
            {"gte": "2025-01-02", "lt": "2025-01-03", "time_zone": "+08:00"},  # 01-01T16:00Z to 01-02T16:00Z
            {"0", "1"},
            id="time-zone-shifts-the-day",
        ),
    ],
)
def test_range_dates_like_es(es: Elasticsearch, index: str, bounds: dict[str, Any], expected: set[str]) -> None:
    load(es, index, [{"@timestamp": ts} for ts in DAY])
    query = {"range": {"@timestamp": bounds}}
    assert {h["_id"] for h in es.search(index=index, query=query)["hits"]["hits"]} == expected


def test_now_relative_ranges(es: Elasticsearch, index: str) -> None:
    """``now-30d/d`` (gte: start of that day) and ``now/d`` (lt: start of today), in UTC."""
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    stamps = [today - timedelta(days=31), today - timedelta(days=30), today - timedelta(seconds=1), today]
    load(es, index, [{"@timestamp": s.isoformat()} for s in stamps])
    query = {"range": {"@timestamp": {"gte": "now-30d/d", "lt": "now/d"}}}
    assert {h["_id"] for h in es.search(index=index, query=query)["hits"]["hits"]} == {"1", "2"}


@pytest.mark.parametrize(
    "text, round_up, expected",
    [
        pytest.param("2025-02-14||/M", False, "2025-02-01T00:00:00.000", id="round-month-down"),
        pytest.param("2025-02-14||/M", True, "2025-02-28T23:59:59.999", id="round-month-up"),
        pytest.param("2025-01-31||+1M", False, "2025-02-28T00:00:00.000", id="month-arithmetic-clamps"),
        pytest.param("2025-01-15||/w", False, "2025-01-13T00:00:00.000", id="week-starts-monday"),
        pytest.param("2025-01-15T10:20:30Z||-1h/h", False, "2025-01-15T09:00:00.000", id="hour"),
        pytest.param("now-1y/y", False, "2025-01-01T00:00:00.000", id="now-anchor"),
    ],
)
def test_date_math_arithmetic(text: str, round_up: bool, expected: str) -> None:
    now = int(datetime(2026, 12, 3, 15, 0, tzinfo=timezone.utc).timestamp() * 1000)
    got = parse_bound(text, fmt=None, tz=timezone.utc, round_up=round_up, now=now)
    assert datetime.fromtimestamp(got / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] == expected


# ------------------------------------------------------------------ date math in index names


@pytest.mark.parametrize(
    "expr, expected",
    [
        pytest.param("<cc-logs-{now/M{yyyy.MM}}>", "cc-logs-2026.12", id="month"),
        pytest.param("<cc-logs-{now/d}>", "cc-logs-2026.12.03", id="default-format"),
        pytest.param("<cc-logs-{now/M-1M{yyyy.MM}}>", "cc-logs-2026.11", id="last-month"),
        pytest.param("<cc-{now/d{yyyy.MM.dd|+12:00}}>", "cc-2026.12.04", id="time-zone"),
        pytest.param("<static-\\{x\\}>", "static-{x}", id="escaped-braces"),
        pytest.param("cc-logs-plain", "cc-logs-plain", id="no-brackets-unchanged"),
    ],
)
def test_date_math_index_names(expr: str, expected: str) -> None:
    """ES's "Date math support in index and index alias names" (UTC, default format yyyy.MM.dd)."""
    from devservers.es_standin_dates import resolve_index_name

    now = int(datetime(2026, 12, 3, 15, 0, tzinfo=timezone.utc).timestamp() * 1000)
    assert resolve_index_name(expr, now=now) == expected


def test_date_math_index_names_through_the_apis(es: Elasticsearch) -> None:
    """200: create, write, count and delete by the expression reach the resolved index; an open
    placeholder is 400 parse_exception."""
    from elasticsearch import BadRequestError

    expr = "<unit-dm-{now/d{yyyy.MM.dd}}>"
    concrete = "unit-dm-" + datetime.now(timezone.utc).strftime("%Y.%m.%d")
    assert es.indices.create(index=expr)["index"] == concrete
    es.index(index=expr, id="1", document={"a": 1}, refresh=True)
    assert es.count(index=expr)["count"] == 1 and es.count(index=concrete)["count"] == 1
    es.indices.delete(index=expr)
    assert not es.indices.exists(index=concrete)
    with pytest.raises(BadRequestError, match="parse_exception"):
        es.indices.create(index="<unit-dm-{now/d>")
