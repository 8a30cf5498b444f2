"""The stores' optional capabilities: which store is a ColumnSource or ExplicitKeys, signatures exact (pure, no I/O)."""

from __future__ import annotations

import inspect
import typing
from zoneinfo import ZoneInfo

import pytest

from include.retention.stores.base import ColumnSource, ExplicitKeys, as_column_source, as_explicit_keys
from include.retention.stores.cos import CosStore
from include.retention.stores.elasticsearch import ElasticsearchStore
from include.retention.stores.mysql import MySqlStore
from include.retention.stores.redis import RedisStore

TZ = ZoneInfo("Asia/Singapore")


def _signature(function: typing.Callable[..., object]) -> tuple[object, ...]:
    """Parameters (name, kind, default), resolved annotations and return type of ``function``."""
    signature = inspect.signature(function)
    hints = typing.get_type_hints(function)
    parameters = tuple((p.name, p.kind, p.default, hints.get(p.name)) for p in signature.parameters.values())
    return parameters, hints.get("return")


# Constructors do no I/O: each store is built on its role's default connection id, which need not exist.
def test_mysql_is_a_column_source() -> None:
    store = MySqlStore()
    assert isinstance(store, ColumnSource)
    assert as_column_source(store) is store
    assert not isinstance(store, ExplicitKeys)


def test_cos_takes_explicit_keys() -> None:
    store = CosStore(timezone=TZ)
    assert isinstance(store, ExplicitKeys)
    assert as_explicit_keys(store) is store
    assert not isinstance(store, ColumnSource)


@pytest.mark.parametrize(
    "store",
    [
        pytest.param(RedisStore(), id="redis"),
        pytest.param(ElasticsearchStore(timezone=TZ), id="elasticsearch"),
    ],
)
def test_redis_and_elasticsearch_have_neither_capability(store: object) -> None:
    assert not isinstance(store, ExplicitKeys)
    assert not isinstance(store, ColumnSource)
    with pytest.raises(TypeError, match="cannot purge explicit object keys"):
        as_explicit_keys(store)
    with pytest.raises(TypeError, match="cannot read a column of its rows"):
        as_column_source(store)


@pytest.mark.parametrize(
    ("protocol", "store", "method"),
    [
        pytest.param(ColumnSource, MySqlStore, "fetch_column", id="mysql-fetch_column"),
        pytest.param(ExplicitKeys, CosStore, "count_keys", id="cos-count_keys"),
        pytest.param(ExplicitKeys, CosStore, "purge_keys", id="cos-purge_keys"),
    ],
)
def test_capability_signatures_match_the_protocol_exactly(protocol: type, store: type, method: str) -> None:
    """isinstance() on a runtime protocol only checks that the name exists; the signature must match too."""
    assert _signature(getattr(store, method)) == _signature(getattr(protocol, method))
