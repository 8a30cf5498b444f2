"""The stand-in's document APIs: index, get, delete, ``_bulk``."""

from __future__ import annotations

import base64
import copy
import time
import uuid
from typing import Any

from devservers.es_standin_base import EsError, bad_request, index_not_found, unsupported
from devservers.es_standin_bulk import BulkItem, doc_id_error, parse_bulk, parse_source, validation_failed
from devservers.es_standin_cluster import CLUSTER
from devservers.es_standin_http import Request, Response, ok, route
from devservers.es_standin_index import Doc, Index

# -- documents


def _refresh_param(req: Request) -> bool:
    value = req.param("refresh")
    if value is None or value == "false":
        return False
    if value in ("", "true", "wait_for"):
        return True  # wait_for: visible on return, which a refresh gives too
    raise bad_request(f"Unknown value for refresh: [{value}].")


def _write_response(ix: Index, doc: Doc, result: str, forced_refresh: bool) -> dict[str, Any]:
    body = {
        "_index": ix.name,
        "_id": doc.id,
        "_version": doc.version,
        "result": result,
        "_shards": {"total": 1 + ix.replicas, "successful": 1, "failed": 0},
        "_seq_no": doc.seq_no,
        "_primary_term": 1,
    }
    if forced_refresh:
        body["forced_refresh"] = True
    return body


def _new_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes[:15]).decode()


@route("PUT|POST", "/{index}/_doc/{doc_id}")
@route("POST", "/{index}/_doc")
@route("PUT|POST", "/{index}/_create/{doc_id}")
def index_doc(req: Request, index: str, doc_id: str | None = None) -> Response:
    op_type = req.param("op_type", "create" if "/_create/" in req.path else "index")
    if op_type not in ("index", "create"):
        raise bad_request(f"opType must be 'create' or 'index', found: [{op_type}]")
    refresh_now = _refresh_param(req)
    for unsupported_param in ("if_seq_no", "if_primary_term", "version", "version_type", "pipeline"):
        if req.param(unsupported_param) is not None:
            raise unsupported(f"the [{unsupported_param}] parameter")
    req.param("routing")  # one shard: routing changes nothing
    req.param("timeout")
    req.param("wait_for_active_shards")
    req.param("require_alias")
    req.check_params()
    id_error = doc_id_error(doc_id)
    if id_error:
        raise validation_failed([id_error])
    source = req.json(required=True)
    if not isinstance(source, dict):
        raise bad_request("failed to parse, document is empty", "document_parsing_exception")
    with CLUSTER.lock:
        CLUSTER.check_stream_write(index, op_type, source)
        ix = CLUSTER.index_for_write(index)
        doc, result = ix.put(doc_id or _new_id(), source, op_type=op_type)
        if refresh_now:
            ix.refresh()
    return ok(_write_response(ix, doc, result, refresh_now), 201 if result == "created" else 200)


@route("GET|HEAD", "/{index}/_doc/{doc_id}")
def get_doc(req: Request, index: str, doc_id: str) -> Response:
    req.param("realtime")
    req.param("routing")
    req.param("preference")
    if req.param("_source_includes") or req.param("_source_excludes") or req.param("stored_fields"):
        raise unsupported("source filtering on GET")
    req.check_params()
    with CLUSTER.lock:
        ix = CLUSTER.write_index(index)  # through an alias: its one (or write) index
        if ix is None:
            raise index_not_found(index)
        doc = ix.live.get(doc_id)
        if doc is None:
            return ok({"_index": ix.name, "_id": doc_id, "found": False}, 404)
        return ok(
            {
                "_index": ix.name,
                "_id": doc_id,
                "_version": doc.version,
                "_seq_no": doc.seq_no,
                "_primary_term": 1,
                "found": True,
                "_source": copy.deepcopy(doc.source),
            }
        )


@route("DELETE", "/{index}/_doc/{doc_id}")
def delete_doc(req: Request, index: str, doc_id: str) -> Response:
    refresh_now = _refresh_param(req)
    if_seq_no = req.integer("if_seq_no")
    req.param("if_primary_term")
    req.param("routing")
    req.param("timeout")
    req.param("wait_for_active_shards")
    req.check_params()
    with CLUSTER.lock:
        ix = CLUSTER.write_index(index)  # through an alias: its one (or write) index
        if ix is None:
            raise index_not_found(index)
        old = ix.delete(doc_id, if_seq_no=if_seq_no)
        if refresh_now:
            ix.refresh()
    result = "deleted" if old else "not_found"
    body = {
        "_index": ix.name,
        "_id": doc_id,
        "_version": (old.version + 1) if old else 1,
        "result": result,
        "_shards": {"total": 1 + ix.replicas, "successful": 1, "failed": 0},
        "_seq_no": ix.seq_no,
        "_primary_term": 1,
    }
    return ok(body, 200 if old else 404)


@route("POST|PUT", "/_bulk")
@route("POST|PUT", "/{index}/_bulk")
def bulk(req: Request, index: str | None = None) -> Response:
    refresh_now = _refresh_param(req)
    req.param("routing")
    req.param("timeout")
    req.param("wait_for_active_shards")
    req.param("require_alias")
    if req.param("pipeline") is not None:
        raise unsupported("ingest pipelines")
    req.check_params()
    started = time.monotonic()
    parsed = parse_bulk(req.raw, index)  # the whole body, before anything is written
    items: list[dict[str, Any]] = []
    touched: dict[str, Index] = {}
    errors = False
    with CLUSTER.lock:
        for op in parsed:
            item: dict[str, Any] = {"_index": op.index, "_id": op.doc_id}
            try:
                ix = _bulk_item(op, item)
                touched[ix.name] = ix
            except EsError as exc:
                errors = True
                item["status"] = exc.status
                item["error"] = {"type": exc.type, "reason": exc.reason, **exc.extra}
            items.append({op.action: item})
        if refresh_now:
            for ix in touched.values():
                ix.refresh()
    return ok({"errors": errors, "took": int((time.monotonic() - started) * 1000), "items": items})




def _bulk_item(op: BulkItem, item: dict[str, Any]) -> Index:
    """Execute one validated bulk item, filling its response ``item``; an EsError fails this item only."""
    assert op.index is not None  # parse_bulk refused items without an index
    if op.action == "delete":
        assert op.doc_id is not None
        ix = CLUSTER.indices.get(op.index)
        if ix is None:
            raise index_not_found(op.index)
        old = ix.delete(op.doc_id)
        item.update(
            {
                "_version": (old.version + 1) if old else 1,
                "result": "deleted" if old else "not_found",
                "_shards": {"total": 1 + ix.replicas, "successful": 1, "failed": 0},
                "_seq_no": ix.seq_no,
                "_primary_term": 1,
                "status": 200 if old else 404,
            }
        )
        return ix
    if op.doc_id == "":
        # IndexRouting.process: an item's own failure, not the request's (ES 8).
        raise bad_request("if _id is specified it must not be empty")
    source = parse_source(op)
    CLUSTER.check_stream_write(op.index, op.action, source)
    ix = CLUSTER.index_for_write(op.index)
    doc, result = ix.put(op.doc_id if op.doc_id is not None else _new_id(), source, op_type=op.action)
    item.clear()
    item.update(_write_response(ix, doc, result, False), status=201 if result == "created" else 200)
    return ix
