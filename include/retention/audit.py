"""The audit ledger: one row per purge, dry or real, ok or failed. No personal data.

A subject appears only as its keyed hash (``describe_selection``); error messages are
scrubbed of the subject ids the selection carries, of E.164 numbers and of e-mail
addresses before they are stored.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from include.retention.ledger import LEDGER_CONN_ID, connect, plain_cursor
from include.retention.policy import Target
from include.retention.stores.base import (
    ExpiredSelection,
    PartialPurgeError,
    PurgeResult,
    Selection,
    SubjectSelection,
    describe_selection,
)

log = logging.getLogger(__name__)

UTC = timezone.utc
Outcome = Literal["ok", "failed", "refused"]
MAX_ERROR_CHARS = 2000
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def _subject_ids(selection: Selection) -> list[str]:
    """Raw subject ids a selection carries (never to be written anywhere)."""
    if isinstance(selection, SubjectSelection):
        return [selection.subject_id]
    if isinstance(selection, ExpiredSelection):
        return [subject_id for _tenant, _type, subject_id in selection.exclude_subjects]
    return []


def scrub(text: str, selection: Selection) -> str:
    """``text`` without the selection's subject ids, phone numbers or e-mail addresses."""
    for subject_id in sorted(_subject_ids(selection), key=len, reverse=True):
        if len(subject_id) >= 3:  # shorter ids are not identifying, and would shred the text
            text = text.replace(subject_id, "[subject]")
    text = _E164.sub("[number]", text)
    text = _EMAIL.sub("[email]", text)
    return text[:MAX_ERROR_CHARS]


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return instant.astimezone(UTC).replace(tzinfo=None)


def record_purge(
    ledger_conn_id: str = LEDGER_CONN_ID,
    *,
    run_id: str,
    dag_id: str,
    task_id: str,
    target: Target,
    selection: Selection,
    result: PurgeResult | None = None,
    error: BaseException | None = None,
    started_at: datetime,
    finished_at: datetime,
    override_reason: str | None = None,
    outcome: Outcome | None = None,
    dry_run: bool = False,
) -> int:
    """Write one audit row for one purge of one selection in one target; returns its id.

    :param result: the purge's result (outcome ``ok``), or
    :param error: the exception it raised (outcome ``failed``; a PartialPurgeError's
        deleted-so-far is recorded). Give exactly one of the two.
    :param outcome: ``refused`` for a purge the package declined to run (give ``error``
        with the reason).
    :param dry_run: for a failed purge, whether it was a dry run (a result says it itself).
    """
    if (result is None) == (error is None):
        raise ValueError("give exactly one of result or error")
    description = describe_selection(selection)
    serialised = json.dumps(description, sort_keys=True, default=str)
    if "subject_id" in description or any(s and s in serialised for s in _subject_ids(selection) if len(s) >= 3):
        raise ValueError("refusing to audit a selection description that carries a subject id")

    if outcome is None:
        outcome = "ok" if result is not None else "failed"
    planned: int | None = None
    deleted = 0
    remaining: int | None = None
    method = "n/a"
    details: dict[str, object] = {"selection": description}
    error_text: str | None = None
    if result is not None:
        planned, deleted, remaining, method = result.planned, result.deleted, result.remaining, result.method
        dry_run = result.dry_run
        details["batches"] = result.batches
        if result.details:
            details["store"] = result.details
    else:
        assert error is not None
        if isinstance(error, PartialPurgeError):
            deleted = error.deleted
        error_text = scrub(f"{type(error).__name__}: {error}", selection)

    cutoff = _utc(selection.before) if isinstance(selection, ExpiredSelection) else None
    units = len(selection.units) if isinstance(selection, ExpiredSelection) else 0
    row = (
        run_id, dag_id, task_id, target.category, target.name, target.store, selection.kind,
        description.get("tenant"), description.get("subject_type"), description.get("subject_hash"),
        cutoff, units, planned, deleted, remaining, method, dry_run,
        scrub(override_reason, selection) if override_reason else None,
        max(0.0, (finished_at - started_at).total_seconds()), outcome, error_text,
        scrub(json.dumps(details, sort_keys=True, default=str), selection),
        _utc(started_at), _utc(finished_at),
    )
    with connect(ledger_conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(
            """INSERT INTO purge_audit (run_id, dag_id, task_id, category, target, store, selection_kind,
                 tenant_id, subject_type, subject_hash, cutoff, units_count, planned, deleted, verified_remaining,
                 method, dry_run, override_reason, duration_s, outcome, error, details, started_at, finished_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                 %s, %s)""",
            row,
        )
        audit_id = int(cur.lastrowid)
    log.info("Audit %d: %s %s of %s: %s, deleted %d%s", audit_id, "dry run" if dry_run else "purge",
             selection.kind, target.qualified_name, outcome, deleted, f" of {planned}" if planned is not None else "")
    return audit_id


@dataclass(frozen=True)
class AuditSummary:
    """What one run did to one target, summed over its audit rows."""

    store: str
    category: str
    target: str
    purges: int
    dry_runs: int
    failed: int
    refused: int
    planned: int
    deleted: int


def summary(run_id: str, *, ledger_conn_id: str = LEDGER_CONN_ID) -> list[AuditSummary]:
    """Counts per store and target for one run, ordered by store, category, target."""
    with connect(ledger_conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(
            """SELECT store, category, target, COUNT(*), SUM(dry_run), SUM(outcome = 'failed'),
                 SUM(outcome = 'refused'), COALESCE(SUM(planned), 0), COALESCE(SUM(CASE WHEN dry_run THEN 0 ELSE deleted END), 0)
               FROM purge_audit WHERE run_id = %s GROUP BY store, category, target ORDER BY store, category, target""",
            (run_id,),
        )
        rows = cur.fetchall()
    return [
        AuditSummary(str(s), str(c), str(t), int(n), int(d or 0), int(f or 0), int(r or 0), int(p), int(x))
        for s, c, t, n, d, f, r, p, x in rows
    ]
