"""Data streams in the stand-in, against Elasticsearch 8's REST API reference ("Data streams",
"Create or update index template", "Create data stream", "Rollover", "Delete index": the write
index cannot be deleted). Each case names the status and error ``type`` ES returns."""

from __future__ import annotations

import time
from typing import Iterator

import pytest
from elasticsearch import BadRequestError, Elasticsearch, NotFoundError

pytest.register_assert_rewrite("tests.unit.es_standin_harness")
from tests.unit.es_standin_harness import NAMES  # noqa: E402 - after the rewrite hook

pytest_plugins = ["tests.unit.es_standin_harness"]  # its fixtures: server, es, index

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def stream(es: Elasticsearch) -> Iterator[str]:
    """A data-stream template for unit-ds-{n}-*, and the name of a stream it matches."""
    n = next(NAMES)
    es.indices.put_index_template(
        name=f"unit-ds-{n}",
        index_patterns=[f"unit-ds-{n}-*"],
        data_stream={},
        priority=100 + n,
        template={
            "mappings": {"properties": {"tenant_id": {"type": "keyword"}}},
            "settings": {"number_of_replicas": 0},
        },
    )
    yield f"unit-ds-{n}-logs"
    if es.indices.exists(index=f"unit-ds-{n}-logs"):
        es.indices.delete_data_stream(name=f"unit-ds-{n}-logs")
    es.indices.delete_index_template(name=f"unit-ds-{n}")


def test_a_write_creates_the_stream_and_reads_reach_it(es: Elasticsearch, stream: str) -> None:
    """201 create into a new stream; GET /_data_stream lists one backing index of generation 1."""
    es.create(index=stream, id="1", document={"@timestamp": "2025-01-01T00:00:00Z", "tenant_id": "12"}, refresh=True)
    (info,) = es.indices.get_data_stream(name=stream)["data_streams"]
    day = time.strftime("%Y.%m.%d", time.gmtime())
    assert [i["index_name"] for i in info["indices"]] == [f".ds-{stream}-{day}-000001"]
    assert info["generation"] == 1 and info["timestamp_field"] == {"name": "@timestamp"}
    assert es.count(index=stream, query={"term": {"tenant_id": "12"}})["count"] == 1
    prefix = stream.rsplit("-", 1)[0]
    assert es.count(index=f"{prefix}-*")["count"] == 1  # a wildcard over the stream name reaches its hidden indices


def test_stream_write_rules(es: Elasticsearch, stream: str) -> None:
    """400 illegal_argument_exception for op_type index; 400 document_parsing_exception without @timestamp."""
    with pytest.raises(BadRequestError, match="only write ops with an op_type of create"):
        es.index(index=stream, document={"@timestamp": "2025-01-01T00:00:00Z"})
    with pytest.raises(BadRequestError, match="document_parsing_exception"):
        es.create(index=stream, id="1", document={"tenant_id": "12"})
    resp = es.bulk(index=stream, operations=[{"index": {}}, {"@timestamp": "2025-01-01T00:00:00Z"}])
    assert resp["items"][0]["index"]["status"] == 400


def test_rollover_and_the_write_index(es: Elasticsearch, stream: str) -> None:
    """200 rollover to generation 2; deleting the write index is 400 illegal_argument_exception; an
    older backing index may be deleted by its name (200); DELETE /_data_stream removes the rest."""
    es.indices.create_data_stream(name=stream)
    es.create(index=stream, id="old", document={"@timestamp": "2025-01-01T00:00:00Z"}, refresh=True)
    resp = es.indices.rollover(alias=stream)
    assert resp["rolled_over"] and resp["new_index"].endswith("-000002") and resp["old_index"].endswith("-000001")
    es.create(index=stream, id="new", document={"@timestamp": "2025-02-01T00:00:00Z"}, refresh=True)
    assert es.search(index=stream, query={"ids": {"values": ["new"]}})["hits"]["hits"][0]["_index"] == resp["new_index"]
    with pytest.raises(BadRequestError) as err:
        es.indices.delete(index=resp["new_index"])
    assert err.value.body["error"]["type"] == "illegal_argument_exception"
    assert "is the write index for data stream" in err.value.body["error"]["reason"]
    es.indices.delete(index=resp["old_index"])
    assert es.count(index=stream)["count"] == 1
    (info,) = es.indices.get_data_stream(name=stream)["data_streams"]
    assert [i["index_name"] for i in info["indices"]] == [resp["new_index"]]
    es.indices.delete_data_stream(name=stream)
    assert not es.indices.exists(index=resp["new_index"])


def test_data_stream_refusals(es: Elasticsearch, stream: str) -> None:
    """400 resource_already_exists_exception twice; 400 illegal_argument_exception without a template;
    404 index_not_found_exception for an unknown stream; a template of equal priority overlapping: 400."""
    es.indices.create_data_stream(name=stream)
    with pytest.raises(BadRequestError, match="resource_already_exists_exception"):
        es.indices.create_data_stream(name=stream)
    with pytest.raises(BadRequestError, match="no matching index template found for data stream"):
        es.indices.create_data_stream(name="unit-no-template-stream")
    with pytest.raises(NotFoundError, match="index_not_found_exception"):
        es.indices.get_data_stream(name="unit-no-such-stream")
    (template,) = es.indices.get_index_template(name=stream.rsplit("-", 1)[0])["index_templates"]
    with pytest.raises(BadRequestError, match="same priority"):
        es.indices.put_index_template(
            name=f"unit-clash-{next(NAMES)}",
            index_patterns=template["index_template"]["index_patterns"],
            data_stream={},
            priority=template["index_template"]["priority"],
        )
    with pytest.raises(BadRequestError, match="does not implement"):  # plain-index templates: refused
        es.indices.put_index_template(name=f"unit-plain-{next(NAMES)}", index_patterns=["unit-plain-*"])
