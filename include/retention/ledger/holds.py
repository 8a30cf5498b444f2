"""Legal holds: the ``legal_holds`` table (a tenant, or one subject of it, that no purge may touch)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence

from include.retention.facts import LegalHold, operator_text
from include.retention.ledger.chain import chained
from include.retention.ledger.db import LEDGER_CONN_ID, connect, plain_cursor
from include.retention.timeutil import from_naive_utc, to_naive_utc, wall_clock

if TYPE_CHECKING:
    from include.retention.crypto import RetentionCrypto

log = logging.getLogger(__name__)


def place_hold(
    tenant_id: str,
    *,
    reason: str,
    placed_by: str,
    subject_type: str | None = None,
    subject_id: str | None = None,
    crypto: RetentionCrypto | None = None,
    at: datetime | None = None,
    conn_id: str = LEDGER_CONN_ID,
) -> int:
    """Place a legal hold on a tenant, or on one subject of it; returns the hold's id.

    A subject is stored as its keyed hash and as a Fernet token (``crypto``), so that the
    daily purges can keep its rows out while the id itself never appears in the ledger.
    """
    tenant_id = operator_text(tenant_id, "tenant_id", 64)
    reason = operator_text(reason, "reason", 255)
    placed_by = operator_text(placed_by, "placed_by", 128)
    subject_hash = subject_enc = None
    if (subject_type is None) != (subject_id is None):
        raise ValueError("give subject_type and subject_id together, or neither for a whole-tenant hold")
    if subject_type is not None and subject_id is not None:
        if crypto is None:
            raise ValueError("a subject hold needs the retention keys to hash and encrypt the subject")
        subject_type = operator_text(subject_type, "subject_type", 32)
        subject_hash = crypto.subject_hash(tenant_id, subject_type, subject_id)
        subject_enc = crypto.encrypt_subject(subject_id)
    with connect(conn_id) as conn, chained(cur := plain_cursor(conn), "decisions") as chain:
        cur.execute(
            """INSERT INTO legal_holds (tenant_id, subject_type, subject_hash, subject_enc, reason, placed_by, placed_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            (tenant_id, subject_type, subject_hash, subject_enc, reason, placed_by, to_naive_utc(at or wall_clock())),
        )
        hold_id = int(cur.lastrowid)
        chain.link("legal_holds", hold_id)
    log.info("Legal hold %d placed on tenant %s%s", hold_id, tenant_id,
             f" ({subject_type} {subject_hash[:12]}…)" if subject_hash else "")
    return hold_id


def release_hold(hold_id: int, *, at: datetime | None = None, conn_id: str = LEDGER_CONN_ID) -> bool:
    """Release an active hold; False when it does not exist or was already released."""
    with connect(conn_id) as conn, chained(cur := plain_cursor(conn), "decisions") as chain:
        cur.execute("UPDATE legal_holds SET released_at = %s WHERE id = %s AND released_at IS NULL",
                    (to_naive_utc(at or wall_clock()), int(hold_id)))
        released = bool(cur.rowcount)
        if released:
            chain.link("legal_holds", int(hold_id), "settle")
    if released:
        log.info("Legal hold %d released", hold_id)
    return released


def list_holds(
    *, tenant_id: str | None = None, active_only: bool = True, conn_id: str = LEDGER_CONN_ID
) -> list[LegalHold]:
    """Holds, active ones only by default, optionally of one tenant, oldest first."""
    clauses: list[str] = []
    params: list[Any] = []
    if active_only:
        clauses.append("released_at IS NULL")
    if tenant_id is not None:
        clauses.append("tenant_id = %s")
        params.append(tenant_id)
    sql = ("SELECT id, tenant_id, subject_type, subject_hash, subject_enc, reason, placed_by, placed_at, released_at"
           " FROM legal_holds")
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(sql + " ORDER BY id", tuple(params))
        rows: Sequence[tuple[Any, ...]] = cur.fetchall()
    return [
        LegalHold(
            id=int(r[0]), tenant_id=str(r[1]), subject_type=r[2], subject_hash=r[3], subject_enc=r[4],
            reason=str(r[5]), placed_by=str(r[6]), placed_at=from_naive_utc(r[7]), released_at=from_naive_utc(r[8]),
        )
        for r in rows
    ]
