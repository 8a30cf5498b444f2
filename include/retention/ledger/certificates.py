"""Deletion certificates in the ledger: the ``certificates`` table (migration 4), its value,
and the only SQL that touches it.

A row holds the signed JSON document of one request's certificate and where its COS copies
lie. Writing and loading take a connection id; the dashboard's reads take the cursor of its
read-only session, and treat a ledger not yet migrated that far as holding no certificate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from include.retention.ledger.chain import chained
from include.retention.ledger.db import LEDGER_CONN_ID, connect, plain_cursor
from include.retention.timeutil import from_naive_utc, to_naive_utc

_NO_SUCH_TABLE = 1146
_COLUMNS = "request_id, certificate_id, issued_at, key_id, signature, cos_bucket, cos_key, document"


@dataclass(frozen=True)
class StoredCertificate:
    """A request's certificate as the ledger holds it."""

    request_id: str
    certificate_id: str
    issued_at: datetime
    key_id: str
    signature: str
    cos_bucket: str | None
    cos_key: str | None
    document: dict[str, Any]


@dataclass(frozen=True)
class CertificateListing:
    """A certificate with the request it certifies, as listed (no body, no subject)."""

    request_id: str
    certificate_id: str
    issued_at: datetime | None
    key_id: str
    cos_key: str | None
    reference: str
    tenant_id: str
    request_type: str
    state: str


def save_certificate(
    request_id: str,
    *,
    certificate_id: str,
    issued_at: datetime,
    document: Mapping[str, Any],
    cos_bucket: str,
    cos_key: str,
    conn_id: str = LEDGER_CONN_ID,
) -> None:
    """Store (or replace) a request's signed certificate, chained (``ledger/chain.py``): a
    replaced certificate keeps its row id and is chained as ``settle``."""
    with connect(conn_id) as conn, chained(cur := plain_cursor(conn), "certificates") as chain:
        cur.execute(
            """INSERT INTO certificates (request_id, certificate_id, issued_at, key_id, signature, cos_bucket, cos_key,
                 document) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
               ON DUPLICATE KEY UPDATE certificate_id = VALUES(certificate_id), issued_at = VALUES(issued_at),
                 key_id = VALUES(key_id), signature = VALUES(signature), cos_bucket = VALUES(cos_bucket),
                 cos_key = VALUES(cos_key), document = VALUES(document)""",
            (request_id, certificate_id, to_naive_utc(issued_at), document["signature"]["key_id"],
             document["signature"]["value"], cos_bucket, cos_key, json.dumps(document, sort_keys=True)),
        )
        if changed := cur.rowcount:
            cur.execute("SELECT id FROM certificates WHERE request_id = %s", (request_id,))
            chain.link("certificates", int(cur.fetchone()[0]), "append" if changed == 1 else "settle")


def load_certificate(request_id: str, *, conn_id: str = LEDGER_CONN_ID) -> StoredCertificate | None:
    """A request's certificate, or None."""
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(f"SELECT {_COLUMNS} FROM certificates WHERE request_id = %s", (request_id,))
        row = cur.fetchone()
    if row is None:
        return None
    return StoredCertificate(str(row[0]), str(row[1]), from_naive_utc(row[2]), str(row[3]), str(row[4]),  # type: ignore[arg-type]
                             row[5], row[6], json.loads(row[7]))


# --------------------------------------------------------------------------- reads for the dashboard


def list_certificates(cur: Any, *, tenant: str | None = None, limit: int) -> list[CertificateListing]:
    """The certificates with their requests, newest first, at most ``limit``; none on a ledger
    not yet migrated that far."""
    import MySQLdb

    sql = (
        "SELECT c.request_id, c.certificate_id, c.issued_at, c.key_id, c.cos_key, r.reference, r.tenant_id,"
        " r.request_type, r.state FROM certificates c JOIN requests r ON r.request_id = c.request_id"
    )
    params: list[Any] = []
    if tenant:
        sql += " WHERE r.tenant_id = %s"
        params.append(tenant)
    try:
        cur.execute(sql + " ORDER BY c.issued_at DESC, c.request_id LIMIT %s", (*params, limit))
    except MySQLdb.ProgrammingError as exc:
        if exc.args and exc.args[0] == _NO_SUCH_TABLE:
            return []
        raise
    return [
        CertificateListing(
            request_id=str(r[0]), certificate_id=str(r[1]), issued_at=from_naive_utc(r[2]), key_id=str(r[3]),
            cos_key=r[4], reference=str(r[5]), tenant_id=str(r[6]), request_type=str(r[7]), state=str(r[8]),
        )
        for r in cur.fetchall()
    ]


def read_document(cur: Any, request_id: str) -> tuple[str, dict[str, Any]] | None:
    """(certificate id, signed document) of a request's certificate; None when it has none."""
    import MySQLdb

    try:
        cur.execute("SELECT certificate_id, document FROM certificates WHERE request_id = %s", (request_id,))
    except MySQLdb.ProgrammingError as exc:
        if exc.args and exc.args[0] == _NO_SUCH_TABLE:
            return None
        raise
    row = cur.fetchone()
    if row is None:
        return None
    return str(row[0]), json.loads(row[1])
