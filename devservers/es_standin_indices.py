"""The stand-in's index APIs: create, get, delete, settings, mappings, close/open, refresh, ``_cat/indices``."""

from __future__ import annotations

import copy
import re
from typing import Any

from devservers.es_standin_base import EsError, bad_request, human_bytes, index_not_found, iso_millis, unsupported
from devservers.es_standin_cluster import CLUSTER
from devservers.es_standin_http import Request, Response, ok, route
from devservers.es_standin_index import Index

# -- indices


def index_options(req: Request, *, expand_default: str = "open") -> dict[str, Any]:
    return {
        "ignore_unavailable": req.flag("ignore_unavailable"),
        "allow_no_indices": req.flag("allow_no_indices", True),
        "expand_wildcards": req.param("expand_wildcards", expand_default) or expand_default,
    }


@route("PUT", "/{index}")
def create_index(req: Request, index: str) -> Response:
    req.param("timeout")
    req.param("master_timeout")
    req.param("wait_for_active_shards")
    req.check_params()
    body = req.json()
    with CLUSTER.lock:
        ix = CLUSTER.create_index(index, body)
    return ok({"acknowledged": True, "shards_acknowledged": True, "index": ix.name})


@route("HEAD", "/{index}")
def index_exists(req: Request, index: str) -> Response:
    opts = index_options(req)
    req.param("local")
    req.param("include_defaults")
    req.param("flat_settings")
    req.check_params()
    with CLUSTER.lock:
        try:
            found = CLUSTER.resolve(index, **opts)
        except EsError:
            found = []
    return ok(None, 200 if found else 404)


@route("GET", "/{index}")
def get_index(req: Request, index: str) -> Response:
    opts = index_options(req)
    flat = req.flag("flat_settings")
    req.check_params(also={"master_timeout", "include_defaults", "local"})
    with CLUSTER.lock:
        return ok(
            {
                ix.name: {
                    "aliases": copy.deepcopy(ix.aliases),
                    "mappings": copy.deepcopy(ix.mappings),
                    "settings": _settings_view(ix, flat),
                }
                for ix in CLUSTER.resolve(index, **opts)
            }
        )


@route("DELETE", "/{index}")
def delete_index(req: Request, index: str) -> Response:
    ignore_unavailable = req.flag("ignore_unavailable")
    req.flag("allow_no_indices", True)
    expand = req.param("expand_wildcards")
    req.param("timeout")
    req.param("master_timeout")
    req.check_params()
    names = [n for n in index.split(",") if n]
    # action.destructive_requires_name=true (the ES 8 default): explicit names only.
    if (
        any("*" in n or n == "_all" or n.startswith("-") for n in names)
        or not names
        or expand not in (None, "open", "closed", "open,closed")
    ):
        raise bad_request("Wildcard expressions or all indices are not allowed")
    with CLUSTER.lock:
        aliases = CLUSTER.all_aliases()
        for name in names:
            if name in aliases and name not in CLUSTER.indices:  # ES 8: a delete never goes through an alias
                raise bad_request(
                    f"The provided expression [{name}] matches an alias, specify the corresponding concrete "
                    "indices instead."
                )
            if name in CLUSTER.data_streams:
                raise unsupported(f"deleting data stream [{name}] with the delete index API (use DELETE /_data_stream)")
        missing = [n for n in names if n not in CLUSTER.indices]
        if missing and not ignore_unavailable:
            raise index_not_found(missing[0])
        for name in names:
            for stream in CLUSTER.streams_of(name):
                if CLUSTER.data_streams[stream][-1] == name:
                    raise bad_request(
                        f"index [{name}] is the write index for data stream [{stream}] and cannot be deleted"
                    )
        for name in names:
            CLUSTER.indices.pop(name, None)
            for stream in CLUSTER.streams_of(name):
                CLUSTER.data_streams[stream].remove(name)
    return ok({"acknowledged": True})


def _settings_view(ix: Index, flat: bool, patterns: list[re.Pattern[str]] | None = None) -> dict[str, Any]:
    settings = {**ix.settings, "index.version.created": "8521000"}
    if patterns:
        settings = {k: v for k, v in settings.items() if any(p.match(k) for p in patterns)}
    if flat:
        return dict(sorted(settings.items()))
    nested: dict[str, Any] = {}
    for key, value in sorted(settings.items()):
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


@route("GET", "/_settings")
@route("GET", "/_settings/{names}")
@route("GET", "/{index}/_settings")
@route("GET", "/{index}/_settings/{names}")
def get_settings(req: Request, index: str | None = None, names: str | None = None) -> Response:
    opts = index_options(req, expand_default="open,closed")
    flat = req.flag("flat_settings")
    req.param("local")
    req.param("master_timeout")
    if req.param("include_defaults") not in (None, "false"):
        raise unsupported("include_defaults")
    req.check_params()
    patterns = [re.compile(_glob(n)) for n in (names or "").split(",") if n and n != "_all"]
    with CLUSTER.lock:
        found = CLUSTER.resolve(index, **opts)
        views = {ix.name: _settings_view(ix, flat, patterns) for ix in found}
    # GetSettingsResponse leaves out an index none of whose settings the names matched.
    return ok({name: {"settings": view} for name, view in views.items() if view})


def _glob(pattern: str) -> str:
    """ES's Regex.simpleMatch over full setting keys (``index.number_*``), as a regex."""
    return "^" + ".*".join(re.escape(piece) for piece in pattern.split("*")) + "$"


@route("GET", "/{index}/_mapping")
def get_mapping(req: Request, index: str) -> Response:
    opts = index_options(req, expand_default="open")
    req.param("local")
    req.param("master_timeout")
    req.check_params()
    with CLUSTER.lock:
        return ok({ix.name: {"mappings": copy.deepcopy(ix.mappings)} for ix in CLUSTER.resolve(index, **opts)})


@route("POST", "/{index}/_close")
def close_index(req: Request, index: str) -> Response:
    req.check_params(also={"timeout", "master_timeout", "wait_for_active_shards"})
    if "*" in index or index == "_all":
        raise bad_request("Wildcard expressions or all indices are not allowed")
    with CLUSTER.lock:
        found = CLUSTER.resolve(index)
        for ix in found:
            ix.refresh()
            ix.closed = True
    return ok(
        {"acknowledged": True, "shards_acknowledged": True, "indices": {ix.name: {"closed": True} for ix in found}}
    )


@route("POST", "/{index}/_open")
def open_index(req: Request, index: str) -> Response:
    req.check_params(also={"timeout", "master_timeout", "wait_for_active_shards"})
    with CLUSTER.lock:
        for ix in CLUSTER.resolve(index, expand_wildcards="closed"):
            ix.closed = False
    return ok({"acknowledged": True, "shards_acknowledged": True})


@route("POST|GET", "/_refresh")
@route("POST|GET", "/{index}/_refresh")
def refresh(req: Request, index: str | None = None) -> Response:
    opts = index_options(req)
    req.check_params()
    with CLUSTER.lock:
        found = CLUSTER.resolve(index, **opts, skip_closed=True)
        for ix in found:
            ix.refresh()
        shards = sum(ix.shards * (1 + ix.replicas) for ix in found)
        ok_shards = sum(ix.shards for ix in found)
    return ok({"_shards": {"total": shards, "successful": ok_shards, "failed": 0}})


# -- _cat


CAT_COLUMNS = {
    "health": ("h",),
    "status": ("s",),
    "index": ("i", "idx"),
    "uuid": ("id", "uuid"),
    "pri": ("p", "shards.primary"),
    "rep": ("r", "shards.replica"),
    "docs.count": ("dc", "docsCount"),
    "docs.deleted": ("dd", "docsDeleted"),
    "creation.date": ("cd",),
    "creation.date.string": ("cds",),
    "store.size": ("ss", "storeSize"),
    "pri.store.size": (),
    "dataset.size": (),
}
CAT_DEFAULT = [
    "health",
    "status",
    "index",
    "uuid",
    "pri",
    "rep",
    "docs.count",
    "docs.deleted",
    "store.size",
    "pri.store.size",
    "dataset.size",
]
CAT_ALIASES = {alias: name for name, aliases in CAT_COLUMNS.items() for alias in aliases}


def _cat_row(ix: Index, bytes_unit: str | None) -> dict[str, Any]:
    ix.maybe_refresh()

    def size(n: int) -> str:
        if bytes_unit is None:
            return human_bytes(n)
        return str(n // {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}[bytes_unit])

    return {
        "health": ix.health,
        "status": "close" if ix.closed else "open",
        "index": ix.name,
        "uuid": ix.uuid,
        "pri": str(ix.shards),
        "rep": str(ix.replicas),
        "docs.count": None if ix.closed else str(len(ix.searchable)),
        "docs.deleted": None if ix.closed else str(ix.deleted_docs),
        "creation.date": str(ix.creation_date),
        "creation.date.string": iso_millis(ix.creation_date),
        # The size of the JSON sources: the stand-in has no Lucene segments to measure.
        "store.size": None if ix.closed else size(ix.bytes),
        "pri.store.size": None if ix.closed else size(ix.bytes),
        "dataset.size": None if ix.closed else size(ix.bytes),
    }


@route("GET", "/_cat/indices")
@route("GET", "/_cat/indices/{index}")
def cat_indices(req: Request, index: str | None = None) -> Response:
    fmt = req.param("format", "txt")
    if fmt not in ("json", "txt", "text"):
        raise unsupported(f"_cat format [{fmt}]")
    columns_raw = req.param("h")
    sort_raw = req.param("s")
    verbose = req.flag("v")
    bytes_unit = req.param("bytes")
    if bytes_unit not in (None, "b", "kb", "mb", "gb"):
        raise unsupported(f"bytes=[{bytes_unit}]")
    health = req.param("health")
    if health is not None:
        health = health.lower()  # ClusterHealthStatus.fromString: case-insensitive, else a 400
        if health not in ("green", "yellow", "red"):
            raise bad_request(f"unknown cluster health status [{req.param('health')}]")
    req.param("pri")
    req.param("local")
    req.param("master_timeout")
    req.param("time")
    req.param("include_unloaded_segments")
    expand = req.param("expand_wildcards", "all") or "all"
    req.check_params()
    columns = CAT_DEFAULT
    if columns_raw:
        columns = []
        for col in columns_raw.split(","):
            name = CAT_ALIASES.get(col, col)
            if name not in CAT_COLUMNS:
                raise unsupported(f"the _cat/indices column [{col}]")
            columns.append(name)
    with CLUSTER.lock:
        rows = [_cat_row(ix, bytes_unit) for ix in CLUSTER.resolve(index, expand_wildcards=expand)]
    if health:
        rows = [r for r in rows if r["health"] == health]
    if sort_raw:
        for spec in reversed(sort_raw.split(",")):
            col, _, order = spec.partition(":")
            col = CAT_ALIASES.get(col, col)
            if col not in CAT_COLUMNS:
                raise unsupported(f"sorting _cat/indices by [{col}]")
            numeric = col in ("docs.count", "docs.deleted", "creation.date", "pri", "rep")
            rows.sort(
                key=lambda r: (r[col] is None, int(r[col]) if numeric and r[col] is not None else (r[col] or "")),
                reverse=order == "desc",
            )
    rows = [{c: r[c] for c in columns} for r in rows]
    if fmt == "json":
        return ok(rows)
    table = ([columns] if verbose else []) + [[("" if r[c] is None else str(r[c])) for c in columns] for r in rows]
    widths = [max((len(line[i]) for line in table), default=0) for i in range(len(columns))]
    text = "".join(" ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() + "\n" for line in table)
    return 200, text, {"Content-Type": "text/plain; charset=UTF-8"}


