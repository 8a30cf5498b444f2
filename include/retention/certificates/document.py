"""The certificate document: its body built from the ledger, its signature, and its check.

A certificate is a JSON document ``{"certificate": {...}, "signature": {...}}``. The signature
is the hex HMAC-SHA256 of the *canonical* form of ``certificate``: JSON with sorted keys, no
white space (``separators=(",", ":")``) and ASCII escapes (``ensure_ascii=True``), UTF-8
encoded. Anyone holding the key can check it (``scripts/verify_certificate.py``, or five lines
of Python: see docs/REQUESTS.md). A certificate never holds a raw subject id: the subject
appears only as its keyed hash.

This module writes nothing: it reads the request's audit rows, and ``issue`` stores the result.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from include.retention.ledger.approvals import request_scope
from include.retention.ledger.audit import run_totals, withheld_hold_ids
from include.retention.ledger.db import LEDGER_CONN_ID
from include.retention.ledger.positions import certificate_positions
from include.retention.ledger.requests import Event, Request
from include.retention.ledger.request_steps import Step
from include.retention.request_states import KIND_EXPIRY, REQUESTS_DAG_ID
from include.retention.timeutil import UTC

if TYPE_CHECKING:
    from include.retention.crypto import RetentionCrypto
    from include.retention.policy import Policy

CERTIFICATE_VERSION = 1
ALGORITHM = "HMAC-SHA256"
_WORK_EVENTS = frozenset({"submitted", "claimed", "state", "step_failed", "verified"})


@dataclass(frozen=True)
class Verification:
    ok: bool
    problems: tuple[str, ...]
    certificate_id: str | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"OK: {self.certificate_id}: signature valid, contents consistent"
        return f"INVALID: {self.certificate_id or 'certificate'}: " + "; ".join(self.problems)


# --------------------------------------------------------------------------- signing


def canonical(body: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: sorted keys, no white space, ASCII escapes, UTF-8."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("utf-8")


def key_id(crypto: RetentionCrypto) -> str:
    """A public fingerprint of the signing key (an HMAC of a constant, so it reveals nothing)."""
    return hmac.new(crypto.certificate_key, b"cc-retention certificate key id", hashlib.sha256).hexdigest()[:16]


def sign(body: Mapping[str, Any], crypto: RetentionCrypto) -> dict[str, Any]:
    return {
        "certificate": dict(body),
        "signature": {"algorithm": ALGORITHM, "key_id": key_id(crypto), "value": crypto.sign(canonical(body))},
    }


def verify_document(document: Mapping[str, Any], crypto: RetentionCrypto) -> Verification:
    """Check the signature, then that the contents agree with themselves (every remaining
    count 0, totals equal the sum of the steps, completion not after the due date unless
    said so). Any edit to the body breaks the signature."""
    problems: list[str] = []
    body = document.get("certificate")
    signature = document.get("signature") or {}
    if not isinstance(body, dict):
        return Verification(False, ("no 'certificate' object",))
    cert_id = body.get("certificate_id")
    if signature.get("algorithm") != ALGORITHM:
        problems.append(f"unknown signature algorithm {signature.get('algorithm')!r}")
    if signature.get("key_id") != key_id(crypto):
        problems.append("signed with another key (key_id differs)")
    value = signature.get("value")
    if not isinstance(value, str) or not crypto.verify_signature(canonical(body), value):
        problems.append("signature does not match the contents")
    deletions = body.get("deletions") or []
    if any(d.get("remaining") != 0 for d in deletions):
        problems.append("a step reports records remaining")
    total = sum(int(d.get("deleted") or 0) for d in deletions)
    if (body.get("outcome") or {}).get("records_deleted") != total:
        problems.append("records_deleted is not the sum of the steps")
    if (body.get("backups") or {}).get("expire_before_due") is False:
        problems.append("backups outlive the due date: the request is not complete")
    if "subject_id" in json.dumps(body):
        problems.append("the certificate carries a subject_id field")
    return Verification(not problems, tuple(problems), cert_id)


# --------------------------------------------------------------------------- building


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def policy_fingerprint(policy: Policy) -> str:
    try:
        return hashlib.sha256(policy.path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _runs(events: Sequence[Event], conn_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The runs that worked on the request (from its history) and the audit rows they wrote."""
    seen: dict[str, dict[str, Any]] = {}
    for e in events:
        if not e.run_id or e.event not in _WORK_EVENTS:  # a duplicate submission that did nothing is no run of it
            continue
        run = seen.setdefault(e.run_id, {"run_id": e.run_id, "dag_id": REQUESTS_DAG_ID, "first_at": _iso(e.at),
                                         "events": 0})
        run["last_at"] = _iso(e.at)
        run["events"] += 1
    runs = [{k: v for k, v in r.items() if k != "events"} for r in seen.values()]
    audit = {"rows": 0, "deleted": 0, "failed": 0}
    if seen:
        rows, deleted, failed = run_totals(REQUESTS_DAG_ID, list(seen), ledger_conn_id=conn_id)
        audit = {"rows": rows, "deleted": deleted, "failed": failed}
    return runs, audit


def ledger_positions(request: Request, events: Sequence[Event], conn_id: str = LEDGER_CONN_ID) -> dict[str, Any]:
    """The chain positions of the request's audit rows, events and approvals (``ledger/positions.py``)."""
    runs = sorted({e.run_id for e in events if e.run_id and e.event in _WORK_EVENTS})
    return certificate_positions(dag_id=REQUESTS_DAG_ID, run_ids=runs, request_id=request.request_id,
                                 scope=request_scope(request.request_id), conn_id=conn_id)


def _approved_at(approval: Mapping[str, Any]) -> str | None:
    at = approval.get("responded_at")
    return _iso(datetime.fromisoformat(at)) if isinstance(at, str) else _iso(at)


def _policy_order(policy: Policy, categories: Sequence[str]) -> dict[str, int]:
    """Each target's place in the policy over the request's categories: the order its steps
    were planned in (categories as the request lists them, targets as the policy does)."""
    order: dict[str, int] = {}
    for name in categories:
        for target in policy.category(name).targets:
            order.setdefault(f"{name}.{target.name}", len(order))
    return order


def build(
    policy: Policy,
    request: Request,
    steps: Sequence[Step],
    events: Sequence[Event],
    *,
    verified_at: datetime,
    issued_at: datetime,
    approval: Mapping[str, Any] | None = None,
    ledger_positions: Mapping[str, Any] | None = None,
    derived_copies: Mapping[str, Any] | None = None,
    conn_id: str = LEDGER_CONN_ID,
) -> dict[str, Any]:
    """The certificate body (unsigned). No raw subject id can reach it: the request row has none.

    :param approval: the four-eyes approval the request got (``ledger.approvals``), if it needed one.
    :param ledger_positions: the chain positions of the rows it rests on (``ledger_positions``).
    :param derived_copies: the copies the stores keep beside the data, as read from the servers
        (``copies.values.section``).
    """
    runs, audit = _runs(events, conn_id)
    order = _policy_order(policy, request.categories)
    deletions = []
    by_store: dict[str, int] = {}
    for step in sorted(steps, key=lambda s: order.get(s.qualified_name, 1_000)):
        deletions.append({
            "category": step.category,
            "target": step.target,
            "store": step.store,
            "kind": step.kind,
            "location": step.location,
            "method": step.method,
            "deleted": step.deleted,
            "remaining": step.verified_remaining if step.verified_remaining is not None else None,
            "verified_at": _iso(step.verified_at),
            "run_id": step.run_id,
            **({"details": step.details} if step.details else {}),
        })
        by_store[step.store] = by_store.get(step.store, 0) + step.deleted
    total = sum(d["deleted"] for d in deletions)
    withheld = sum(int((s.details or {}).get("withheld_for_hold") or 0) for s in steps)
    backup_steps = [s for s in steps if policy.target(s.qualified_name).holds_backups]
    if request.request_type == "termination":
        backups: dict[str, Any] = {
            "status": "deleted",
            "statement": f"every backup object of tenant {request.tenant_id} is deleted",
            "objects_deleted": sum(s.deleted for s in backup_steps),
            "targets": [s.qualified_name for s in backup_steps],
        }
    else:
        expiry = [s for s in steps if s.kind == KIND_EXPIRY]
        expire_by = max((datetime.fromisoformat(s.details["backups_expire_by"]) for s in expiry), default=None)
        purged = {s.qualified_name: s.details["purged_backup_days"] for s in expiry if s.details.get("purged_backup_days")}
        backups = {
            "status": "expiring",
            "statement": (f"backups that may hold the subject expire by {_iso(expire_by)}, before the due date "
                          f"{_iso(request.due_at)}" if expire_by else "no backup target holds this subject"),
            "expire_by": _iso(expire_by),
            "due_at": _iso(request.due_at),
            "expire_before_due": bool(expire_by is None or expire_by <= request.due_at),
            "targets": [s.qualified_name for s in expiry],
            **({"purged_backup_days": purged,
                "purged_because": "these days' backups would have outlived the due date"} if purged else {}),
        }
    subject = None
    if request.subject_type:
        subject = {"type": request.subject_type, "keyed_hash": request.subject_hash,
                   "hash": "HMAC-SHA256 of tenant, type and id under the retention_keys subject_hash_key"}
    categories = list(request.categories)
    return {
        "certificate_version": CERTIFICATE_VERSION,
        "certificate_id": f"CERT-{request.request_id}",
        "issued_at": _iso(issued_at),
        "issuer": {"system": "cc-retention", "dag_id": REQUESTS_DAG_ID},
        "request": {
            "request_id": request.request_id,
            "reference": request.reference,
            "request_type": request.request_type,
            "tenant_id": request.tenant_id,
            "subject": subject,
            "categories": categories,
            "received_at": _iso(request.received_at),
            "due_at": _iso(request.due_at),
            "requested_by": request.requested_by,
        },
        "outcome": {
            "state": "completed",
            "completed_at": _iso(verified_at),
            "within_window": verified_at <= request.due_at,
            "records_deleted": total,
            "records_remaining": 0,
            **({"records_withheld": withheld,
                "withheld_because": "they also name another subject of the tenant on legal hold; a hold wins "
                                    "over an erasure (GDPR Art. 17(3)(e))",
                "withheld_under_holds": withheld_hold_ids(REQUESTS_DAG_ID, [r["run_id"] for r in runs],
                                                          ledger_conn_id=conn_id)} if withheld else {}),
            "by_store": by_store,
        },
        **({"approval": {"approved_by": approval.get("responded_by"), "approved_at": _approved_at(approval),
                         "triggered_by": approval.get("triggered_by"), "reason": approval.get("reason"),
                         "run_id": approval.get("run_id")}} if approval else {}),
        "deletions": deletions,
        "backups": backups,
        **({"derived_copies": dict(derived_copies)} if derived_copies is not None else {}),
        "verification": {
            "method": "an independent re-count in every store after the purges; each must be 0",
            "verified_at": _iso(verified_at),
            "steps": len(deletions),
        },
        "runs": runs,
        "audit": {**audit, "table": "purge_audit", "note": "one row per purge, including failed attempts"},
        **({"ledger": {
            "positions": dict(ledger_positions),
            "note": "each row's last entry in the ledger's hash chains at issue (docs/PROOF.md); "
                    "python -m include.retention.ledger verify checks them",
        }} if ledger_positions is not None else {}),
        "late_data": {
            "swept_until": _iso(request.due_at),
            "by": [f"retention_{c}" for c in categories],
            "statement": "data written for this request after completion is purged by the daily DAGs until the due date",
        },
        "policy": {"version": policy.version, "sha256": policy_fingerprint(policy),
                   "request_window_days": policy.request_window_days},
    }
