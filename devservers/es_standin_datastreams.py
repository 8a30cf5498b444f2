"""The stand-in's data streams and the composable index templates that make them (ES 8 REST API
reference: "Create or update index template", "Data streams", "Rollover").

- ``PUT|GET|DELETE /_index_template/{name}``: only templates with ``data_stream: {}`` are
  implemented (a template for plain indices would have to change index creation; refused);
  two templates of one priority with overlapping patterns are refused as ES refuses them.
- ``PUT|GET|DELETE /_data_stream/{name}``; a write to a name a data-stream template matches
  creates the stream (``op_type=create`` only, ``@timestamp`` required).
- ``POST /{stream}/_rollover``: a new write index ``.ds-{stream}-{yyyy.MM.dd}-{generation:06d}``;
  conditions are not implemented and are refused.
- The write index cannot be deleted (``es_standin_indices.delete_index``); reads, searches and
  delete-by-query on the stream reach every backing index (``Cluster.resolve``).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from devservers.es_standin_base import EsError, bad_request, index_not_found, unsupported
from devservers.es_standin_cluster import CLUSTER
from devservers.es_standin_http import Request, Response, ok, route


def _overlap(a: str, b: str) -> bool:
    """Whether two index patterns can match one name (ES's check, approximated by the fixed prefixes)."""
    pa, pb = a.split("*")[0], b.split("*")[0]
    if "*" not in a and "*" not in b:
        return a == b
    return pa.startswith(pb) or pb.startswith(pa)


@route("PUT|POST", "/_index_template/{name}")
def put_index_template(req: Request, name: str) -> Response:
    req.check_params(also={"create", "master_timeout", "cause"})
    body = req.json(required=True)
    extra = set(body) - {"index_patterns", "data_stream", "template", "priority", "_meta", "version"}
    if extra:
        raise unsupported(f"index template options {sorted(extra)} (supported: index_patterns, data_stream, template)")
    patterns = body.get("index_patterns")
    if isinstance(patterns, str):
        patterns = [patterns]
    if not patterns:
        raise bad_request("Validation Failed: 1: index patterns are missing;", "action_request_validation_exception")
    if "data_stream" not in body:
        raise unsupported("index templates without data_stream (the stand-in applies templates only to data streams)")
    if body["data_stream"] not in ({}, {"hidden": False}):
        raise unsupported(f"data_stream options {body['data_stream']}")
    inner = body.get("template") or {}
    if set(inner) - {"settings", "mappings"}:
        raise unsupported(f"template options {sorted(set(inner) - {'settings', 'mappings'})}")
    priority = int(body.get("priority", 0))
    with CLUSTER.lock:
        if req.flag("create") and name in CLUSTER.templates:
            raise bad_request(f"index template [{name}] already exists")
        for other, spec in CLUSTER.templates.items():
            clash = [p for p in patterns for q in spec["index_patterns"] if _overlap(p, q)]
            if other != name and clash and int(spec.get("priority", 0)) == priority:
                raise bad_request(
                    f"index template [{name}] has index patterns {patterns} matching patterns from existing "
                    f"templates [{other}] with patterns ({other} => {spec['index_patterns']}) that have the same "
                    f"priority [{priority}], multiple index templates may not match during index creation, please "
                    "use a different priority"
                )
        CLUSTER.templates[name] = {**copy.deepcopy(body), "index_patterns": list(patterns)}
    return ok({"acknowledged": True})


@route("GET", "/_index_template")
@route("GET", "/_index_template/{name}")
def get_index_template(req: Request, name: str | None = None) -> Response:
    req.check_params(also={"local", "master_timeout", "flat_settings"})
    with CLUSTER.lock:
        chosen = {n: t for n, t in CLUSTER.templates.items() if name is None or _glob(name, n)}
        if name is not None and "*" not in name and not chosen:
            raise EsError(404, "resource_not_found_exception", f"index template matching [{name}] not found")
        return ok({"index_templates": [{"name": n, "index_template": copy.deepcopy(t)} for n, t in chosen.items()]})


@route("DELETE", "/_index_template/{name}")
def delete_index_template(req: Request, name: str) -> Response:
    req.check_params(also={"master_timeout", "timeout"})
    with CLUSTER.lock:
        if name not in CLUSTER.templates:
            raise EsError(404, "index_template_missing_exception", f"index_template [{name}] missing")
        in_use = [s for s in CLUSTER.data_streams if (CLUSTER.stream_template(s) or ("",))[0] == name]
        if in_use:
            raise bad_request(
                f"unable to remove composable templates [{name}] as they are in use by a data streams {in_use}"
            )
        del CLUSTER.templates[name]
    return ok({"acknowledged": True})


def _glob(pattern: str, name: str) -> bool:
    return any(re.fullmatch(".*".join(map(re.escape, p.split("*"))), name) for p in pattern.split(","))


@route("PUT", "/_data_stream/{name}")
def create_data_stream(req: Request, name: str) -> Response:
    req.check_params(also={"master_timeout", "timeout"})
    with CLUSTER.lock:
        CLUSTER.create_data_stream(name)
    return ok({"acknowledged": True})


@route("GET", "/_data_stream")
@route("GET", "/_data_stream/{name}")
def get_data_stream(req: Request, name: str | None = None) -> Response:
    req.check_params(also={"expand_wildcards", "include_defaults", "master_timeout", "verbose"})
    with CLUSTER.lock:
        names = [s for s in CLUSTER.data_streams if name in (None, "*", "_all") or _glob(name, s)]
        if name is not None and "*" not in name and name != "_all" and not names:
            raise index_not_found(name)
        return ok({"data_streams": [_stream_view(s) for s in names]})


def _stream_view(stream: str) -> dict[str, Any]:
    backing = [CLUSTER.indices[n] for n in CLUSTER.data_streams[stream]]
    template = CLUSTER.stream_template(stream)
    return {
        "name": stream,
        "timestamp_field": {"name": "@timestamp"},
        "indices": [{"index_name": ix.name, "index_uuid": ix.uuid} for ix in backing],
        "generation": int(backing[-1].name.rsplit("-", 1)[1]) if backing else 0,
        "status": "YELLOW" if any(ix.health == "yellow" for ix in backing) else "GREEN",
        "template": template[0] if template else None,
        "hidden": False,
        "system": False,
        "allow_custom_routing": False,
        "replicated": False,
    }


@route("DELETE", "/_data_stream/{name}")
def delete_data_stream(req: Request, name: str) -> Response:
    req.check_params(also={"expand_wildcards", "master_timeout"})
    if "*" in name or name == "_all":
        raise bad_request("Wildcard expressions or all indices are not allowed")
    with CLUSTER.lock:
        names = [n for n in name.split(",") if n]
        missing = [n for n in names if n not in CLUSTER.data_streams]
        if missing:
            raise index_not_found(missing[0])
        for stream in names:
            for backing in CLUSTER.data_streams.pop(stream):
                CLUSTER.indices.pop(backing, None)
    return ok({"acknowledged": True})


@route("POST", "/{index}/_rollover")
def rollover(req: Request, index: str) -> Response:
    req.check_params(also={"master_timeout", "timeout", "wait_for_active_shards", "dry_run"})
    if req.flag("dry_run") or req.json():
        raise unsupported("rollover conditions and dry_run")
    with CLUSTER.lock:
        if index not in CLUSTER.data_streams:
            raise unsupported(f"rolling over [{index}], which is not a data stream (aliases do not roll over here)")
        old, new = CLUSTER.roll_over(index)
    return ok(
        {
            "acknowledged": True,
            "shards_acknowledged": True,
            "old_index": old,
            "new_index": new,
            "rolled_over": True,
            "dry_run": False,
            "lazy": False,
            "conditions": {},
        }
    )
