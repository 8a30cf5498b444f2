"""Aliases in the stand-in, against Elasticsearch 8's REST API reference ("Aliases", "Create or update
an alias", "Delete an alias", "Get alias", "Alias API" (POST /_aliases), "Delete index"). Each case
names the status and error ``type`` ES returns."""

from __future__ import annotations

from typing import Any

import pytest
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError

pytest.register_assert_rewrite("tests.unit.es_standin_harness")
from tests.unit.es_standin_harness import NAMES, load  # noqa: E402 - after the rewrite hook

pytest_plugins = ["tests.unit.es_standin_harness"]  # its fixtures: server, es, index

pytestmark = pytest.mark.timeout(60)


def _two_indices(es: Elasticsearch) -> tuple[str, str, str]:
    alias = f"unit-alias-{next(NAMES)}"
    a, b = f"unit-{next(NAMES)}", f"unit-{next(NAMES)}"
    mappings = {"properties": {"tenant_id": {"type": "keyword"}}}
    es.indices.create(index=a, aliases={alias: {}}, settings={"number_of_replicas": 0}, mappings=mappings)
    es.indices.create(index=b, settings={"number_of_replicas": 0}, mappings=mappings)
    es.indices.put_alias(index=b, name=alias)
    load(es, a, [{"tenant_id": "12"}, {"tenant_id": "123"}])
    load(es, b, [{"tenant_id": "12"}])
    return alias, a, b


def test_create_with_aliases_and_read_through_them(es: Elasticsearch) -> None:
    """200: search, count and delete_by_query on an alias reach every index behind it."""
    alias, a, b = _two_indices(es)
    assert es.indices.get(index=a)[a]["aliases"] == {alias: {}}
    assert es.count(index=alias)["count"] == 3
    hits = es.search(index=alias, query={"term": {"tenant_id": "12"}})["hits"]["hits"]
    assert sorted(h["_index"] for h in hits) == sorted([a, b])  # concrete names in hits
    resp = es.delete_by_query(index=alias, query={"term": {"tenant_id": "12"}}, refresh=True)
    assert resp["deleted"] == 2 and es.count(index=alias)["count"] == 1
    assert {r["index"] for r in es.cat.indices(index=alias, format="json")} == {a, b}


def test_get_alias(es: Elasticsearch) -> None:
    """200 with {index: {aliases: {...}}}; a missing name is 404 with the "alias [x] missing" body."""
    alias, a, b = _two_indices(es)
    assert es.indices.get_alias(name=alias).body == {a: {"aliases": {alias: {}}}, b: {"aliases": {alias: {}}}}
    assert es.indices.get_alias(index=a).body == {a: {"aliases": {alias: {}}}}
    assert es.indices.exists_alias(name=alias) and not es.indices.exists_alias(name="unit-no-alias")
    with pytest.raises(NotFoundError) as err:
        es.indices.get_alias(name="unit-no-alias")
    assert err.value.body["error"] == "alias [unit-no-alias] missing" and err.value.body["status"] == 404


def test_delete_alias(es: Elasticsearch) -> None:
    """200 acknowledged; deleting it again is 404 aliases_not_found_exception; the indices stay."""
    alias, a, b = _two_indices(es)
    assert es.indices.delete_alias(index=a, name=alias)["acknowledged"]
    assert list(es.indices.get_alias(name=alias)) == [b]
    with pytest.raises(NotFoundError) as err:
        es.indices.delete_alias(index=a, name=alias)
    assert err.value.body["error"]["type"] == "aliases_not_found_exception"
    assert es.indices.exists(index=a) and es.count(index=a)["count"] == 2


def test_update_aliases_is_atomic(es: Elasticsearch) -> None:
    """POST /_aliases: add and remove in one request (200); a failing action applies none of them."""
    alias, a, b = _two_indices(es)
    other = f"unit-alias-{next(NAMES)}"
    es.indices.update_aliases(
        actions=[{"remove": {"index": a, "alias": alias}}, {"add": {"index": a, "alias": other}}]
    )
    assert es.indices.get_alias(index=a).body == {a: {"aliases": {other: {}}}}
    with pytest.raises(NotFoundError, match="aliases_not_found_exception"):
        es.indices.update_aliases(
            actions=[{"add": {"index": b, "alias": "unit-never"}}, {"remove": {"index": b, "alias": "unit-nope"}}]
        )
    assert not es.indices.exists_alias(name="unit-never")


def test_delete_index_through_an_alias_is_refused(es: Elasticsearch) -> None:
    """ES 8: DELETE /{alias} is 400 illegal_argument_exception, and nothing is deleted."""
    alias, a, b = _two_indices(es)
    with pytest.raises(BadRequestError) as err:
        es.indices.delete(index=alias)
    assert err.value.body["error"]["type"] == "illegal_argument_exception"
    assert err.value.body["error"]["reason"] == (
        f"The provided expression [{alias}] matches an alias, specify the corresponding concrete indices instead."
    )
    assert es.indices.exists(index=a) and es.indices.exists(index=b)


def test_writes_through_an_alias(es: Elasticsearch) -> None:
    """One index behind: writes go there (201). Several without a write index: 400
    illegal_argument_exception "no write index is defined for alias". With is_write_index: there."""
    alias, a, b = _two_indices(es)
    with pytest.raises(BadRequestError, match="no write index is defined for alias"):
        es.index(index=alias, id="w", document={"tenant_id": "1"})
    es.indices.put_alias(index=b, name=alias, is_write_index=True)
    assert es.index(index=alias, id="w", document={"tenant_id": "1"}, refresh=True)["_index"] == b
    assert es.get(index=alias, id="w")["_index"] == b


@pytest.mark.parametrize(
    "make, type_",
    [
        pytest.param(
            lambda es, ix: es.indices.put_alias(index=ix, name="Upper"),
            "invalid_alias_name_exception",
            id="400-uppercase",
        ),
        pytest.param(
            lambda es, ix: es.indices.put_alias(index=ix, name=ix),
            "invalid_alias_name_exception",
            id="400-same-as-index",
        ),
        pytest.param(
            lambda es, ix: es.indices.create(index=f"unit-{next(NAMES)}", aliases={ix: {}}),
            "invalid_alias_name_exception",
            id="400-alias-named-like-an-index",
        ),
        pytest.param(
            lambda es, ix: es.indices.put_alias(index=ix, name="unit-f", filter={"term": {"a": "b"}}),
            "illegal_argument_exception",
            id="400-filter-not-implemented",
        ),
    ],
)
def test_alias_refusals(es: Elasticsearch, index: str, make: Any, type_: str) -> None:
    with pytest.raises(BadRequestError) as err:
        make(es, index)
    assert err.value.body["error"]["type"] == type_


def test_index_named_like_an_alias_is_refused(es: Elasticsearch) -> None:
    """400 invalid_index_name_exception "already exists as alias"."""
    alias, _, _ = _two_indices(es)
    with pytest.raises(BadRequestError, match="invalid_index_name_exception"):
        es.indices.create(index=alias)
