"""Deletion certificates: what was deleted, where, how many, when, by which runs, and how
the backups stand, signed with the ``certificate_key`` of the ``retention_keys`` connection.

A certificate is a JSON document ``{"certificate": {...}, "signature": {...}}``. The signature
is the hex HMAC-SHA256 of the *canonical* form of ``certificate``: JSON with sorted keys, no
white space (``separators=(",", ":")``) and ASCII escapes (``ensure_ascii=True``), UTF-8
encoded. Anyone holding the key can check it with this module's CLI::

    python -m include.retention.certificates verify certificates/DEL-20261128-1a2b3c4d.json
    python -m include.retention.certificates verify --request-id DEL-20261128-1a2b3c4d   # from the ledger

or with five lines of Python (see docs/REQUESTS.md). A certificate never holds a raw subject
id: the subject appears only as its keyed hash.

Each certificate is stored three times over: the signed JSON, a Markdown and an HTML
rendering in COS under ``certificates/<request_id>.{json,md,html}`` (the bucket of the
``retention_cos`` connection), and the signed JSON in the ledger's ``certificates`` table.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import html
import json
import logging
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from include.retention.ledger.db import LEDGER_CONN_ID, connect, plain_cursor
from include.retention.requests import legacy as rq

if TYPE_CHECKING:
    from include.retention.airflow_context import RunRef
    from include.retention.crypto import RetentionCrypto
    from include.retention.policy import Policy

log = logging.getLogger(__name__)

UTC = timezone.utc
CERTIFICATE_VERSION = 1
COS_PREFIX = "certificates/"
COS_CONN_ID = "retention_cos"
ALGORITHM = "HMAC-SHA256"
_WORK_EVENTS = frozenset({"submitted", "claimed", "state", "step_failed", "verified"})


@dataclass(frozen=True)
class StoredCertificate:
    request_id: str
    certificate_id: str
    issued_at: datetime
    key_id: str
    signature: str
    cos_bucket: str | None
    cos_key: str | None
    document: dict[str, Any]


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


def key_id(keys: RetentionCrypto) -> str:
    """A public fingerprint of the signing key (an HMAC of a constant, so it reveals nothing)."""
    return hmac.new(keys.certificate_key, b"cc-retention certificate key id", hashlib.sha256).hexdigest()[:16]


def sign(body: Mapping[str, Any], keys: RetentionCrypto) -> dict[str, Any]:
    return {
        "certificate": dict(body),
        "signature": {"algorithm": ALGORITHM, "key_id": key_id(keys), "value": keys.sign(canonical(body))},
    }


def verify_document(document: Mapping[str, Any], keys: RetentionCrypto) -> Verification:
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
    if signature.get("key_id") != key_id(keys):
        problems.append("signed with another key (key_id differs)")
    value = signature.get("value")
    if not isinstance(value, str) or not keys.verify_signature(canonical(body), value):
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


def _runs(request_id: str, events: Sequence[rq.Event], conn_id: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The runs that worked on the request (from its history) and the audit rows they wrote."""
    seen: dict[str, dict[str, Any]] = {}
    for e in events:
        if not e.run_id or e.event not in _WORK_EVENTS:  # a duplicate submission that did nothing is no run of it
            continue
        run = seen.setdefault(e.run_id, {"run_id": e.run_id, "dag_id": rq.DAG_ID, "first_at": _iso(e.at), "events": 0})
        run["last_at"] = _iso(e.at)
        run["events"] += 1
    runs = [{k: v for k, v in r.items() if k != "events"} for r in seen.values()]
    audit = {"rows": 0, "deleted": 0, "failed": 0}
    if seen:
        ids = list(seen)
        with connect(conn_id) as conn:
            cur = plain_cursor(conn)
            cur.execute(
                f"""SELECT COUNT(*), COALESCE(SUM(CASE WHEN dry_run THEN 0 ELSE deleted END), 0),
                      COALESCE(SUM(outcome IN ('failed', 'interrupted')), 0)
                    FROM purge_audit WHERE dag_id = %s AND run_id IN ({', '.join(['%s'] * len(ids))})""",
                (rq.DAG_ID, *ids),
            )
            rows, deleted, failed = cur.fetchone()
        audit = {"rows": int(rows), "deleted": int(deleted), "failed": int(failed)}
    return runs, audit


def build(
    policy: Policy,
    request: rq.Request,
    steps: Sequence[rq.Step],
    events: Sequence[rq.Event],
    *,
    verified_at: datetime,
    issued_at: datetime,
    conn_id: str = LEDGER_CONN_ID,
) -> dict[str, Any]:
    """The certificate body (unsigned). No raw subject id can reach it: the request row has none."""
    runs, audit = _runs(request.request_id, events, conn_id)
    order = {s.qualified_name: i for i, s in enumerate(rq.plan_steps(
        policy, request.request_type, request.tenant_id, request.subject_type, request.categories)[0])}
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
    backup_steps = [s for s in steps if rq.is_backup_target(policy.target(s.qualified_name))]
    if request.request_type == "termination":
        backups: dict[str, Any] = {
            "status": "deleted",
            "statement": f"every backup object of tenant {request.tenant_id} is deleted",
            "objects_deleted": sum(s.deleted for s in backup_steps),
            "targets": [s.qualified_name for s in backup_steps],
        }
    else:
        expiry = [s for s in steps if s.kind == rq.KIND_EXPIRY]
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
        "issuer": {"system": "cc-retention", "dag_id": rq.DAG_ID},
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
                                    "over an erasure (GDPR Art. 17(3)(e))"} if withheld else {}),
            "by_store": by_store,
        },
        "deletions": deletions,
        "backups": backups,
        "verification": {
            "method": "an independent re-count in every store after the purges; each must be 0",
            "verified_at": _iso(verified_at),
            "steps": len(deletions),
        },
        "runs": runs,
        "audit": {**audit, "table": "purge_audit", "note": "one row per purge, including failed attempts"},
        "late_data": {
            "swept_until": _iso(request.due_at),
            "by": [f"retention_{c}" for c in categories],
            "statement": "data written for this request after completion is purged by the daily DAGs until the due date",
        },
        "policy": {"version": policy.version, "sha256": policy_fingerprint(policy),
                   "request_window_days": policy.request_window_days},
    }


# --------------------------------------------------------------------------- rendering


def _rows(doc: Mapping[str, Any]) -> list[tuple[str, ...]]:
    body = doc["certificate"]
    rows = []
    for d in body["deletions"]:
        detail = ""
        if d.get("kind") == rq.KIND_EXPIRY:
            details = d.get("details") or {}
            detail = f"expire by {details.get('backups_expire_by', '?')}"
            if details.get("purged_backup_days"):
                detail += f"; days {' to '.join(details['purged_backup_days'])} purged"
        if (d.get("details") or {}).get("withheld_for_hold"):
            detail += ("; " if detail else "") + (
                f"kept under another subject's legal hold: {d['details']['withheld_for_hold']}")
        rows.append((f"{d['category']}.{d['target']}", d["store"], d.get("location") or "", d.get("method") or "",
                     str(d["deleted"]), str(d["remaining"]), d.get("verified_at") or "", detail))
    return rows


def render_markdown(doc: Mapping[str, Any]) -> str:
    """A human-readable Markdown rendering of a signed certificate."""
    body, sig = doc["certificate"], doc["signature"]
    req, out, backups = body["request"], body["outcome"], body["backups"]
    subject = req["subject"]
    lines = [
        f"# Deletion certificate {body['certificate_id']}",
        "",
        f"- **Request:** {req['request_id']} ({req['request_type']}), reference `{req['reference']}`, "
        f"requested by {req['requested_by']}",
        f"- **Tenant:** {req['tenant_id']}",
        f"- **Subject:** {subject['type'] + ' with keyed hash `' + subject['keyed_hash'] + '`' if subject else 'the whole tenant'}",
        f"- **Categories:** {', '.join(req['categories'])}",
        f"- **Received:** {req['received_at']}; **due:** {req['due_at']}",
        f"- **Completed:** {out['completed_at']} ({'within' if out['within_window'] else 'AFTER'} the window); "
        f"**records deleted:** {out['records_deleted']}; **remaining:** {out['records_remaining']}"
        + (f"; **kept under another subject's legal hold:** {out['records_withheld']}"
           if out.get("records_withheld") else ""),
        "",
        "## What was deleted, where",
        "",
        "| step | store | where | method | deleted | remaining | verified at | note |",
        "|---|---|---|---|---:|---:|---|---|",
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in _rows(doc)]
    lines += ["", "## Backups", "", backups["statement"] + "."]
    if backups.get("purged_backup_days"):
        lines.append(f"Purged early ({backups['purged_because']}): "
                     + "; ".join(f"{t}: {' to '.join(d)}" for t, d in backups["purged_backup_days"].items()) + ".")
    lines += ["", "## Runs", ""]
    lines += [f"- `{r['run_id']}` ({r['dag_id']}), {r['first_at']} to {r.get('last_at', r['first_at'])}"
              for r in body["runs"]]
    audit = body["audit"]
    lines += [
        "",
        f"Audit: {audit['rows']} row(s) in `{audit['table']}`, {audit['deleted']} record(s) deleted, "
        f"{audit['failed']} failed attempt(s).",
        "",
        f"Late-arriving data: {body['late_data']['statement']} ({body['late_data']['swept_until']}).",
        "",
        f"Verification: {body['verification']['method']} ({body['verification']['verified_at']}).",
        "",
        f"Issued {body['issued_at']} under policy version {body['policy']['version']} "
        f"(sha256 `{body['policy']['sha256'][:16]}…`).",
        "",
        f"Signature: {sig['algorithm']}, key id `{sig['key_id']}`, value `{sig['value']}`. Check it with "
        f"`python -m include.retention.certificates verify <file.json>`.",
        "",
    ]
    return "\n".join(lines)


def render_html(doc: Mapping[str, Any]) -> str:
    """A self-contained HTML rendering of a signed certificate."""
    body, sig = doc["certificate"], doc["signature"]
    req, out, backups = body["request"], body["outcome"], body["backups"]
    e = html.escape
    subject = req["subject"]
    rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in _rows(doc))
    runs = "".join(f"<li><code>{e(r['run_id'])}</code> {e(r['first_at'] or '')}</li>" for r in body["runs"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(body['certificate_id'])}</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:.3em .5em;font-size:.9em}}code{{font-size:.85em}}</style></head><body>
<h1>Deletion certificate {e(body['certificate_id'])}</h1>
<dl>
<dt>Request</dt><dd>{e(req['request_id'])} ({e(req['request_type'])}), reference <code>{e(req['reference'])}</code>, requested by {e(req['requested_by'])}</dd>
<dt>Tenant</dt><dd>{e(req['tenant_id'])}</dd>
<dt>Subject</dt><dd>{e(subject['type'] + ', keyed hash ' + subject['keyed_hash']) if subject else 'the whole tenant'}</dd>
<dt>Received / due</dt><dd>{e(req['received_at'])} / {e(req['due_at'])}</dd>
<dt>Completed</dt><dd>{e(out['completed_at'])}: {out['records_deleted']} record(s) deleted, {out['records_remaining']} remaining</dd>
</dl>
<h2>What was deleted, where</h2>
<table><tr><th>step</th><th>store</th><th>where</th><th>method</th><th>deleted</th><th>remaining</th><th>verified at</th><th>note</th></tr>
{rows}</table>
<h2>Backups</h2><p>{e(backups['statement'])}.</p>
<h2>Runs</h2><ul>{runs}</ul>
<p>Signature {e(sig['algorithm'])}, key id <code>{e(sig['key_id'])}</code>: <code>{e(sig['value'])}</code></p>
</body></html>
"""


# --------------------------------------------------------------------------- storing


def _cos(conn_id: str) -> tuple[Any, str]:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=conn_id)
    bucket = hook.service_config.get("bucket_name")
    if not bucket:
        raise ValueError(f"connection {conn_id!r} names no bucket (service_config.s3.bucket_name)")
    return hook.get_conn(), str(bucket)


def cos_key(request_id: str, extension: str = "json") -> str:
    return f"{COS_PREFIX}{request_id}.{extension}"


def load(request_id: str, *, conn_id: str = LEDGER_CONN_ID) -> StoredCertificate | None:
    """A request's certificate from the ledger, or None."""
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(
            "SELECT request_id, certificate_id, issued_at, key_id, signature, cos_bucket, cos_key, document"
            " FROM certificates WHERE request_id = %s",
            (request_id,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    return StoredCertificate(str(row[0]), str(row[1]), row[2].replace(tzinfo=UTC), str(row[3]), str(row[4]),
                             row[5], row[6], json.loads(row[7]))


def issue(
    policy: Policy,
    request_id: str,
    *,
    keys: RetentionCrypto,
    run: RunRef,
    verified_at: datetime,
    cos_conn_id: str = COS_CONN_ID,
    conn_id: str = LEDGER_CONN_ID,
) -> StoredCertificate:
    """Build, sign and store the certificate of a verified request, then complete the request.

    Idempotent: a completed request's certificate is returned as it is. Order matters: the
    request becomes ``completed`` only once its certificate is stored in COS and the ledger.
    """
    request = rq.get_request(request_id, conn_id=conn_id)
    if request is None:
        raise LookupError(f"no request {request_id}")
    existing = load(request_id, conn_id=conn_id)
    if request.state == "completed" and existing is not None:
        return existing
    if request.state != "verifying":
        raise rq.InvalidTransition(f"request {request_id} is {request.state}; a certificate needs a verified request")
    steps = rq.list_steps(request_id, conn_id=conn_id)
    events = rq.list_events(request_id, conn_id=conn_id)
    issued_at = datetime.now(UTC)  # the record of when it was signed, not a decision
    body = build(policy, request, steps, events, verified_at=verified_at, issued_at=issued_at, conn_id=conn_id)
    document = sign(body, keys)
    check = verify_document(document, keys)
    if not check.ok:
        raise RuntimeError(f"refusing to issue an inconsistent certificate: {check}")
    client, bucket = _cos(cos_conn_id)
    data = json.dumps(document, indent=2, sort_keys=True).encode("utf-8")
    for extension, payload, content_type in (
        ("json", data, "application/json"),
        ("md", render_markdown(document).encode("utf-8"), "text/markdown; charset=utf-8"),
        ("html", render_html(document).encode("utf-8"), "text/html; charset=utf-8"),
    ):
        client.put_object(Bucket=bucket, Key=cos_key(request_id, extension), Body=payload, ContentType=content_type)
    with connect(conn_id) as conn:
        plain_cursor(conn).execute(
            """REPLACE INTO certificates (request_id, certificate_id, issued_at, key_id, signature, cos_bucket, cos_key,
                 document) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
            (request_id, body["certificate_id"], issued_at.astimezone(UTC).replace(tzinfo=None),
             document["signature"]["key_id"], document["signature"]["value"], bucket, cos_key(request_id),
             json.dumps(document, sort_keys=True)),
        )
    rq.transition(request_id, "completed", run_id=run.run_id, completed_at=verified_at, release=True,
                  message=f"certificate {body['certificate_id']} stored at s3://{bucket}/{cos_key(request_id)}",
                  conn_id=conn_id)
    log.info("Certificate %s issued: %d record(s) deleted, stored at s3://%s/%s", body["certificate_id"],
             body["outcome"]["records_deleted"], bucket, cos_key(request_id))
    stored = load(request_id, conn_id=conn_id)
    assert stored is not None
    return stored


# --------------------------------------------------------------------------- CLI


def _keys(args: argparse.Namespace) -> RetentionCrypto:
    from include.retention.crypto import RetentionCrypto

    if args.key_env:
        secret = os.environ.get(args.key_env)
        if not secret:
            raise SystemExit(f"environment variable {args.key_env} is empty")
        return RetentionCrypto(b"", b"", secret.encode())
    return RetentionCrypto.from_connection(args.conn_id)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.retention.certificates",
                                     description="Check the signature and consistency of a deletion certificate.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("verify", help="verify a certificate file (or one from the ledger)")
    check.add_argument("file", nargs="?", help="the certificate's JSON file")
    check.add_argument("--request-id", help="verify the certificate the ledger holds for this request")
    check.add_argument("--conn-id", default="retention_keys", help="Airflow connection with certificate_key")
    check.add_argument("--key-env", help="read the signing key from this environment variable instead")
    show = sub.add_parser("show", help="print a certificate from the ledger as Markdown")
    show.add_argument("request_id")
    args = parser.parse_args(argv)
    if args.command == "show":
        stored = load(args.request_id)
        if stored is None:
            print(f"no certificate for {args.request_id}", file=sys.stderr)
            return 1
        print(render_markdown(stored.document))
        return 0
    if bool(args.file) == bool(args.request_id):
        parser.error("give a file or --request-id")
    if args.file:
        with open(args.file, encoding="utf-8") as handle:
            document = json.load(handle)
    else:
        stored = load(args.request_id)
        if stored is None:
            print(f"no certificate for {args.request_id}", file=sys.stderr)
            return 1
        document = stored.document
    result = verify_document(document, _keys(args))
    print(result)
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
