"""Where Elasticsearch 8 refuses, the stand-in refuses the same way and writes nothing (issue 15).

Each case names the status and error ``type`` ES gives, and where that was checked in ES's source
(``elastic/elasticsearch``) or its REST API tests:

- ``_bulk``: ``action/bulk/BulkRequestParser.java`` parses every action line before anything runs
  (``IllegalArgumentException`` -> 400 ``illegal_argument_exception``); ``BulkRequest.validate()``
  then validates every item (400 ``action_request_validation_exception``); ``IndexRouting.process``
  fails one item whose ``_id`` is ``""``; ``DocWriteRequest.validateDocIdLength``: over 512 bytes.
- ``_delete_by_query``: ``modules/reindex/src/yamlRestTest/.../delete_by_query/20_validation.yml``
  and ``index/reindex/AbstractBulkByScrollRequest.java`` (``setMaxDocs``, ``validate``).
- ``_cat/indices?health=``: ``ClusterHealthStatus.fromString`` (400 ``illegal_argument_exception``).
- mappings: ``ObjectMapper.validateFieldName`` wrapped by the mapping parser (400 ``mapper_parsing_exception``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from elasticsearch import BadRequestError, Elasticsearch

pytest.register_assert_rewrite("tests.unit.es_standin_harness")
from tests.unit.es_standin_harness import NAMES, load, raw  # noqa: E402 - after the rewrite hook

pytest_plugins = ["tests.unit.es_standin_harness"]  # its fixtures: server, es, index

pytestmark = pytest.mark.timeout(60)


def _refused(call: Any, status: int, type_: str, reason: str) -> dict[str, Any]:
    with pytest.raises(BadRequestError) as err:
        call()
    error = err.value.body["error"]
    assert (err.value.meta.status, error["type"]) == (status, type_), error
    assert reason in error["reason"], error["reason"]
    return error


# ------------------------------------------------------------------ _bulk: the whole body first


@pytest.mark.parametrize(
    "bad_line, type_, reason",
    [
        pytest.param(
            {"bogus": {"_id": "x"}},
            "illegal_argument_exception",
            "Malformed action/metadata line [6], expected field [create], [delete], [index] or [update] "
            "but found [bogus]",
            id="400-illegal_argument_exception-unknown-action",
        ),
        pytest.param(
            {"index": {"_id": "x", "colour": "red"}},
            "illegal_argument_exception",
            "Action/metadata line [6] contains an unknown parameter [colour]",
            id="400-illegal_argument_exception-unknown-metadata",
        ),
        pytest.param(
            {"index": {"_id": ["x"]}},
            "illegal_argument_exception",
            "Malformed action/metadata line [6], expected a simple value for field [_id] but found [START_ARRAY]",
            id="400-illegal_argument_exception-array-metadata",
        ),
        pytest.param(
            {"delete": {}},
            "action_request_validation_exception",
            "Validation Failed: 1: id is missing;",
            id="400-action_request_validation_exception-delete-without-id",
        ),
        pytest.param(
            {"index": {"_id": "x" * 513}},
            "action_request_validation_exception",
            "is too long, must be no longer than 512 bytes but was: 513",
            id="400-action_request_validation_exception-id-over-512-bytes",
        ),
    ],
)
def test_bulk_with_an_invalid_line_is_refused_whole_and_writes_nothing(
    es: Elasticsearch, index: str, bad_line: dict[str, Any], type_: str, reason: str
) -> None:
    load(es, index, [{"agent_id": "keep"}])  # id "0"
    operations: list[Any] = [
        {"index": {"_id": "1"}},
        {"agent_id": "a"},
        {"delete": {"_id": "0"}},
        {"create": {"_id": "2"}},  # line 4; the bad action is on line 6
        {"agent_id": "b"},
        bad_line,
    ]
    if "delete" not in bad_line:
        operations.append({"agent_id": "c"})
    _refused(lambda: es.bulk(index=index, operations=operations, refresh=True), 400, type_, reason)
    es.indices.refresh(index=index)
    assert es.count(index=index)["count"] == 1 and es.exists(index=index, id="0")  # nothing written or deleted
    assert not es.exists(index=index, id="1") and not es.exists(index=index, id="2")


def test_bulk_lists_every_invalid_item_in_one_refusal(es: Elasticsearch, index: str) -> None:
    """400 action_request_validation_exception, numbered like ES's ActionRequestValidationException."""
    error = _refused(
        lambda: es.bulk(operations=[{"delete": {"_id": "1"}}, {"delete": {"_index": index}}]),
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: index is missing;2: id is missing;",
    )
    assert error["reason"] == "Validation Failed: 1: index is missing;2: id is missing;"


def test_bulk_empty_id_fails_its_item_only(es: Elasticsearch, index: str) -> None:
    """IndexRouting.process: an item with ``_id: ""`` fails alone, 400 illegal_argument_exception."""
    resp = es.bulk(
        index=index,
        operations=[{"index": {"_id": ""}}, {"agent_id": "a"}, {"index": {"_id": "ok"}}, {"agent_id": "b"}],
        refresh=True,
    )
    first, second = (item["index"] for item in resp["items"])
    assert resp["errors"] and first["status"] == 400
    assert first["error"]["type"] == "illegal_argument_exception"
    assert first["error"]["reason"] == "if _id is specified it must not be empty"
    assert second["status"] == 201 and es.count(index=index)["count"] == 1


def test_bulk_delete_with_empty_id_is_refused_whole(es: Elasticsearch, index: str) -> None:
    """DeleteRequest.validate uses Strings.isEmpty: 400 action_request_validation_exception "id is missing"."""
    _refused(
        lambda: es.bulk(index=index, operations=[{"delete": {"_id": ""}}]),
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: id is missing;",
    )


def test_bulk_without_actions_is_refused(server: str) -> None:
    """BulkRequest.validate: 400 action_request_validation_exception "no requests added"."""
    status, _, payload = raw(server, "POST", "/_bulk", {"Content-Type": "application/x-ndjson"}, b"\n")
    assert status == 400 and payload["error"]["type"] == "action_request_validation_exception"
    assert "no requests added" in payload["error"]["reason"]


def test_index_api_refuses_an_id_over_512_bytes(es: Elasticsearch, index: str) -> None:
    """IndexRequest.validate: 400 action_request_validation_exception; 512 bytes is still allowed."""
    long_id = "é" * 257  # 514 bytes in UTF-8, 257 characters: ES counts bytes
    _refused(
        lambda: es.index(index=index, id=long_id, document={"agent_id": "a"}),
        400,
        "action_request_validation_exception",
        f"Validation Failed: 1: id [{long_id}] is too long, must be no longer than 512 bytes but was: 514;",
    )
    assert es.index(index=index, id="x" * 512, document={"agent_id": "a"})["result"] == "created"


# ------------------------------------------------------------------ _delete_by_query validation


@pytest.mark.parametrize(
    "params, body_extra, type_, reason",
    [
        pytest.param(
            {"max_docs": "-4"},
            {},
            "illegal_argument_exception",
            "[max_docs] parameter cannot be negative, found [-4]",
            id="400-illegal_argument_exception-max_docs-negative-in-url",
        ),
        pytest.param(
            {},
            {"max_docs": -4},
            "illegal_argument_exception",
            "[max_docs] parameter cannot be negative, found [-4]",
            id="400-illegal_argument_exception-max_docs-negative-in-body",
        ),
        pytest.param(
            {"max_docs": "1", "slices": "2"},
            {},
            "illegal_argument_exception",
            "[max_docs] should be >= [slices]",
            id="400-illegal_argument_exception-max_docs-below-slices",
        ),
        pytest.param(
            {"requests_per_second": ""},
            {},
            "illegal_argument_exception",
            "[requests_per_second] must be a float greater than 0. Use -1 to disable throttling.",
            id="400-illegal_argument_exception-requests_per_second-empty",
        ),
        pytest.param(
            {"requests_per_second": "unlimited"},
            {},
            "illegal_argument_exception",
            "[requests_per_second] must be a float greater than 0. Use -1 to disable throttling.",
            id="400-illegal_argument_exception-requests_per_second-unlimited",
        ),
        pytest.param(
            {"requests_per_second": "-12"},
            {},
            "illegal_argument_exception",
            "[requests_per_second] must be a float greater than 0. Use -1 to disable throttling.",
            id="400-illegal_argument_exception-requests_per_second-negative",
        ),
        pytest.param(
            {"scroll_size": "0"},
            {},
            "action_request_validation_exception",
            "[size] cannot be [0] in a scroll context",
            id="400-action_request_validation_exception-scroll_size-0",
        ),
    ],
)
def test_delete_by_query_refuses_like_es_and_deletes_nothing(
    es: Elasticsearch, index: str, params: dict[str, str], body_extra: dict[str, Any], type_: str, reason: str
) -> None:
    load(es, index, [{"agent_id": "x"} for _ in range(3)])
    _refused(
        lambda: es.perform_request(
            "POST",
            f"/{index}/_delete_by_query",
            params=params,
            headers={"content-type": "application/json", "accept": "application/json"},
            body={"query": {"match_all": {}}, **body_extra},
        ),
        400,
        type_,
        reason,
    )
    es.indices.refresh(index=index)
    assert es.count(index=index)["count"] == 3


def test_delete_by_query_throttle_values_es_accepts(es: Elasticsearch, index: str) -> None:
    """-1 (and Java's "Infinity") disable throttling; a positive float throttles (200 both)."""
    load(es, index, [{"agent_id": "x"} for _ in range(4)])
    for rps in ("-1", "Infinity", "1000.5"):
        resp = es.perform_request(
            "POST",
            f"/{index}/_delete_by_query",
            params={"requests_per_second": rps, "max_docs": "1", "refresh": "true"},
            headers={"content-type": "application/json", "accept": "application/json"},
            body={"query": {"match_all": {}}},
        )
        assert resp["deleted"] == 1
        assert resp["requests_per_second"] == (1000.5 if rps == "1000.5" else -1.0)


# ------------------------------------------------------------------ _cat/indices, mappings


def test_cat_indices_unknown_health_is_400(es: Elasticsearch, index: str) -> None:
    """ClusterHealthStatus.fromString: 400 illegal_argument_exception, not an empty list."""
    _refused(
        lambda: es.cat.indices(index=index, health="purple", format="json"),
        400,
        "illegal_argument_exception",
        "unknown cluster health status [purple]",
    )
    assert [r["index"] for r in es.cat.indices(index=index, health="GREEN", format="json")] == [index]


@pytest.mark.parametrize(
    "properties, reason",
    [
        pytest.param({"": {"type": "keyword"}}, "field name cannot be an empty string", id="400-empty-name"),
        pytest.param(
            {"o": {"properties": {"": {"type": "long"}}}}, "field name cannot be an empty string", id="400-empty-nested"
        ),
        pytest.param(
            {"s": {"type": "text", "fields": {"": {"type": "keyword"}}}},
            "field name cannot be an empty string",
            id="400-empty-multi-field",
        ),
        pytest.param({"  ": {"type": "keyword"}}, "field name cannot contain only whitespaces", id="400-blank-name"),
    ],
)
def test_mapping_with_an_empty_field_name_is_refused(
    es: Elasticsearch, properties: dict[str, Any], reason: str
) -> None:
    """ObjectMapper.validateFieldName: 400 mapper_parsing_exception "Failed to parse mapping: ..."."""
    name = f"unit-{next(NAMES)}"
    error = _refused(
        lambda: es.indices.create(index=name, mappings={"properties": properties}),
        400,
        "mapper_parsing_exception",
        f"Failed to parse mapping: {reason}",
    )
    assert error["caused_by"]["type"] == "illegal_argument_exception"
    assert not es.indices.exists(index=name)


def test_document_with_an_empty_field_name_is_refused(es: Elasticsearch, index: str) -> None:
    """DocumentParser: 400 document_parsing_exception, caused by illegal_argument_exception."""
    error = _refused(
        lambda: es.index(index=index, id="1", document={"": "x"}),
        400,
        "document_parsing_exception",
        "Field name cannot be an empty string",
    )
    assert error["caused_by"]["type"] == "illegal_argument_exception"
    assert not es.exists(index=index, id="1")
    assert json.dumps(es.indices.get_mapping(index=index)[index]["mappings"]).count('""') == 0


# ------------------------------------------------------------------ implemented: settings, match, total hits


def test_get_settings_of_all_indices_and_by_name(es: Elasticsearch, index: str) -> None:
    """GET /_settings and GET /{index}/_settings/{name} (ES REST API reference, "Get index settings":
    names are wildcard patterns over the full setting keys; an index matching none is left out, 200)."""
    assert es.indices.get_settings()[index]["settings"]["index"]["number_of_replicas"] == "0"
    got = es.indices.get_settings(index=index, name="index.number_*", flat_settings=True)
    assert got.body == {index: {"settings": {"index.number_of_replicas": "0", "index.number_of_shards": "1"}}}
    both = es.indices.get_settings(index=index, name="index.refresh_interval,index.uuid", flat_settings=True)
    assert set(both[index]["settings"]) == {"index.uuid"}
    assert es.indices.get_settings(index=index, name="index.no_such_*").body == {}
    nested = es.indices.get_settings(name="index.number_of_shards")[index]["settings"]
    assert nested == {"index": {"number_of_shards": "1"}}


@pytest.mark.parametrize(
    "query, expected",
    [
        pytest.param({"match": {"agent_id": "a.b"}}, {"0", "1"}, id="200-match-keyword"),
        pytest.param({"match": {"agent_id": {"query": "a.b", "operator": "and"}}}, {"0", "1"}, id="200-match-options"),
        pytest.param({"match": {"agent_id": "A.B"}}, set(), id="200-match-keyword-is-exact"),
        pytest.param({"match": {"n": 2}}, {"2"}, id="200-match-long"),
        pytest.param({"match": {"unmapped": "x"}}, set(), id="200-match-unmapped"),
    ],
)
def test_match_on_fields_that_are_not_analyzed(
    es: Elasticsearch, index: str, query: dict[str, Any], expected: set[str]
) -> None:
    """ES's match query reference: on a keyword field the whole value is one token, so match is exact."""
    load(es, index, [{"agent_id": "a.b", "n": 0}, {"agent_id": ["x", "a.b"], "n": 1}, {"agent_id": "c", "n": 2}])
    assert {h["_id"] for h in es.search(index=index, query=query)["hits"]["hits"]} == expected
    assert es.count(index=index, query=query)["count"] == len(expected)


def test_match_refusals(es: Elasticsearch, index: str) -> None:
    """A text field needs analysis (the stand-in's own 400); a bad operator is ES's 400 parsing_exception."""
    _refused(lambda: es.count(index=index, query={"match": {"msg": "x"}}), 400, "illegal_argument_exception", "text")
    _refused(
        lambda: es.count(index=index, query={"match": {"agent_id": {"query": "x", "operator": "xor"}}}),
        400,
        "parsing_exception",
        "Unknown operator [xor]",
    )


def test_rest_total_hits_as_int(es: Elasticsearch, index: str) -> None:
    """RestSearchAction: hits.total is a plain number (exact count; -1 untracked); a capped count is 400
    illegal_argument_exception."""
    load(es, index, [{"n": n} for n in range(3)])

    def search(**params: str) -> Any:
        return es.perform_request(
            "GET",
            f"/{index}/_search",
            params={"rest_total_hits_as_int": "true", "size": "1", **params},
            headers={"accept": "application/json"},
        )

    assert search()["hits"]["total"] == 3
    assert search(track_total_hits="false")["hits"]["total"] == -1
    _refused(
        lambda: search(track_total_hits="2"),
        400,
        "illegal_argument_exception",
        "[rest_total_hits_as_int] cannot be used if the tracking of total hits is not accurate, got 2",
    )


# ------------------------------------------------------------------ rethrottle


def test_rethrottle_a_running_delete_by_query(es: Elasticsearch, index: str) -> None:
    """POST /_delete_by_query/{task}/_rethrottle (ES's delete-by-query reference, "Change throttling"):
    200 with the task list; -1 unthrottles, and the task then finishes; no requests_per_second or an
    unknown task is refused (400 illegal_argument_exception, 404 resource_not_found_exception)."""
    import time
    import warnings

    from elasticsearch import NotFoundError

    load(es, index, [{"agent_id": "x"} for _ in range(6)])
    task = es.delete_by_query(
        index=index, query={"match_all": {}}, scroll_size=2, requests_per_second=0.5, wait_for_completion=False
    )["task"]  # 2 documents a batch at 0.5/s: 4 s a batch, 12 s in all
    time.sleep(0.2)
    resp = es.delete_by_query_rethrottle(task_id=task, requests_per_second=-1)
    (node,) = resp["nodes"].values()
    assert node["tasks"][task]["status"]["requests_per_second"] == -1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = es.tasks.get(task_id=task, wait_for_completion=True, timeout="8s")
    assert done["completed"] and done["response"]["deleted"] == 6
    assert done["response"]["throttled_millis"] < 2000  # sped up at once, not after the 4 s batch wait
    _refused(
        lambda: es.perform_request(
            "POST", f"/_delete_by_query/{task}/_rethrottle", headers={"accept": "application/json"}
        ),
        400,
        "illegal_argument_exception",
        "requests_per_second is a required parameter",
    )
    with pytest.raises(NotFoundError, match="resource_not_found_exception"):
        es.delete_by_query_rethrottle(task_id=task, requests_per_second=10)
