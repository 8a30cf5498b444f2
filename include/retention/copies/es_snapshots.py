"""Elasticsearch snapshots: snapshot lifecycle (SLM) policies and how long they keep a snapshot.

Read with ``GET /_slm/policy``. A snapshot taken before the delete holds the deleted
documents until it is deleted. A policy's ``retention.expire_after`` deletes its snapshots
that much after they were taken, so those taken before the delete are gone by delete +
expire_after, unless ``min_count`` keeps older ones while fewer are newer; without
retention a policy's snapshots stay until someone deletes them. Snapshots taken by hand,
outside any policy, are not seen here. A server without the SLM API is said to be unread.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Mapping

from include.retention.copies.values import DerivedCopy, iso, unreadable

STORE = "elasticsearch"
_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1, "ms": 0.001, "micros": 1e-6, "nanos": 1e-9}


def duration(text: str) -> timedelta:
    """An Elasticsearch time value (``30d``, ``12h``, ``90m``) as a timedelta."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(d|h|ms|m|s|micros|nanos)\s*", text or "")
    if not m:
        raise ValueError(f"not an Elasticsearch time value: {text!r}")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def read_policies(client: Any) -> dict[str, Any] | str:
    """Every SLM policy by id, or the error that kept them unread."""
    from elasticsearch import ApiError

    try:
        response = client.slm.get_lifecycle()
    except ApiError as exc:
        if exc.meta.status == 404:  # ES answers 404 for a named policy it lacks; none are named here
            return {}
        return f"{exc.meta.status} {getattr(exc, 'error', '') or type(exc).__name__}"
    body = getattr(response, "body", response)
    return dict(body or {})


def policy_copy(policy_id: str, entry: Mapping[str, Any], *, deleted_by: datetime) -> DerivedCopy:
    policy = entry.get("policy") or {}
    retention = policy.get("retention") or {}
    indices = (policy.get("config") or {}).get("indices") or ["*"]
    copy = f"snapshots of SLM policy {policy_id}"
    read = {"policy": policy_id, "repository": policy.get("repository"), "schedule": policy.get("schedule"),
            "indices": list(indices) if isinstance(indices, list) else [indices], "retention": dict(retention)}
    where = f"policy {policy_id} snapshots {', '.join(read['indices'])} to repository {policy.get('repository')}"
    expire_after = retention.get("expire_after")
    if not expire_after:
        return DerivedCopy(STORE, copy, "never",
                           f"{where} on {policy.get('schedule')} with no retention: its snapshots taken before the "
                           "delete keep the deleted documents until someone deletes them", read=read)
    ends = deleted_by + duration(str(expire_after))
    if int(retention.get("min_count") or 0) > 0:
        return DerivedCopy(STORE, copy, "unknown",
                           f"{where}, retention expire_after {expire_after}: snapshots taken before the delete go from "
                           f"{iso(ends)}, but min_count {retention['min_count']} keeps older ones while fewer are newer",
                           read=read)
    return DerivedCopy(STORE, copy, "at",
                       f"{where}, retention expire_after {expire_after}: snapshots taken before the delete are "
                       f"deleted by SLM retention from {iso(ends)}", ends_at=ends, read=read)


def state(policies: dict[str, Any] | str, *, deleted_by: datetime) -> list[DerivedCopy]:
    if isinstance(policies, str):
        return [unreadable(STORE, "snapshots", f"GET /_slm/policy answered {policies}")]
    if not policies:
        return [DerivedCopy(STORE, "snapshots", "none",
                            "no snapshot lifecycle policy (GET /_slm/policy is empty); snapshots taken by hand are "
                            "not seen", read={"policies": 0})]
    return [policy_copy(pid, entry, deleted_by=deleted_by) for pid, entry in sorted(policies.items())]


def read_copies(client: Any, *, deleted_by: datetime) -> list[DerivedCopy]:
    return state(read_policies(client), deleted_by=deleted_by)
