"""Issuing a certificate: build and sign it, store it three times over, then complete the request.

Each certificate is stored as the signed JSON, a Markdown and an HTML rendering in COS under
``certificates/<request_id>.{json,md,html}`` (the bucket of the ``retention_cos``
connection), and as the signed JSON in the ledger's ``certificates`` table. The request
becomes ``completed`` only once all of that is stored.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from include.retention.certificates.document import build, ledger_positions, sign, verify_document
from include.retention.certificates.render import render_html, render_markdown
from include.retention.copies.read import deleted_by_store, read_copies
from include.retention.copies.values import section
from include.retention.ledger.approvals import approval_of, request_scope
from include.retention.ledger.certificates import StoredCertificate, load_certificate, save_certificate
from include.retention.ledger.db import LEDGER_CONN_ID
from include.retention.ledger.requests import get_request, list_events, transition
from include.retention.ledger.request_steps import list_steps
from include.retention.request_states import InvalidTransition
from include.retention.timeutil import wall_clock

if TYPE_CHECKING:
    from include.retention.airflow_context import RunRef
    from include.retention.crypto import RetentionCrypto
    from include.retention.policy import Policy

log = logging.getLogger(__name__)

COS_PREFIX = "certificates/"
COS_CONN_ID = "retention_cos"


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
    return load_certificate(request_id, conn_id=conn_id)


def issue(
    policy: Policy,
    request_id: str,
    *,
    crypto: RetentionCrypto,
    run: RunRef,
    verified_at: datetime,
    cos_conn_id: str = COS_CONN_ID,
    conn_id: str = LEDGER_CONN_ID,
) -> StoredCertificate:
    """Build, sign and store the certificate of a verified request, then complete the request.

    Idempotent: a completed request's certificate is returned as it is. Order matters: the
    request becomes ``completed`` only once its certificate is stored in COS and the ledger.
    """
    request = get_request(request_id, conn_id=conn_id)
    if request is None:
        raise LookupError(f"no request {request_id}")
    existing = load(request_id, conn_id=conn_id)
    if request.state == "completed" and existing is not None:
        return existing
    if request.state != "verifying":
        raise InvalidTransition(f"request {request_id} is {request.state}; a certificate needs a verified request")
    steps = list_steps(request_id, conn_id=conn_id)
    events = list_events(request_id, conn_id=conn_id)
    issued_at = wall_clock()  # the record of when it was signed, not a decision
    approved = approval_of(request_scope(request_id), conn_id=conn_id)
    # Each store's copies beside the data (binary logs, persistence files, versions, snapshots), read now.
    copies = section(read_copies(deleted_by_store(steps, verified_at), policy.timezone),
                     due_at=request.due_at, read_at=issued_at)
    body = build(policy, request, steps, events, verified_at=verified_at, issued_at=issued_at,
                 approval=approved.as_dict() if approved else None,
                 ledger_positions=ledger_positions(request, events, conn_id), derived_copies=copies, conn_id=conn_id)
    document = sign(body, crypto)
    check = verify_document(document, crypto)
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
    save_certificate(request_id, certificate_id=body["certificate_id"], issued_at=issued_at, document=document,
                     cos_bucket=bucket, cos_key=cos_key(request_id), conn_id=conn_id)
    transition(request_id, "completed", run_id=run.run_id, completed_at=verified_at, release=True,
               message=f"certificate {body['certificate_id']} stored at s3://{bucket}/{cos_key(request_id)}",
               conn_id=conn_id)
    log.info("Certificate %s issued: %d record(s) deleted, stored at s3://%s/%s", body["certificate_id"],
             body["outcome"]["records_deleted"], bucket, cos_key(request_id))
    stored = load(request_id, conn_id=conn_id)
    assert stored is not None
    return stored
