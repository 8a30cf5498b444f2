"""The Elasticsearch stand-in's semantics, checked with the official client against an in-process
server on an ephemeral port: where the stand-in answers, it answers like Elasticsearch 8; where
it cannot, it refuses with a 400 that says so.
"""

from __future__ import annotations

import json
import time
import warnings
from typing import Any

import pytest
from elasticsearch import ApiError, BadRequestError, ConflictError, Elasticsearch, NotFoundError

from devservers import es_standin_server as srv

pytest.register_assert_rewrite("tests.unit.es_standin_harness")
from tests.unit.es_standin_harness import NAMES, load, raw  # noqa: E402 - after the rewrite hook

pytest_plugins = ["tests.unit.es_standin_harness"]  # its fixtures: server, es, index

pytestmark = pytest.mark.timeout(60)

# ------------------------------------------------------------------ wire


def test_every_answer_carries_the_product_header_and_a_length(server: str) -> None:
    for method, path in (("GET", "/"), ("HEAD", "/"), ("GET", "/no-such-index/_settings"), ("GET", "/_nope")):
        status, headers, _ = raw(server, method, path)
        assert headers["X-Elastic-Product"] == "Elasticsearch"
        assert "Content-Length" in headers
    assert raw(server, "GET", "/no-such-index/_settings")[0] == 404


@pytest.mark.parametrize(
    "headers, status",
    [
        pytest.param({"Accept": "application/vnd.elasticsearch+json; compatible-with=8"}, 200, id="8"),
        pytest.param({"Accept": "application/vnd.elasticsearch+json; compatible-with=7"}, 200, id="7"),
        pytest.param({"Accept": "application/json"}, 200, id="plain"),
        pytest.param({"Accept": "application/vnd.elasticsearch+json; compatible-with=9"}, 400, id="9"),
        pytest.param({"Accept": "application/vnd.elasticsearch+json; compatible-with=6"}, 400, id="6"),
        pytest.param(
            {
                "Accept": "application/vnd.elasticsearch+json; compatible-with=8",
                "Content-Type": "application/vnd.elasticsearch+json; compatible-with=7",
            },
            400,
            id="mismatch",
        ),
    ],
)
def test_compatible_with_is_checked_like_es8(server: str, headers: dict[str, str], status: int) -> None:
    body = b"{}" if "Content-Type" in headers else None
    got, resp_headers, payload = raw(server, "POST" if body else "GET", "/_count" if body else "/", headers, body)
    assert got == status
    if status == 400:
        assert payload["error"]["type"] == "media_type_header_exception"
    elif "compatible-with=8" in headers["Accept"]:
        assert resp_headers["Content-Type"] == "application/vnd.elasticsearch+json;compatible-with=8"


def test_unsupported_content_type_is_406(server: str) -> None:
    status, _, payload = raw(server, "POST", "/_count", {"Content-Type": "text/plain"}, b"{}")
    assert status == 406 and payload["error"]["type"] == "media_type_header_exception"


def test_what_it_cannot_do_it_refuses(es: Elasticsearch, index: str) -> None:
    cases = [
        (lambda: es.count(index=index, query={"match": {"msg": "x"}}), "does not implement the [match] query"),
        (lambda: es.count(index=index, query={"term": {"msg": "x"}}), "does not analyze text"),
        (
            lambda: es.count(index=index, query={"range": {"@timestamp": {"gte": "Mon", "format": "EEE"}}}),
            "date format pattern [EEE]",
        ),
        (lambda: es.search(index=index, aggs={"a": {"terms": {"field": "agent_id"}}}), "search option [aggs]"),
        (lambda: es.indices.put_settings(index=index, settings={"refresh_interval": "5s"}), "does not implement"),
        (
            lambda: es.indices.create(
                index=f"unit-nested-{next(NAMES)}", mappings={"properties": {"x": {"type": "nested"}}}
            ),
            "field type [nested]",
        ),
    ]
    for call, reason in cases:
        with pytest.raises(BadRequestError) as err:
            call()
        assert reason in json.dumps(err.value.body), reason
    with pytest.raises(BadRequestError, match="parsing_exception"):
        es.count(index=index, query={"no_such_query": {}})
    with pytest.raises(BadRequestError) as err:
        es.perform_request("GET", f"/{index}/_count", params={"bogus": "1"})
    assert "unrecognized parameter: [bogus]" in json.dumps(err.value.body)


# ------------------------------------------------------------------ indices


def test_index_names_and_settings_are_validated(es: Elasticsearch) -> None:
    with pytest.raises(BadRequestError, match="invalid_index_name_exception"):
        es.indices.create(index="Upper")
    with pytest.raises(BadRequestError) as err:
        es.indices.create(index=f"unit-{next(NAMES)}", settings={"index.bogus": 1})
    assert "unknown setting [index.bogus]" in json.dumps(err.value.body)
    name = f"unit-{next(NAMES)}"
    es.indices.create(index=name, settings={"index": {"creation_date": 1700000000000}})
    with pytest.raises(BadRequestError, match="resource_already_exists_exception"):
        es.indices.create(index=name)
    settings = es.indices.get_settings(index=name)[name]["settings"]["index"]
    assert settings["creation_date"] == "1700000000000"
    assert es.cat.indices(index=name, format="json", h="health")[0]["health"] == "yellow"  # one node, one replica


def test_delete_takes_explicit_names_only(es: Elasticsearch) -> None:
    a, b = f"unit-{next(NAMES)}", f"unit-{next(NAMES)}"
    es.indices.create(index=a)
    es.indices.create(index=b)
    for expression in ("unit-*", "_all", "*", f"{a},unit-*", f"{a},-{b}"):
        with pytest.raises(BadRequestError, match="illegal_argument_exception") as err:
            es.indices.delete(index=expression)
        assert "Wildcard expressions or all indices are not allowed" in json.dumps(err.value.body)
    with pytest.raises(NotFoundError, match="index_not_found_exception"):
        es.indices.delete(index=[a, "unit-missing"])
    assert es.indices.exists(index=a)  # nothing of a failed delete happened
    assert es.indices.delete(index=[a, b, "unit-missing"], ignore_unavailable=True)["acknowledged"]
    assert not es.indices.exists(index=a) and not es.indices.exists(index=b)


def test_cat_indices(es: Elasticsearch) -> None:
    base = f"unit-cat{next(NAMES)}"
    for i, created in enumerate((1700000000000, 1600000000000)):
        es.indices.create(index=f"{base}-{i}", settings={"creation_date": created, "number_of_replicas": 0})
    es.index(index=f"{base}-0", document={"a": 1}, refresh=True)
    rows = es.cat.indices(
        index=f"{base}-*", format="json", h="index,docs.count,creation.date,health,status", s="creation.date"
    )
    assert [dict(r) for r in rows] == [
        {
            "index": f"{base}-1",
            "docs.count": "0",
            "creation.date": "1600000000000",
            "health": "green",
            "status": "open",
        },
        {
            "index": f"{base}-0",
            "docs.count": "1",
            "creation.date": "1700000000000",
            "health": "green",
            "status": "open",
        },
    ]
    assert es.cat.indices(index="unit-nothing-matches-*", format="json").body == []
    with pytest.raises(NotFoundError):
        es.cat.indices(index="unit-no-such-index", format="json")
    es.indices.close(index=f"{base}-0")
    (row,) = es.cat.indices(index=f"{base}-0", format="json", h="index,status,docs.count")
    assert (row["status"], row["docs.count"]) == ("close", None)
    text = es.cat.indices(index=f"{base}-*", h="index,status", v=True, s="index")
    assert text.body.splitlines()[0].split() == ["index", "status"]


# ------------------------------------------------------------------ documents and search


def test_writes_become_searchable_at_refresh(es: Elasticsearch) -> None:
    name = f"unit-{next(NAMES)}"
    es.indices.create(index=name, settings={"refresh_interval": "-1"})
    es.index(index=name, id="1", document={"agent_id": "a"})
    assert es.get(index=name, id="1")["found"]  # real-time GET
    assert es.count(index=name)["count"] == 0  # not searchable yet
    es.indices.refresh(index=name)
    assert es.count(index=name)["count"] == 1
    es.delete(index=name, id="1")
    assert es.count(index=name)["count"] == 1
    es.indices.refresh(index=name)
    assert es.count(index=name)["count"] == 0


def test_dynamic_mapping_follows_es(es: Elasticsearch) -> None:
    name = f"unit-{next(NAMES)}"
    es.index(
        index=name, document={"s": "Hello World", "n": 3, "d": "2025-01-02T03:04:05Z", "o": {"k": True}}, refresh=True
    )  # auto-creates the index
    props = es.indices.get_mapping(index=name)[name]["mappings"]["properties"]
    assert props["s"] == {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
    assert (props["n"]["type"], props["d"]["type"], props["o"]["properties"]["k"]["type"]) == (
        "long",
        "date",
        "boolean",
    )
    assert es.count(index=name, query={"term": {"s.keyword": "Hello World"}})["count"] == 1
    with pytest.raises(BadRequestError, match="document_parsing_exception"):
        es.index(index=name, document={"n": "not a number"})


@pytest.mark.parametrize(
    "query, expected",
    [
        pytest.param({"match_all": {}}, {"0", "1", "2", "3"}, id="match_all"),
        pytest.param({"term": {"agent_id": "a.b"}}, {"0", "1"}, id="term"),
        pytest.param({"term": {"agent_id": {"value": "A.B", "case_insensitive": True}}}, {"0", "1"}, id="term-ci"),
        pytest.param({"term": {"tenant_id": 12}}, {"0", "2"}, id="term-number-on-keyword"),
        pytest.param({"terms": {"agent_id": ["c", "d"]}}, {"2", "3"}, id="terms"),
        pytest.param(
            {"range": {"@timestamp": {"gte": "2025-01-02", "lt": "2025-01-04T00:00:00Z"}}}, {"1", "2"}, id="range-iso"
        ),
        pytest.param(
            {"range": {"@timestamp": {"lt": "2025-01-02T08:00:00", "time_zone": "Asia/Singapore"}}},
            {"0"},
            id="range-time-zone",
        ),
        pytest.param({"range": {"@timestamp": {"lt": 1735776000000}}}, {"0"}, id="range-epoch-millis"),
        pytest.param({"range": {"n": {"gt": 1, "lte": 3}}}, {"2", "3"}, id="range-long"),
        pytest.param({"exists": {"field": "n"}}, {"0", "1", "2", "3"}, id="exists"),
        pytest.param({"ids": {"values": ["1", "3"]}}, {"1", "3"}, id="ids"),
        pytest.param(
            {"bool": {"filter": [{"term": {"tenant_id": "12"}}], "must_not": [{"term": {"agent_id": "c"}}]}},
            {"0"},
            id="bool-filter-must-not",
        ),
        pytest.param(
            {"bool": {"should": [{"term": {"agent_id": "c"}}, {"term": {"agent_id": "d"}}]}},
            {"2", "3"},
            id="bool-should",
        ),
        pytest.param(
            {"bool": {"filter": [{"term": {"tenant_id": "12"}}], "should": [{"term": {"agent_id": "zz"}}]}},
            {"0", "2"},
            id="should-optional-with-filter",
        ),
        pytest.param(
            {
                "bool": {
                    "should": [{"term": {"agent_id": "a.b"}}, {"term": {"tenant_id": "12"}}],
                    "minimum_should_match": 2,
                }
            },
            {"0"},
            id="minimum-should-match",
        ),
        pytest.param({"term": {"unmapped": "x"}}, set(), id="unmapped-matches-nothing"),
    ],
)
def test_queries(es: Elasticsearch, index: str, query: dict[str, Any], expected: set[str]) -> None:
    load(
        es,
        index,
        [
            {"tenant_id": "12", "agent_id": "a.b", "@timestamp": "2025-01-01T00:00:00Z", "n": 0},
            {"tenant_id": "123", "agent_id": "a.b", "@timestamp": "2025-01-02T00:00:00Z", "n": 1},
            {"tenant_id": "12", "agent_id": "c", "@timestamp": "2025-01-03T12:00:00+08:00", "n": 2},
            {"tenant_id": "1", "agent_id": ["d", "e"], "@timestamp": "2025-01-05", "n": 3},
        ],
    )
    hits = es.search(index=index, query=query, size=100)["hits"]["hits"]
    assert {h["_id"] for h in hits} == expected
    assert es.count(index=index, query=query)["count"] == len(expected)


def test_search_sorts_pages_and_caps_totals(es: Elasticsearch, index: str) -> None:
    load(es, index, [{"n": n, "agent_id": f"a{n}"} for n in (3, 1, 2)])
    resp = es.search(index=index, sort=[{"n": "desc"}], size=2, track_total_hits=2)
    assert [h["_source"]["n"] for h in resp["hits"]["hits"]] == [3, 2]
    assert resp["hits"]["total"] == {"value": 2, "relation": "gte"}
    by_param = es.perform_request("GET", f"/{index}/_search", params={"sort": "n:asc", "size": "1"})
    assert by_param["hits"]["hits"][0]["_source"]["n"] == 1
    with pytest.raises(BadRequestError, match="Result window is too large"):
        es.search(index=index, from_=9_999, size=2)


def test_source_filtering(es: Elasticsearch, index: str) -> None:
    load(es, index, [{"agent_id": "a", "n": 1, "o": {"k": 1, "j": 2}}])
    (hit,) = es.search(index=index, source=["agent_id", "o.k", "missing"])["hits"]["hits"]
    assert hit["_source"] == {"agent_id": "a", "o": {"k": 1}}
    assert "_source" not in es.search(index=index, source=False)["hits"]["hits"][0]
    with pytest.raises(BadRequestError, match="does not implement"):
        es.search(index=index, source=["o.*"])


def test_bulk_items(es: Elasticsearch, index: str) -> None:
    """Item failures are per item, in a 200 with ``errors: true`` (ES's bulk API reference)."""
    resp = es.bulk(
        operations=[
            {"create": {"_index": index, "_id": "1"}},
            {"agent_id": "a"},
            {"create": {"_index": index, "_id": "1"}},
            {"agent_id": "a"},
            {"delete": {"_index": index, "_id": "nope"}},
            {"index": {"_index": index}},
            {"n": "not a number"},
        ]
    )
    statuses = [next(iter(item.values()))["status"] for item in resp["items"]]
    assert resp["errors"] and statuses == [201, 409, 404, 400]
    assert resp["items"][3]["index"]["error"]["type"] == "document_parsing_exception"
    with pytest.raises(BadRequestError, match="does not implement bulk update"):  # refused whole, nothing written
        es.bulk(
            operations=[
                {"index": {"_index": index, "_id": "2"}},
                {},
                {"update": {"_index": index, "_id": "1"}},
                {},
            ]
        )
    assert not es.exists(index=index, id="2")


# ------------------------------------------------------------------ delete by query and tasks


def test_delete_by_query_sync_and_as_a_task(es: Elasticsearch, index: str) -> None:
    load(es, index, [{"agent_id": "x" if i % 2 else "y", "tenant_id": "7"} for i in range(10)])
    resp = es.delete_by_query(index=index, query={"term": {"agent_id": "x"}}, refresh=True, scroll_size=2)
    assert (resp["deleted"], resp["batches"], resp["failures"]) == (5, 3, [])
    task = es.delete_by_query(
        index=index,
        query={"match_all": {}},
        conflicts="proceed",
        slices="auto",
        wait_for_completion=False,
        refresh=True,
    )["task"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = es.tasks.get(task_id=task, wait_for_completion=True, timeout="5s")
        assert done["completed"] and done["response"]["deleted"] == 5
        assert done["task"]["description"] == f"delete-by-query [{index}]"  # no query in it
        assert es.count(index=index)["count"] == 0
        # The result is kept in .tasks until deleted, as in ES; then the task is unknown.
        with pytest.warns(Warning, match="system indices"):
            es.delete(index=".tasks", id=task)
        with pytest.raises(NotFoundError, match="resource_not_found_exception"):
            es.tasks.get(task_id=task)


def test_delete_by_query_version_conflicts(es: Elasticsearch, index: str) -> None:
    load(es, index, [{"agent_id": "x"} for _ in range(3)])
    # proceed: the changed document is skipped, the rest go. abort: the batch with the conflict
    # completes its other items (as a bulk does), then the task stops: one per batch here.
    for conflicts, expect_deleted, scroll_size in (("proceed", 2, 10), ("abort", 0, 1)):
        es.indices.refresh(index=index)
        with srv.CLUSTER.lock:
            srv.CLUSTER.faults.append(srv.Fault(status=0, count=1, stage="delete_by_query_delay", delay=0.4))
        task = es.delete_by_query(
            index=index,
            query={"term": {"agent_id": "x"}},
            conflicts=conflicts,
            scroll_size=scroll_size,
            wait_for_completion=False,
        )["task"]
        time.sleep(0.15)
        es.index(index=index, id="0", document={"agent_id": "x"})  # changed while the task waits
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            response = es.tasks.get(task_id=task, wait_for_completion=True, timeout="5s")["response"]
        assert response["version_conflicts"] == 1
        assert response["deleted"] == expect_deleted
        assert bool(response["failures"]) == (conflicts == "abort")
        if conflicts == "proceed":
            load(es, index, [{"agent_id": "x"} for _ in range(3)])


def test_delete_by_query_item_failures_abort(es: Elasticsearch, index: str) -> None:
    load(es, index, [{"agent_id": "x"} for _ in range(4)])
    with srv.CLUSTER.lock:
        srv.CLUSTER.faults.append(srv.Fault(status=429, count=1, stage="delete_by_query"))
    resp = es.delete_by_query(index=index, query={"match_all": {}}, conflicts="proceed", scroll_size=2)
    assert resp["deleted"] == 1 and resp["batches"] == 1
    assert resp["failures"][0]["cause"]["type"] == "es_rejected_execution_exception"


# ------------------------------------------------------------------ faults


def test_http_faults_hit_matching_requests_only(es: Elasticsearch, index: str, server: str) -> None:
    status, _, _ = raw(
        server,
        "POST",
        "/_standin/faults",
        {"Content-Type": "application/json"},
        json.dumps({"status": 429, "count": 2, "paths": f"/{index}/_count"}).encode(),
    )
    assert status == 200
    assert es.info()["tagline"]  # another path: untouched
    for _ in range(2):
        with pytest.raises(ApiError) as err:
            es.count(index=index)
        assert err.value.meta.status == 429
        assert err.value.body["error"]["type"] == "es_rejected_execution_exception"
        assert err.value.meta.headers["x-elastic-product"] == "Elasticsearch"
    assert es.count(index=index)["count"] == 0
    with pytest.raises(ConflictError):
        es.create(index=index, id="1", document={})
        es.create(index=index, id="1", document={})


# ------------------------------------------------------------------ ensure()


def test_elasticsearch_url_means_a_real_cluster_and_nothing_started(monkeypatch: pytest.MonkeyPatch) -> None:
    from devservers import connections, es_standin

    monkeypatch.setenv("ELASTICSEARCH_URL", "https://ret%40ops:p%3Aw%2Fd@es.example.internal:9243")
    endpoint = es_standin.ensure()
    assert (endpoint.host, endpoint.port, endpoint.owned) == ("es.example.internal", 9243, False)
    assert (endpoint.login, endpoint.password) == ("ret@ops", "p:w/d")
    assert endpoint.extra == {"kind": "real cluster", "scheme": "https"}
    conn = connections.airflow_connections({"elasticsearch": endpoint}, connections.TEST)
    assert conn["AIRFLOW_CONN_RETENTION_ELASTICSEARCH"] == (
        "elasticsearch://ret%40ops:p%3Aw%2Fd@es.example.internal:9243/https"
    )
    monkeypatch.setenv("ELASTICSEARCH_URL", "ftp://es.example.internal")
    with pytest.raises(ValueError, match="ELASTICSEARCH_URL"):
        es_standin.ensure()
