"""A request's steps in the ledger: the ``request_steps`` and ``request_step_keys`` tables.

One step is one store target of one category (``StepSpec``, planned from the policy); its row
(``Step``) carries its progress: planned, deleted, re-counted, by which run, how often tried.
A step's object keys (a subject's recordings, resolved from MySQL before its rows go) are kept
beside it, so that a rerun deletes exactly the keys it planned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Iterator, Mapping, Sequence

from include.retention.ledger.db import LEDGER_CONN_ID, connect, plain_cursor
from include.retention.timeutil import from_naive_utc, to_naive_utc, wall_clock


@dataclass(frozen=True)
class StepSpec:
    """One step of a request: one store target of one category. Pure data, from the policy."""

    category: str
    target: str
    store: str
    kind: str
    location: str
    source: str | None = None  # purge_keys: the MySQL target whose column holds the keys
    column: str | None = None

    @property
    def qualified_name(self) -> str:
        return f"{self.category}.{self.target}"


@dataclass(frozen=True)
class Step:
    """A step as the ledger holds it."""

    request_id: str
    category: str
    target: str
    store: str
    kind: str
    state: str
    planned: int | None
    deleted: int
    verified_remaining: int | None
    run_id: str | None
    error: str | None
    updated_at: datetime
    verified_at: datetime | None
    location: str | None
    method: str | None
    attempts: int
    details: dict[str, Any]

    @property
    def qualified_name(self) -> str:
        return f"{self.category}.{self.target}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.qualified_name,
            "store": self.store,
            "kind": self.kind,
            "state": self.state,
            "location": self.location,
            "method": self.method,
            "planned": self.planned,
            "deleted": self.deleted,
            "remaining": self.verified_remaining,
            "verified_at": self.verified_at.isoformat() if self.verified_at else None,
            "run_id": self.run_id,
            "attempts": self.attempts,
            "error": self.error,
            "details": self.details,
        }


_STEP_COLUMNS = (
    "request_id, category, target, store, kind, state, planned, deleted, verified_remaining, run_id, error, "
    "updated_at, verified_at, location, method, attempts, details"
)


def _step_from_row(row: Sequence[Any]) -> Step:
    return Step(
        request_id=str(row[0]), category=str(row[1]), target=str(row[2]), store=str(row[3]), kind=str(row[4]),
        state=str(row[5]), planned=None if row[6] is None else int(row[6]), deleted=int(row[7] or 0),
        verified_remaining=None if row[8] is None else int(row[8]), run_id=row[9], error=row[10],
        updated_at=from_naive_utc(row[11]), verified_at=from_naive_utc(row[12]), location=row[13], method=row[14],  # type: ignore[arg-type]
        attempts=int(row[15] or 0), details=json.loads(row[16]) if row[16] else {},
    )


def list_steps(request_id: str, *, conn_id: str = LEDGER_CONN_ID) -> list[Step]:
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(f"SELECT {_STEP_COLUMNS} FROM request_steps WHERE request_id = %s", (request_id,))
        steps = [_step_from_row(r) for r in cur.fetchall()]
    return steps


def ensure_steps(request_id: str, specs: Sequence[StepSpec], *, conn_id: str = LEDGER_CONN_ID) -> None:
    """One row per step; existing rows (and their progress) are kept."""
    now = to_naive_utc(wall_clock())
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.executemany(
            """INSERT IGNORE INTO request_steps (request_id, category, target, store, kind, state, deleted, updated_at,
                 location) VALUES (%s, %s, %s, %s, %s, 'pending', 0, %s, %s)""",
            [(request_id, s.category, s.target, s.store, s.kind, now, s.location[:255]) for s in specs],
        )


def update_step(
    request_id: str, qualified_name: str, *, conn_id: str = LEDGER_CONN_ID, add_deleted: int = 0,
    add_attempt: bool = False, details: Mapping[str, Any] | None = None, **values: Any,
) -> None:
    """Set columns of one step (``state``, ``planned``, ``verified_remaining``, ``error``, ...)."""
    category, _, target = qualified_name.partition(".")
    allowed = {"state", "planned", "verified_remaining", "run_id", "error", "verified_at", "method"}
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"unknown step columns {sorted(unknown)}")
    sets = ["updated_at = %s"]
    params: list[Any] = [to_naive_utc(wall_clock())]
    for column, value in values.items():
        sets.append(f"{column} = %s")
        params.append(to_naive_utc(value) if isinstance(value, datetime) else value)
    if add_deleted:
        sets.append("deleted = deleted + %s")
        params.append(int(add_deleted))
    if add_attempt:
        sets.append("attempts = attempts + 1")
    if details is not None:
        sets.append("details = %s")
        params.append(json.dumps(dict(details), sort_keys=True, default=str))
    with connect(conn_id) as conn:
        plain_cursor(conn).execute(
            f"UPDATE request_steps SET {', '.join(sets)} WHERE request_id = %s AND category = %s AND target = %s",
            (*params, request_id, category, target),
        )


#: Object keys of a step are written and read this many at a time.
KEY_BATCH = 1_000


def store_keys(request_id: str, qualified_name: str, keys: Iterable[str], *, conn_id: str = LEDGER_CONN_ID) -> int:
    """Remember object keys of a step (idempotent); returns how many were offered."""
    category, _, target = qualified_name.partition(".")
    n = 0
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        batch: list[tuple[str, str, str, str]] = []
        for key in keys:
            batch.append((request_id, category, target, key))
            n += 1
            if len(batch) >= KEY_BATCH:
                cur.executemany("INSERT IGNORE INTO request_step_keys VALUES (%s, %s, %s, %s)", batch)
                batch = []
        if batch:
            cur.executemany("INSERT IGNORE INTO request_step_keys VALUES (%s, %s, %s, %s)", batch)
    return n


def stored_keys(request_id: str, qualified_name: str, *, conn_id: str = LEDGER_CONN_ID) -> Iterator[str]:
    """The step's remembered object keys, in key order, read in batches."""
    category, _, target = qualified_name.partition(".")
    after = ""
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        while True:
            cur.execute(
                "SELECT object_key FROM request_step_keys WHERE request_id = %s AND category = %s AND target = %s"
                " AND object_key > %s ORDER BY object_key LIMIT %s",
                (request_id, category, target, after, KEY_BATCH),
            )
            rows = [str(r[0]) for r in cur.fetchall()]
            yield from rows
            if len(rows) < KEY_BATCH:
                return
            after = rows[-1]
