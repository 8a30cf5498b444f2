"""Fixtures and helpers for the Elasticsearch stand-in's unit tests: an in-process server on an
ephemeral port, the official client against it, a fresh index per test."""

from __future__ import annotations

import http.client
import itertools
import json
import threading
from http.server import ThreadingHTTPServer
from typing import Any, Iterator

import pytest
from elasticsearch import Elasticsearch

from devservers import es_standin_server as srv

NAMES = itertools.count(1)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), srv.Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def es(server: str) -> Iterator[Elasticsearch]:
    client = Elasticsearch(server, request_timeout=10, max_retries=0, retry_on_status=())
    yield client
    with srv.CLUSTER.lock:
        srv.CLUSTER.faults = []
    client.close()


@pytest.fixture
def index(es: Elasticsearch) -> str:
    """A fresh index with keyword/date/long/text fields and no replicas."""
    name = f"unit-{next(NAMES)}"
    es.indices.create(
        index=name,
        settings={"number_of_replicas": 0},
        mappings={
            "properties": {
                "tenant_id": {"type": "keyword"},
                "agent_id": {"type": "keyword"},
                "@timestamp": {"type": "date"},
                "n": {"type": "long"},
                "msg": {"type": "text"},
            }
        },
    )
    return name


def raw(
    server: str, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], Any]:
    host, port = server.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict(resp.headers), (json.loads(data) if data and method != "HEAD" else None)


def load(es: Elasticsearch, index: str, docs: list[dict[str, Any]]) -> None:
    ops: list[dict[str, Any]] = []
    for i, doc in enumerate(docs):
        ops += [{"index": {"_index": index, "_id": str(i)}}, doc]
    assert not es.bulk(operations=ops, refresh=True)["errors"]
