"""The stand-in's read and delete-by-query APIs: ``_count``, ``_search``, ``_delete_by_query``, ``_tasks``."""

from __future__ import annotations

import copy
import re
import threading
import time
from typing import Any, Callable

from devservers.es_standin_base import MAX_RESULT_WINDOW, EsError, bad_request, parse_time_value, unsupported
from devservers.es_standin_cluster import CLUSTER, DeleteByQuery, Task
from devservers.es_standin_http import Request, Response, ok, route
from devservers.es_standin_index import Doc, Index, extract
from devservers.es_standin_indices import index_options
from devservers.es_standin_query import Predicate, compile_query, converter

# -- search, count, delete by query


def _predicates(indices: list[Index], query: Any) -> dict[str, Predicate]:
    return {ix.name: compile_query(query, ix) for ix in indices}


def _search_indices(req: Request, index: str | None) -> list[Index]:
    opts = index_options(req)
    return CLUSTER.resolve(index, **opts, skip_closed=True)


def _shards(indices: list[Index]) -> dict[str, int]:
    total = sum(ix.shards for ix in indices)
    return {"total": total, "successful": total, "skipped": 0, "failed": 0}


@route("POST|GET", "/_count")
@route("POST|GET", "/{index}/_count")
def count(req: Request, index: str | None = None) -> Response:
    if req.param("q") is not None:
        raise unsupported("the q= query-string parameter")
    req.param("routing")
    req.param("preference")
    req.param("ignore_throttled")
    req.param("min_score")
    body = req.json()
    extra = set(body) - {"query"}
    if extra:
        raise bad_request(f"request does not support [{sorted(extra)[0]}]", "parsing_exception")
    query = body.get("query", {"match_all": {}})
    with CLUSTER.lock:
        indices = _search_indices(req, index)
        req.check_params()
        predicates = _predicates(indices, query)
        n = 0
        for ix in indices:
            ix.maybe_refresh()
            predicate = predicates[ix.name]
            n += sum(1 for doc in ix.searchable.values() if predicate(doc))
    return ok({"count": n, "_shards": _shards(indices)})


def _sorted(matched: list[tuple[Index, Doc]], specs: list[Any], indices: list[Index]) -> list[tuple[Index, Doc]]:
    """Sort hits by field values (stable, last key first); documents without a value go last."""
    for spec in reversed(specs):
        name, desc = _sort_key(spec, indices)
        if name in ("_doc", "_score"):
            continue  # every hit scores 1.0, and _doc is the stored order
        field_of = {ix.name: ix.fields.get(name) for ix in indices}
        if any(f is not None and f.type == "text" for f in field_of.values()):
            raise bad_request(
                "Text fields are not optimised for operations that require per-document field data "
                "like aggregations and sorting, so these operations are disabled by default. Please use "
                f"a keyword field instead. [{name}]"
            )
        keyed: list[tuple[Any, tuple[Index, Doc]]] = []
        missing: list[tuple[Index, Doc]] = []
        for hit in matched:
            fspec = field_of[hit[0].name]
            values = []
            if fspec is not None:
                conv = converter(fspec)
                raws = extract(hit[1].source, tuple(fspec.source_path.split(".")))
                values = [v for v in (_safe(conv, raw) for raw in raws) if v is not None]
            if values:
                keyed.append((max(values) if desc else min(values), hit))
            else:
                missing.append(hit)
        keyed.sort(key=lambda pair: pair[0], reverse=desc)
        matched = [hit for _, hit in keyed] + missing
    return matched


def _sort_key(spec: Any, indices: list[Index]) -> tuple[str, bool]:
    if isinstance(spec, str):
        return spec, False
    if isinstance(spec, dict) and len(spec) == 1:
        ((name, opts),) = spec.items()
        order = opts if isinstance(opts, str) else (opts or {}).get("order", "asc")
        return name, order == "desc"
    raise bad_request("malformed sort", "parsing_exception")


@route("POST|GET", "/_search")
@route("POST|GET", "/{index}/_search")
def search(req: Request, index: str | None = None) -> Response:
    if req.param("q") is not None:
        raise unsupported("the q= query-string parameter")
    if req.param("scroll") is not None:
        raise unsupported("scroll searches")
    req.param("routing")
    req.param("preference")
    total_as_int = req.flag("rest_total_hits_as_int")
    req.param("typed_keys")
    req.param("ignore_throttled")
    body = req.json()
    for key in ("size", "from", "track_total_hits", "sort", "_source"):
        value = req.param(key)
        if value is None:
            continue
        if key in ("size", "from"):
            body[key] = int(value)
        elif key == "sort":  # ?sort=field:desc,other
            body[key] = [{f: {"order": o or "asc"}} for f, _, o in (part.partition(":") for part in value.split(","))]
        else:
            body[key] = value
    allowed = {"query", "size", "from", "track_total_hits", "sort", "_source", "seq_no_primary_term", "version"}
    extra = set(body) - allowed
    if extra:
        raise unsupported(f"search option [{sorted(extra)[0]}] (supported: {', '.join(sorted(allowed))})")
    size, offset = int(body.get("size", 10)), int(body.get("from", 0))
    if size < 0 or offset < 0:
        raise bad_request(
            "[from] parameter cannot be negative" if offset < 0 else "[size] parameter cannot be negative"
        )
    query = body.get("query", {"match_all": {}})
    started = time.monotonic()
    with CLUSTER.lock:
        indices = _search_indices(req, index)
        req.check_params()
        window = min(
            (int(ix.settings.get("index.max_result_window", MAX_RESULT_WINDOW)) for ix in indices),
            default=MAX_RESULT_WINDOW,
        )
        if offset + size > window:
            raise bad_request(
                f"Result window is too large, from + size must be less than or equal to: [{window}] "
                f"but was [{offset + size}].",
                "illegal_argument_exception",
            )
        predicates = _predicates(indices, query)
        matched: list[tuple[Index, Doc]] = []
        for ix in indices:
            ix.maybe_refresh()
            predicate = predicates[ix.name]
            matched.extend((ix, doc) for doc in ix.searchable.values() if predicate(doc))
        sort = body.get("sort")
        if sort:
            matched = _sorted(matched, sort if isinstance(sort, list) else [sort], indices)
        hits = []
        for ix, doc in matched[offset : offset + size]:
            hit: dict[str, Any] = {"_index": ix.name, "_id": doc.id, "_score": None if sort else 1.0}
            src = body.get("_source", True)
            if src in (True, "true"):
                hit["_source"] = copy.deepcopy(doc.source)
            elif src not in (False, "false"):
                if isinstance(src, dict):
                    if set(src) - {"includes"}:
                        raise unsupported("_source excludes")
                    src = src["includes"]
                hit["_source"] = _filter_source(doc.source, src if isinstance(src, list) else str(src).split(","))
            if body.get("seq_no_primary_term"):
                hit["_seq_no"], hit["_primary_term"] = doc.seq_no, 1
            if body.get("version"):
                hit["_version"] = doc.version
            hits.append(hit)
    total = len(matched)
    tth = body.get("track_total_hits", True if total_as_int else MAX_RESULT_WINDOW)
    hits_obj: dict[str, Any] = {}
    if total_as_int:
        # RestSearchAction: the 7.x form, a plain number, needs an exact count (or none: -1).
        if tth not in (True, "true", False, "false"):
            raise bad_request(
                f"[rest_total_hits_as_int] cannot be used if the tracking of total hits is not accurate, got {tth}"
            )
        hits_obj["total"] = total if tth in (True, "true") else -1
    elif tth in (True, "true"):
        hits_obj["total"] = {"value": total, "relation": "eq"}
    elif tth not in (False, "false"):
        cap = int(tth)
        hits_obj["total"] = {"value": min(total, cap), "relation": "eq" if total <= cap else "gte"}
    hits_obj["max_score"] = None if sort or not hits else 1.0
    hits_obj["hits"] = hits
    return ok(
        {
            "took": int((time.monotonic() - started) * 1000),
            "timed_out": False,
            "_shards": _shards(indices),
            "hits": hits_obj,
        }
    )


def _filter_source(source: dict[str, Any], paths: list[Any]) -> dict[str, Any]:
    """The parts of ``_source`` under the given field paths (dotted paths; no wildcards)."""
    out: dict[str, Any] = {}
    for path in paths:
        if not isinstance(path, str) or "*" in path:
            raise unsupported(f"_source filtering by [{path}] (give plain field paths)")
        node: Any = source
        parts = path.split(".")
        for part in parts:
            if not isinstance(node, dict) or part not in node:
                node = None
                break
            node = node[part]
        if node is None:
            continue
        dest = out
        for part in parts[:-1]:
            dest = dest.setdefault(part, {})
        dest[parts[-1]] = copy.deepcopy(node)
    return out


def _safe(conv: Callable[[Any], Any], raw: Any) -> Any:
    try:
        return conv(raw)
    except (ValueError, TypeError, EsError):
        return None


@route("POST", "/{index}/_delete_by_query")
def delete_by_query(req: Request, index: str) -> Response:
    conflicts = req.param("conflicts", "abort")
    if conflicts not in ("abort", "proceed"):
        raise bad_request(f'conflicts may only be "proceed" or "abort" but was [{conflicts}]')
    slices_raw = req.param("slices", "1")
    refresh_after = req.flag("refresh")
    wait = req.flag("wait_for_completion", True)
    scroll_size = req.integer("scroll_size", 1000)
    max_docs_param = req.integer("max_docs")
    rps_raw = req.param("requests_per_second")
    req.param("scroll")
    req.param("timeout")
    req.param("wait_for_active_shards")
    req.param("routing")
    req.param("preference")
    for unsupported_param in ("q", "df", "analyzer", "sort", "search_type", "stats", "terminate_after", "from"):
        if req.param(unsupported_param) is not None:
            raise unsupported(f"delete-by-query parameter [{unsupported_param}]")
    if slices_raw == "auto":
        slices = None
    elif slices_raw and re.fullmatch(r"\d+", slices_raw) and int(slices_raw) >= 1:
        slices = int(slices_raw)
    else:
        raise bad_request(f'[slices] must be a positive integer or the string "auto", but was [{slices_raw}]')
    rps = requests_per_second(rps_raw)
    assert scroll_size is not None
    if scroll_size == 0:  # SearchRequest.validate, for the scroll that feeds the deletes
        raise bad_request("Validation Failed: 1: [size] cannot be [0] in a scroll context;", VALIDATION)
    if scroll_size < 0:
        raise bad_request(f"[size] parameter cannot be negative, found [{scroll_size}]")
    if scroll_size > 10_000:
        raise bad_request(f"[scroll_size] must be between 1 and 10000, got [{scroll_size}]")
    body = req.json(required=True)
    extra = set(body) - {"query", "max_docs"}
    if extra:
        raise unsupported(f"delete-by-query body field [{sorted(extra)[0]}] (supported: query, max_docs)")
    if "query" not in body:
        raise bad_request("Validation Failed: 1: query is missing;", VALIDATION)
    max_docs = checked_max_docs(max_docs_param, body.get("max_docs"), slices)
    with CLUSTER.lock:
        indices = _search_indices(req, index)
        req.check_params()
        predicates = _predicates(indices, body["query"])
        if slices is None:  # auto: one slice per shard, the smallest shard count among the indices
            slices = min((ix.shards for ix in indices), default=1)
        task = None
        if not wait:
            now = time.time()
            task = Task(
                id=next(CLUSTER.task_ids),
                description=f"delete-by-query [{', '.join(ix.name for ix in indices)}]",
                start_ms=int(now * 1000),
                start_ns=time.monotonic_ns(),
                status={},
            )
            CLUSTER.tasks[task.id] = task
    job = DeleteByQuery(
        CLUSTER,
        indices,
        predicates,
        abort_on_conflict=conflicts == "abort",
        scroll_size=scroll_size,
        slices=slices,
        refresh=refresh_after,
        max_docs=max_docs,
        requests_per_second=rps,
        task=task,
    )
    if task is not None:
        task.status = job.status()
        task.job = job
        threading.Thread(target=_run_task, args=(task, job), name=f"task-{task.id}", daemon=True).start()
        return ok({"task": f"{CLUSTER.node_id}:{task.id}"})
    result = job.run()
    conflicted = any(f.get("status") == 409 for f in result["failures"])
    return ok(result, 409 if conflicted else 200)


def _run_task(task: Task, job: DeleteByQuery) -> None:
    try:
        task.response = job.run()
    except EsError as exc:
        task.error = {"type": exc.type, "reason": exc.reason, **exc.extra}
    except Exception as exc:  # noqa: BLE001 - a task records any failure rather than vanishing
        task.error = {"type": "exception", "reason": f"{type(exc).__name__}: {exc}"}
    task.status = job.status()
    task.end_ns = time.monotonic_ns()
    task.completed = True
    # Like ES: the result of a wait_for_completion=false task is stored as a document in .tasks,
    # where it stays until someone deletes it.
    with CLUSTER.lock:
        tasks_index = CLUSTER.indices.get(".tasks") or CLUSTER.create_index(
            ".tasks", {"settings": {"index": {"hidden": True, "number_of_replicas": 0}}}
        )
        doc = {"completed": True, "task": _task_info(task)}
        if task.response is not None:
            doc["response"] = task.response
        if task.error is not None:
            doc["error"] = task.error
        tasks_index.put(f"{CLUSTER.node_id}:{task.id}", doc)
        tasks_index.refresh()
        CLUSTER.tasks.pop(task.id, None)
    task.done.set()


def _task_info(task: Task) -> dict[str, Any]:
    return {
        "node": CLUSTER.node_id,
        "id": task.id,
        "type": "transport",
        "action": "indices:data/write/delete/byquery",
        "status": copy.deepcopy(task.status),
        "description": task.description,
        "start_time_in_millis": task.start_ms,
        "running_time_in_nanos": (task.end_ns or time.monotonic_ns()) - task.start_ns,
        "cancellable": True,
        "cancelled": False,
        "headers": {},
    }


@route("GET", "/_tasks/{task_id}")
def get_task(req: Request, task_id: str) -> Response:
    wait = req.flag("wait_for_completion")
    timeout = parse_time_value(req.param("timeout", "30s") or "30s", "timeout")
    req.check_params()
    node, _, raw_id = task_id.partition(":")
    if not raw_id.isdigit():
        raise bad_request(f"malformed task id {task_id}")
    with CLUSTER.lock:
        task = CLUSTER.tasks.get(int(raw_id)) if node == CLUSTER.node_id else None
    if task is not None and wait:
        if not task.done.wait(timeout):
            raise EsError(408, "timeout_exception", f"Timed out waiting for completion of task [{task_id}]")
    with CLUSTER.lock:
        task = CLUSTER.tasks.get(int(raw_id)) if node == CLUSTER.node_id else None
        if task is not None:
            return ok({"completed": False, "task": _task_info(task)})
        stored = CLUSTER.indices.get(".tasks")
        doc = stored.live.get(task_id) if stored else None
        if doc is None:
            raise EsError(
                404, "resource_not_found_exception", f"task [{task_id}] isn't running and hasn't stored its results"
            )
        return ok(copy.deepcopy(doc.source))




VALIDATION = "action_request_validation_exception"
_JAVA_FLOAT = re.compile(r"\s*[+-]?(Infinity|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[fFdD]?)\s*")


def requests_per_second(raw: str | None) -> float:
    """``requests_per_second`` as ES reads it (``AbstractBaseReindexRestHandler``): absent or -1 is
    unthrottled (-1 here); anything Java's ``Float.parseFloat`` refuses, such as an empty string, and
    anything at or below 0 other than -1, is a 400."""
    if raw is None:
        return -1.0
    refused = bad_request("[requests_per_second] must be a float greater than 0. Use -1 to disable throttling.")
    if not _JAVA_FLOAT.fullmatch(raw):
        if raw.strip().lstrip("+-") == "NaN":
            raise unsupported("requests_per_second=NaN")
        raise refused
    value = float(raw.strip().rstrip("fFdD"))
    if value == float("inf"):
        return -1.0
    if value <= 0:
        if value == -1:
            return -1.0
        raise refused
    return value


def checked_max_docs(from_url: int | None, from_body: Any, slices: int | None) -> int | None:
    """``max_docs`` from the URL or the body, refused as ES refuses it (``AbstractBulkByScrollRequest``:
    negative, fewer than the slices, set twice to different values); None when absent."""
    if from_body is not None and (isinstance(from_body, bool) or not isinstance(from_body, int)):
        raise bad_request(f"[max_docs] must be an integer, found [{from_body}]", "x_content_parse_exception")
    if from_url is not None and from_body is not None and from_url != from_body:
        raise bad_request(f"[max_docs] set to two different values [{from_url}] and [{from_body}]")
    max_docs = from_body if from_body is not None else from_url
    if max_docs is None:
        return None
    if max_docs < 0:
        raise bad_request(f"[max_docs] parameter cannot be negative, found [{max_docs}]")
    if slices is not None and max_docs < slices:  # slices=auto is 0 in ES: only this check's 0 is left
        raise bad_request("[max_docs] should be >= [slices]")
    if max_docs == 0:
        raise bad_request(
            "Validation Failed: 1: maxDocs should be greater than 0 if the request is limited to some number "
            "of documents or -1 if it isn't but it was [0];",
            VALIDATION,
        )
    return max_docs


@route("POST", "/_delete_by_query/{task_id}/_rethrottle")
@route("POST", "/_update_by_query/{task_id}/_rethrottle")
@route("POST", "/_reindex/{task_id}/_rethrottle")
def rethrottle(req: Request, task_id: str) -> Response:
    """Change a running delete-by-query's ``requests_per_second`` (RestRethrottleAction); it applies
    from the next batch. The answer is the task list ES returns, with the task's new status."""
    raw_rps = req.param("requests_per_second")
    if raw_rps is None:
        raise bad_request("requests_per_second is a required parameter")
    rps = requests_per_second(raw_rps)
    req.check_params(also={"group_by"})
    node, _, raw_id = task_id.partition(":")
    if not raw_id.isdigit():
        raise bad_request(f"malformed task id {task_id}")
    with CLUSTER.lock:
        task = CLUSTER.tasks.get(int(raw_id)) if node == CLUSTER.node_id else None
        if task is None or task.job is None or task.completed:
            raise EsError(404, "resource_not_found_exception", f"task [{task_id}] is missing")
        task.job.rps = rps
        task.status = task.job.status()
        info = _task_info(task)
    return ok(
        {
            "nodes": {
                CLUSTER.node_id: {
                    "name": "es-standin",
                    "transport_address": "127.0.0.1:9300",
                    "host": "127.0.0.1",
                    "ip": "127.0.0.1:9300",
                    "roles": ["data", "ingest", "master"],
                    "tasks": {task_id: info},
                }
            }
        }
    )
