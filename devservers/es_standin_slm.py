"""The stand-in's snapshot repositories, snapshot lifecycle (SLM) policies and force merge, as ES 8 answers them.

``PUT|POST /_snapshot/{repository}`` (type ``fs`` or ``url``; settings kept, nothing written),
``GET /_snapshot[/{repository}]``, ``DELETE /_snapshot/{repository}``;
``PUT /_slm/policy/{id}`` (``schedule``, ``name``, ``repository`` required; the repository must
exist, as in ES: 400 ``illegal_argument_exception`` "no such repository"), ``GET /_slm/policy``
(``{}`` when there is none) and ``/_slm/policy/{id}`` (404 ``resource_not_found_exception``),
``DELETE /_slm/policy/{id}``. No snapshot is ever taken: a policy's ``next_execution_millis`` is
not computed and ``last_success`` never appears. ``POST /{index}/_forcemerge``: the stand-in
drops a deleted document at once, so there is nothing to expunge; it answers with the shards
as ES does.
"""

from __future__ import annotations

import re
import time
from typing import Any

from devservers.es_standin_base import EsError, bad_request
from devservers.es_standin_cluster import CLUSTER
from devservers.es_standin_http import Request, Response, ok, route
from devservers.es_standin_indices import index_options

REPOSITORY_TYPES = ("fs", "url")
POLICY_FIELDS = {"schedule", "name", "repository", "config", "retention"}
RETENTION_FIELDS = {"expire_after", "min_count", "max_count"}
_TIME = re.compile(r"\d+(\.\d+)?(d|h|m|s|ms|micros|nanos)")

REPOSITORIES: dict[str, dict[str, Any]] = {}
POLICIES: dict[str, dict[str, Any]] = {}


def _missing_repository(name: str) -> EsError:
    return EsError(404, "repository_missing_exception", f"[{name}] missing")


@route("PUT|POST", "/_snapshot/{repository}")
def put_repository(req: Request, repository: str) -> Response:
    req.param("verify")
    req.check_params(also={"timeout", "master_timeout"})
    body = req.json(required=True)
    kind = body.get("type")
    if kind not in REPOSITORY_TYPES:
        raise EsError(500, "repository_exception", f"[{repository}] repository type [{kind}] does not exist")
    with CLUSTER.lock:
        REPOSITORIES[repository] = {"type": kind, "settings": dict(body.get("settings") or {})}
    return ok({"acknowledged": True})


@route("GET", "/_snapshot")
@route("GET", "/_snapshot/{repository}")
def get_repository(req: Request, repository: str | None = None) -> Response:
    req.check_params(also={"local", "master_timeout"})
    with CLUSTER.lock:
        if repository in (None, "_all", "*"):
            return ok({k: dict(v) for k, v in REPOSITORIES.items()})
        if repository not in REPOSITORIES:
            raise _missing_repository(repository)
        return ok({repository: dict(REPOSITORIES[repository])})


@route("DELETE", "/_snapshot/{repository}")
def delete_repository(req: Request, repository: str) -> Response:
    req.check_params(also={"timeout", "master_timeout"})
    with CLUSTER.lock:
        if REPOSITORIES.pop(repository, None) is None:
            raise _missing_repository(repository)
    return ok({"acknowledged": True})


def _check_policy(policy_id: str, body: dict[str, Any]) -> None:
    unknown = set(body) - POLICY_FIELDS
    if unknown:
        field = sorted(unknown)[0]
        raise EsError(400, "x_content_parse_exception", f"[1:2] [snapshot_lifecycle] unknown field [{field}]")
    for field in ("schedule", "name", "repository"):
        if not isinstance(body.get(field), str) or not body[field]:
            raise bad_request(f"Validation Failed: 1: invalid {field}: must not be empty;", "action_request_validation_exception")
    if body["repository"] not in REPOSITORIES:
        raise bad_request(f"no such repository [{body['repository']}]")
    retention = body.get("retention") or {}
    unknown = set(retention) - RETENTION_FIELDS
    if unknown:
        raise EsError(400, "x_content_parse_exception", f"[1:2] [snapshot_retention] unknown field [{sorted(unknown)[0]}]")
    if "expire_after" in retention and not _TIME.fullmatch(str(retention["expire_after"])):
        raise EsError(400, "parse_exception",
                      f"failed to parse setting [expire_after] with value [{retention['expire_after']}] as a time value")
    if policy_id != policy_id.lower() or not policy_id:
        raise bad_request(f"Validation Failed: 1: invalid policy id [{policy_id}]: must be lowercase;",
                          "action_request_validation_exception")


@route("PUT", "/_slm/policy/{policy_id}")
def put_policy(req: Request, policy_id: str) -> Response:
    req.check_params(also={"timeout", "master_timeout"})
    body = req.json(required=True)
    now = int(time.time() * 1000)
    with CLUSTER.lock:
        _check_policy(policy_id, body)
        version = POLICIES[policy_id]["version"] + 1 if policy_id in POLICIES else 1
        policy = {"name": body["name"], "schedule": body["schedule"], "repository": body["repository"]}
        for field in ("config", "retention"):
            if field in body:
                policy[field] = dict(body[field] or {})
        POLICIES[policy_id] = {"version": version, "modified_date_millis": now, "policy": policy,
                               "stats": {"policy": policy_id, "snapshots_taken": 0, "snapshots_failed": 0,
                                         "snapshots_deleted": 0, "snapshot_deletion_failures": 0}}
    return ok({"acknowledged": True})


@route("GET", "/_slm/policy")
@route("GET", "/_slm/policy/{policy_id}")
def get_policy(req: Request, policy_id: str | None = None) -> Response:
    req.check_params(also={"master_timeout", "timeout"})
    with CLUSTER.lock:
        if policy_id is None or policy_id in ("_all", "*"):
            return ok({k: _copy(v) for k, v in sorted(POLICIES.items())})
        wanted = policy_id.split(",")
        missing = [p for p in wanted if p not in POLICIES]
        if missing:
            raise EsError(404, "resource_not_found_exception", f"snapshot lifecycle policy or policies {missing} not found")
        return ok({p: _copy(POLICIES[p]) for p in wanted})


def _copy(entry: dict[str, Any]) -> dict[str, Any]:
    policy = dict(entry["policy"])
    return {"version": entry["version"], "modified_date_millis": entry["modified_date_millis"], "policy": policy,
            "stats": dict(entry["stats"])}


@route("DELETE", "/_slm/policy/{policy_id}")
def delete_policy(req: Request, policy_id: str) -> Response:
    req.check_params(also={"master_timeout", "timeout"})
    with CLUSTER.lock:
        if POLICIES.pop(policy_id, None) is None:
            raise EsError(404, "resource_not_found_exception", f"snapshot lifecycle policy not found: {policy_id}")
    return ok({"acknowledged": True})


@route("POST", "/_forcemerge")
@route("POST", "/{index}/_forcemerge")
def forcemerge(req: Request, index: str | None = None) -> Response:
    opts = index_options(req)
    expunge = req.flag("only_expunge_deletes")
    segments = req.integer("max_num_segments")
    if expunge and segments is not None:
        raise bad_request("Validation Failed: 1: cannot set only_expunge_deletes and max_num_segments at the same time;",
                          "action_request_validation_exception")
    req.flag("flush", True)
    req.flag("wait_for_completion", True)
    req.check_params()
    with CLUSTER.lock:
        found = CLUSTER.resolve(index, **opts, skip_closed=True)
        shards = sum(ix.shards * (1 + ix.replicas) for ix in found)
        ok_shards = sum(ix.shards for ix in found)
    return ok({"_shards": {"total": shards, "successful": ok_shards, "failed": 0}})
