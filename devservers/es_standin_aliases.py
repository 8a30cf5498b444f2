"""The stand-in's alias APIs, as Elasticsearch 8's REST API reference describes them.

``PUT|POST /{index}/_alias/{name}`` (and ``_aliases``), ``DELETE /{index}/_alias/{name}``,
``GET|HEAD /_alias[/{name}]`` and ``/{index}/_alias[/{name}]``, and ``POST /_aliases`` with
``add`` and ``remove`` actions applied together or not at all. Reads, searches, counts and
delete-by-query resolve an alias to its indices (``Cluster.resolve``); a write goes to its one
index or its write index; ``DELETE /{alias}`` is refused (``es_standin_indices.delete_index``).
Alias filters and routing are not implemented and are refused.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from devservers.es_standin_base import EsError, bad_request, unsupported
from devservers.es_standin_cluster import CLUSTER
from devservers.es_standin_http import Request, Response, ok, route
from devservers.es_standin_index import Index
from devservers.es_standin_indices import index_options


def _aliases_missing(names: list[str]) -> EsError:
    return EsError(
        404,
        "aliases_not_found_exception",
        f"aliases [{','.join(names)}] missing",
        **{"resource.type": "aliases", "resource.id": ",".join(names)},
    )


def _matcher(names: str | None) -> Any:
    patterns = [n for n in (names or "").split(",") if n and n not in ("_all", "*")]
    if not patterns:
        return None
    regexes = [re.compile("^" + ".*".join(re.escape(p) for p in n.split("*")) + "$") for n in patterns]
    return lambda alias: any(r.match(alias) for r in regexes)


@route("PUT|POST", "/{index}/_alias/{name}")
@route("PUT|POST", "/{index}/_aliases/{name}")
def put_alias(req: Request, index: str, name: str) -> Response:
    req.check_params(also={"timeout", "master_timeout"})
    props = req.json()
    with CLUSTER.lock:
        indices = CLUSTER.resolve(index, expand_wildcards="open,closed")
        for ix in indices:
            CLUSTER.check_alias(name, props, index_name=ix.name)
        _check_one_write_index(name, {ix.name for ix in indices}, props)
        for ix in indices:
            ix.aliases[name] = dict(props)
    return ok({"acknowledged": True})


def _check_one_write_index(alias: str, adding_to: set[str], props: dict[str, Any]) -> None:
    """ES allows one write index per alias: 400 illegal_argument_exception for a second."""
    if props.get("is_write_index") not in (True, "true"):
        return
    others = [
        ix.name
        for ix in CLUSTER.alias_indices(alias)
        if ix.name not in adding_to and ix.aliases[alias].get("is_write_index") in (True, "true")
    ]
    if others or len(adding_to) > 1:
        first = others[0] if others else sorted(adding_to)[0]
        raise bad_request(f"alias [{alias}] has more than one write index [{first},{sorted(adding_to)[-1]}]")


@route("DELETE", "/{index}/_alias/{name}")
@route("DELETE", "/{index}/_aliases/{name}")
def delete_alias(req: Request, index: str, name: str) -> Response:
    req.check_params(also={"timeout", "master_timeout"})
    matches = _matcher(name)
    with CLUSTER.lock:
        indices = CLUSTER.resolve(index, expand_wildcards="open,closed")
        gone = [(ix, alias) for ix in indices for alias in ix.aliases if matches is None or matches(alias)]
        if not gone:
            raise _aliases_missing([name])
        for ix, alias in gone:
            ix.aliases.pop(alias, None)
    return ok({"acknowledged": True})


@route("GET|HEAD", "/_alias")
@route("GET|HEAD", "/_alias/{name}")
@route("GET|HEAD", "/{index}/_alias")
@route("GET|HEAD", "/{index}/_alias/{name}")
def get_alias(req: Request, index: str | None = None, name: str | None = None) -> Response:
    opts = index_options(req, expand_default="all")
    req.param("local")
    req.param("master_timeout")
    req.check_params()
    matches = _matcher(name)
    with CLUSTER.lock:
        indices = CLUSTER.resolve(index, **opts)
        view: dict[str, Any] = {}
        for ix in indices:
            shown = {a: copy.deepcopy(p) for a, p in ix.aliases.items() if matches is None or matches(a)}
            if shown or (name is None and index is not None):
                view[ix.name] = {"aliases": shown}
    if name is not None:
        wanted = [n for n in name.split(",") if n and "*" not in n and n != "_all"]
        found = {a for entry in view.values() for a in entry["aliases"]}
        missing = [n for n in wanted if n not in found]
        if missing:
            # RestGetAliasesAction: a 404 that still lists what was found, with a plain-text error.
            label = "alias" if len(missing) == 1 else "aliases"
            return ok({"error": f"{label} [{','.join(missing)}] missing", "status": 404, **view}, 404)
    return ok(view)


@route("POST", "/_aliases")
def update_aliases(req: Request) -> Response:
    """``add`` and ``remove`` actions, validated together and then applied together (atomic, as ES)."""
    req.check_params(also={"timeout", "master_timeout"})
    body = req.json(required=True)
    actions = body.get("actions")
    if set(body) - {"actions"} or not isinstance(actions, list) or not actions:
        raise bad_request("Validation Failed: 1: No action specified;", "action_request_validation_exception")
    with CLUSTER.lock:
        planned = [step for action in actions for step in _plan(action)]
        for kind, ix, alias, props in planned:
            if kind == "add":
                _check_one_write_index(alias, {ix.name}, props)
        for kind, ix, alias, props in planned:
            if kind == "add":
                ix.aliases[alias] = props
            else:
                ix.aliases.pop(alias, None)
    return ok({"acknowledged": True, "errors": False})


def _listed(spec: dict[str, Any], one: str, many: str) -> list[str]:
    values = spec.get(many, []) if many in spec else [spec[one]] if one in spec else []
    if isinstance(values, str):
        values = [values]
    return [str(v) for v in values]


def _plan(action: Any) -> list[tuple[str, Index, str, dict[str, Any]]]:
    if not isinstance(action, dict) or len(action) != 1:
        raise bad_request("[aliases] failed to parse field [actions]", "x_content_parse_exception")
    ((kind, spec),) = action.items()
    if kind == "remove_index":
        raise unsupported("the remove_index alias action")
    if kind not in ("add", "remove"):
        raise bad_request(f"[alias_action] unknown field [{kind}]", "x_content_parse_exception")
    if not isinstance(spec, dict):
        raise bad_request(f"[{kind}] must be an object", "x_content_parse_exception")
    indices = _listed(spec, "index", "indices")
    aliases = _listed(spec, "alias", "aliases")
    if not indices:
        raise bad_request(
            "Validation Failed: 1: One of [index] or [indices] is required;",
            "action_request_validation_exception",
        )
    if not aliases:
        raise bad_request(
            "Validation Failed: 1: One of [alias] or [aliases] is required;",
            "action_request_validation_exception",
        )
    props = {k: v for k, v in spec.items() if k not in ("index", "indices", "alias", "aliases", "must_exist")}
    steps: list[tuple[str, Index, str, dict[str, Any]]] = []
    for ix in CLUSTER.resolve(",".join(indices), expand_wildcards="open,closed"):
        for alias in aliases:
            if kind == "add":
                CLUSTER.check_alias(alias, props, index_name=ix.name)
                steps.append((kind, ix, alias, dict(props)))
            else:
                matches = _matcher(alias)
                steps += [(kind, ix, a, {}) for a in ix.aliases if matches is None or matches(a)]
    if kind == "remove" and not steps:
        raise _aliases_missing(aliases)
    return steps
