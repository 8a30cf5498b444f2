"""Requests in the ledger: the ``requests``, ``request_steps``, ``request_events`` and
``request_step_keys`` tables, their values, and the only SQL that touches them.

A request's row never holds a raw subject id: a keyed hash (``subject_hash``) and, while
its window is open, a Fernet token (``subject_enc``). :func:`transition` is the state
machine's compare-and-set; :func:`claim` the lease one run holds on a request.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Sequence

from include.retention.ledger.chain import chained
from include.retention.ledger.db import LEDGER_CONN_ID, connect, plain_cursor
from include.retention.request_states import OPEN_STATES, TERMINAL_STATES, allowed_from, check_transition
from include.retention.timeutil import UTC, days_left, from_naive_utc, to_naive_utc, wall_clock

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Request:
    """A request as the ledger holds it (no raw subject id)."""

    request_id: str
    reference: str
    request_type: str
    tenant_id: str
    subject_type: str | None
    subject_hash: str | None
    subject_enc: str | None = field(repr=False)
    categories: tuple[str, ...]
    received_at: datetime
    due_at: datetime
    state: str
    requested_by: str
    mode: str
    error: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    run_id: str | None
    lease_until: datetime | None
    attempts: int
    failed_step: str | None

    @property
    def is_open(self) -> bool:
        return self.mode == "execute" and self.state in OPEN_STATES

    def days_left(self, as_of: datetime) -> int:
        """Whole days until ``due_at`` (rounded up); 0 or less once it has passed."""
        return days_left(self.due_at, as_of)

    def summary(self) -> dict[str, Any]:
        """JSON without personal data (the subject appears as its keyed hash)."""
        return {
            "request_id": self.request_id,
            "reference": self.reference,
            "request_type": self.request_type,
            "tenant_id": self.tenant_id,
            "subject_type": self.subject_type,
            "subject_hash": self.subject_hash,
            "categories": list(self.categories),
            "received_at": self.received_at.isoformat(),
            "due_at": self.due_at.isoformat(),
            "state": self.state,
            "mode": self.mode,
            "error": self.error,
            "failed_step": self.failed_step,
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
        }


@dataclass(frozen=True)
class Event:
    at: datetime
    run_id: str | None
    event: str
    from_state: str | None
    to_state: str | None
    message: str | None



# --------------------------------------------------------------------------- ledger rows

_REQUEST_COLUMNS = (
    "request_id, reference, request_type, tenant_id, subject_type, subject_hash, subject_enc, categories, "
    "received_at, due_at, state, requested_by, mode, error, created_at, updated_at, completed_at, run_id, "
    "lease_until, attempts, failed_step"
)
def _request_from_row(row: Sequence[Any]) -> Request:
    return Request(
        request_id=str(row[0]), reference=str(row[1]), request_type=str(row[2]), tenant_id=str(row[3]),
        subject_type=row[4], subject_hash=row[5], subject_enc=row[6], categories=tuple(json.loads(row[7] or "[]")),
        received_at=from_naive_utc(row[8]), due_at=from_naive_utc(row[9]), state=str(row[10]),  # type: ignore[arg-type]
        requested_by=str(row[11]), mode=str(row[12]), error=row[13], created_at=from_naive_utc(row[14]),  # type: ignore[arg-type]
        updated_at=from_naive_utc(row[15]), completed_at=from_naive_utc(row[16]), run_id=row[17],  # type: ignore[arg-type]
        lease_until=from_naive_utc(row[18]), attempts=int(row[19] or 0), failed_step=row[20],
    )


def new_request_id(request_type: str | None, received_at: datetime) -> str:
    prefix = {"termination": "TRM", "deletion": "DEL"}.get(str(request_type), "REQ")
    return f"{prefix}-{received_at.astimezone(UTC):%Y%m%d}-{secrets.token_hex(4)}"


def get_request(request_id: str, *, conn_id: str = LEDGER_CONN_ID) -> Request | None:
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE request_id = %s", (request_id,))
        row = cur.fetchone()
    return _request_from_row(row) if row else None


def find_by_reference(reference: str, *, conn_id: str = LEDGER_CONN_ID) -> Request | None:
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE reference = %s", (reference,))
        row = cur.fetchone()
    return _request_from_row(row) if row else None


def list_requests(
    *,
    states: Iterable[str] | None = None,
    tenant_id: str | None = None,
    mode: str | None = None,
    conn_id: str = LEDGER_CONN_ID,
) -> list[Request]:
    """Requests, optionally filtered, ordered by due date."""
    clauses: list[str] = []
    params: list[Any] = []
    if states is not None:
        wanted = list(states)
        if not wanted:
            return []
        clauses.append(f"state IN ({', '.join(['%s'] * len(wanted))})")
        params += wanted
    if tenant_id is not None:
        clauses.append("tenant_id = %s")
        params.append(tenant_id)
    if mode is not None:
        clauses.append("mode = %s")
        params.append(mode)
    sql = f"SELECT {_REQUEST_COLUMNS} FROM requests"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(sql + " ORDER BY due_at, request_id", tuple(params))
        return [_request_from_row(r) for r in cur.fetchall()]


def list_events(request_id: str, *, conn_id: str = LEDGER_CONN_ID) -> list[Event]:
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(
            "SELECT at, run_id, event, from_state, to_state, message FROM request_events"
            " WHERE request_id = %s ORDER BY id",
            (request_id,),
        )
        return [Event(from_naive_utc(r[0]), r[1], str(r[2]), r[3], r[4], r[5]) for r in cur.fetchall()]  # type: ignore[arg-type]


def record_event(
    request_id: str,
    event: str,
    *,
    run_id: str | None,
    message: str = "",
    from_state: str | None = None,
    to_state: str | None = None,
    conn_id: str = LEDGER_CONN_ID,
    cur: Any = None,
) -> None:
    """Append to the request's history (no personal data in ``message``)."""
    params = (request_id, to_naive_utc(wall_clock()), run_id, event[:32], from_state, to_state, message[:4000] or None)
    sql = ("INSERT INTO request_events (request_id, at, run_id, event, from_state, to_state, message)"
           " VALUES (%s, %s, %s, %s, %s, %s, %s)")
    if cur is not None:
        _append_event(cur, sql, params)
        return
    with connect(conn_id) as conn:
        _append_event(plain_cursor(conn), sql, params)


def _append_event(cur: Any, sql: str, params: tuple[Any, ...]) -> None:
    """Insert one event and chain it, in one transaction (``ledger/chain.py``)."""
    with chained(cur, "request_events") as chain:
        cur.execute(sql, params)
        chain.link("request_events", int(cur.lastrowid))


def transition(
    request_id: str,
    to_state: str,
    *,
    run_id: str | None,
    message: str = "",
    error: str | None = None,
    failed_step: str | None = None,
    completed_at: datetime | None = None,
    release: bool = False,
    conn_id: str = LEDGER_CONN_ID,
) -> Request:
    """Move a request to ``to_state`` if the state machine allows it (compare-and-set).

    :param error: stored with ``failed`` and ``rejected``; cleared by any other state.
    :param release: end the run's lease (the run is done with the request).
    """
    sources = sorted(allowed_from(to_state))
    now = to_naive_utc(wall_clock())
    sets = ["state = %s", "updated_at = %s", "error = %s", "failed_step = %s"]
    params: list[Any] = [to_state, now, error if to_state in ("failed", "rejected") else None,
                         failed_step if to_state == "failed" else None]
    if completed_at is not None:
        sets.append("completed_at = %s")
        params.append(to_naive_utc(completed_at))
    if release:
        sets.append("lease_until = NULL")
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute("SELECT state FROM requests WHERE request_id = %s", (request_id,))
        row = cur.fetchone()
        if row is None:
            raise LookupError(f"no request {request_id}")
        current = str(row[0])
        check_transition(current, to_state)
        cur.execute(
            f"UPDATE requests SET {', '.join(sets)} WHERE request_id = %s AND state = %s",
            (*params, request_id, current),
        )
        if cur.rowcount != 1:
            cur.execute("SELECT state FROM requests WHERE request_id = %s", (request_id,))
            now_state = str(cur.fetchone()[0])
            check_transition(now_state, to_state)  # raced: try once more from the new state
            cur.execute(
                f"UPDATE requests SET {', '.join(sets)} WHERE request_id = %s AND state IN "
                f"({', '.join(['%s'] * len(sources))})",
                (*params, request_id, *sources),
            )
            current = now_state
        if current != to_state or message:
            record_event(request_id, "state", run_id=run_id, message=message or (error or ""),
                         from_state=current, to_state=to_state, cur=cur)
    log.info("Request %s: %s -> %s", request_id, current, to_state)
    request = get_request(request_id, conn_id=conn_id)
    assert request is not None
    return request


def insert_request(
    request_id: str,
    *,
    reference: str,
    request_type: str,
    tenant_id: str,
    subject_type: str | None,
    subject_hash: str | None,
    subject_enc: str | None,
    categories: Sequence[str],
    received_at: datetime,
    due_at: datetime,
    state: str,
    requested_by: str,
    mode: str,
    error: str | None,
    run_id: str | None,
    conn_id: str,
) -> bool:
    """Insert a request row; False when the reference is taken (a duplicate submission)."""
    import MySQLdb

    now = to_naive_utc(wall_clock())
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        try:
            cur.execute(
                """INSERT INTO requests (request_id, reference, request_type, tenant_id, subject_type, subject_hash,
                     subject_enc, categories, received_at, due_at, state, requested_by, mode, error, created_at,
                     updated_at, run_id)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                (request_id, reference, request_type[:16], tenant_id[:64], subject_type, subject_hash, subject_enc,
                 json.dumps(list(categories)), to_naive_utc(received_at), to_naive_utc(due_at), state,
                 requested_by[:128], mode[:16], error, now, now, None),  # run_id: set by claim()
            )
        except MySQLdb.IntegrityError as exc:
            if exc.args and exc.args[0] == 1062:  # duplicate key: the reference is taken
                return False
            raise
        record_event(request_id, "submitted" if state != "rejected" else "rejected", run_id=run_id,
                     message=error or f"{request_type} request received ({mode})", to_state=state, cur=cur)
    return True



def claim(
    request_id: str, *, run_id: str, run_after: datetime, lease: timedelta, conn_id: str = LEDGER_CONN_ID
) -> bool:
    """Let ``run_id`` work on the request until ``run_after + lease``; False if another live run holds it.

    The lease ends with the holding run's ``dagrun_timeout`` (Airflow stops a run by then),
    so a run that died leaves a request any later run may take over. Time comes from the
    run (``run_after``), not from the worker's clock.
    """
    until = to_naive_utc(run_after + lease)
    now = to_naive_utc(run_after)
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        # attempts is assigned before run_id: MySQL evaluates SET left to right
        cur.execute(
            """UPDATE requests SET attempts = attempts + (run_id IS NULL OR run_id <> %s), run_id = %s, lease_until = %s
               WHERE request_id = %s AND state NOT IN ('completed', 'rejected')
                 AND (run_id IS NULL OR run_id = %s OR lease_until IS NULL OR lease_until < %s)""",
            (run_id, run_id, until, request_id, run_id, now),
        )
        claimed = cur.rowcount == 1
        if claimed:
            record_event(request_id, "claimed", run_id=run_id, message=f"lease until {until.isoformat()}Z", cur=cur)
    return claimed


def release(request_id: str, *, conn_id: str = LEDGER_CONN_ID) -> None:
    with connect(conn_id) as conn:
        plain_cursor(conn).execute("UPDATE requests SET lease_until = NULL WHERE request_id = %s", (request_id,))


def promote_to_execute(request_id: str, *, conn_id: str = LEDGER_CONN_ID) -> None:
    """A ``preview`` request becomes ``execute`` (its reference was submitted again to carry it out)."""
    with connect(conn_id) as conn:
        plain_cursor(conn).execute(
            "UPDATE requests SET mode = 'execute', updated_at = %s WHERE request_id = %s AND mode = 'preview'",
            (to_naive_utc(wall_clock()), request_id),
        )



def forget_closed_subjects(as_of: datetime, *, conn_id: str = LEDGER_CONN_ID) -> int:
    """Drop the subject token of requests whose window has closed (completed, or never
    executed), keeping only the keyed hash. Returns how many were forgotten."""
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(
            """UPDATE requests SET subject_enc = NULL, updated_at = %s
               WHERE subject_enc IS NOT NULL AND due_at < %s AND (state = 'completed' OR mode = 'preview')""",
            (to_naive_utc(wall_clock()), to_naive_utc(as_of)),
        )
        return int(cur.rowcount)


# --------------------------------------------------------------------------- runs of requests


def closed_by_run(
    run_ids: Iterable[str], as_of: datetime, *, chunk: int = 100, conn_id: str = LEDGER_CONN_ID
) -> dict[str, bool]:
    """For each run the ledger's request events name: True when every request it touched is
    closed as of ``as_of`` (terminal, or a preview whose window has passed). Runs the ledger
    never saw are absent."""
    terminal = sorted(TERMINAL_STATES)
    as_of_utc = to_naive_utc(as_of)
    ids = sorted(set(run_ids))
    closed: dict[str, bool] = {}
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        for start in range(0, len(ids), chunk):
            some = ids[start:start + chunk]
            cur.execute(
                f"""SELECT e.run_id,
                           MIN(r.state IN ({', '.join(['%s'] * len(terminal))})
                               OR (r.mode = 'preview' AND r.due_at < %s))
                    FROM request_events e JOIN requests r ON r.request_id = e.request_id
                    WHERE e.run_id IN ({', '.join(['%s'] * len(some))})
                    GROUP BY e.run_id""",
                (*terminal, as_of_utc, *some),
            )
            closed.update({str(run_id): bool(all_closed) for run_id, all_closed in cur.fetchall()})
    return closed


# --------------------------------------------------------------------------- reads for the dashboard

#: The request columns with the subject's keyed hash and token as NULL: the dashboard never selects them.
_LISTED_COLUMNS = ", ".join("NULL" if c in ("subject_hash", "subject_enc") else c for c in _REQUEST_COLUMNS.split(", "))


def list_for_dashboard(
    cur: Any, *, exclude_states: Iterable[str] = (), state: str | None = None, tenant_id: str | None = None,
    limit: int, closed_since: datetime | None = None,
) -> list[Request]:
    """Requests (not in ``exclude_states``, in ``state``, of ``tenant_id``; with ``closed_since``,
    open or closed since then) by due date, at most ``limit``, read on the dashboard's cursor;
    without their subject hash and token."""
    excluded = sorted(exclude_states)
    clauses = [f"state NOT IN ({', '.join(['%s'] * len(excluded))})"] if excluded else []
    params: list[Any] = list(excluded)
    if closed_since is not None:  # a rejected request has no completed_at: when it was refused
        terminal = sorted(TERMINAL_STATES)
        clauses.append(f"(state NOT IN ({', '.join(['%s'] * len(terminal))})"
                       " OR COALESCE(completed_at, updated_at) >= %s)")
        params += [*terminal, to_naive_utc(closed_since)]
    for column, value in (("state", state), ("tenant_id", tenant_id)):
        if value:
            clauses.append(f"{column} = %s")
            params.append(value)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    cur.execute(f"SELECT {_LISTED_COLUMNS} FROM requests{where} ORDER BY due_at, reference LIMIT %s", (*params, limit))
    return [_request_from_row(r) for r in cur.fetchall()]


def states_in_use(cur: Any) -> set[str]:
    """Every state some request of the ledger is in."""
    cur.execute("SELECT DISTINCT state FROM requests")
    return {str(r[0]) for r in cur.fetchall()}
