"""The coverage check's results: ``coverage_runs`` (one row per run) and ``coverage_items``
(each item ever seen, its latest status and flags), migration 10.

No row holds a sampled value: an item is its scrubbed name (``coverage.items``) and three
counts (values sampled, phone-shaped, e-mail-shaped). ``alerted_at`` remembers that a new
unknown item was e-mailed, so each is e-mailed once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from include.retention.ledger.db import LEDGER_CONN_ID, connect, plain_cursor
from include.retention.timeutil import from_naive_utc, to_naive_utc, wall_clock

if TYPE_CHECKING:
    from include.retention.coverage.items import Finding

_NO_SUCH_TABLE = 1146

COVERAGE_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS coverage_runs (
      id              BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
      run_id          VARCHAR(250) NOT NULL,
      as_of           DATETIME(6)  NOT NULL COMMENT 'UTC; the run''s instant',
      started_at      DATETIME(6)  NOT NULL COMMENT 'UTC',
      finished_at     DATETIME(6)  NOT NULL COMMENT 'UTC',
      items           INT          NOT NULL,
      covered         INT          NOT NULL,
      exempt          INT          NOT NULL,
      unknown         INT          NOT NULL,
      likely_personal INT          NOT NULL,
      new_unknown     INT          NOT NULL,
      stores          TEXT         NULL COMMENT 'JSON: per store what was listed and the bounds; no values',
      KEY ix_run (run_id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE IF NOT EXISTS coverage_items (
      item_id       VARCHAR(400) NOT NULL PRIMARY KEY COMMENT 'store:kind:name, the name scrubbed',
      store         VARCHAR(16)  NOT NULL,
      kind          VARCHAR(16)  NOT NULL,
      name          VARCHAR(255) NOT NULL,
      status        VARCHAR(16)  NOT NULL COMMENT 'covered, exempt, unknown',
      covered_by    VARCHAR(500) NULL,
      reason        VARCHAR(500) NULL     COMMENT 'the exemption''s reason',
      owner         VARCHAR(128) NULL     COMMENT 'the exemption''s owner',
      flags         VARCHAR(255) NOT NULL DEFAULT '' COMMENT 'personal words in its names',
      members       INT          NOT NULL DEFAULT 1,
      sampled       INT          NOT NULL DEFAULT 0 COMMENT 'values looked at (counts only)',
      e164_matches  INT          NOT NULL DEFAULT 0,
      email_matches INT          NOT NULL DEFAULT 0,
      first_seen_at DATETIME(6)  NOT NULL COMMENT 'UTC; as of the run that first saw it',
      first_run_id  VARCHAR(250) NOT NULL,
      last_seen_at  DATETIME(6)  NOT NULL COMMENT 'UTC',
      last_run_id   VARCHAR(250) NOT NULL,
      alerted_at    DATETIME(6)  NULL     COMMENT 'UTC; when it was e-mailed as a new unknown item',
      KEY ix_last_run (last_run_id, status)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
)


@dataclass(frozen=True)
class CoverageRun:
    run_id: str
    as_of: datetime
    finished_at: datetime
    items: int
    covered: int
    exempt: int
    unknown: int
    likely_personal: int
    new_unknown: int
    stores: Mapping[str, Any]


@dataclass(frozen=True)
class CoverageItemRow:
    item_id: str
    store: str
    kind: str
    name: str
    status: str
    flags: tuple[str, ...]
    members: int
    sampled: int
    e164_matches: int
    email_matches: int
    first_seen_at: datetime
    last_seen_at: datetime
    alerted: bool
    reason: str | None = None
    owner: str | None = None
    covered_by: str | None = None

    @property
    def likely_personal(self) -> bool:
        return bool(self.flags) or self.e164_matches > 0 or self.email_matches > 0


def _cut(value: str | None, size: int) -> str | None:
    return None if value is None else value[:size]


def record_run(
    run_id: str,
    as_of: datetime,
    findings: Sequence[Finding],
    *,
    stores: Mapping[str, Any],
    started_at: datetime,
    conn_id: str = LEDGER_CONN_ID,
) -> list[str]:
    """Upsert every finding, write the run's row; the ids of unknown items not e-mailed yet."""
    seen = to_naive_utc(as_of)
    rows = [
        (f.id[:400], f.item.store, f.item.kind, f.item.name[:255], f.status, _cut(f.covered_by, 500),
         _cut(f.reason, 500), _cut(f.owner, 128), ",".join(f.flags)[:255], f.item.members, f.item.counts.sampled,
         f.item.counts.e164, f.item.counts.email, seen, run_id, seen, run_id)
        for f in findings
    ]
    unknown = [f.id[:400] for f in findings if f.status == "unknown"]
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        for start in range(0, len(rows), 500):
            cur.executemany(
                """INSERT INTO coverage_items (item_id, store, kind, name, status, covered_by, reason, owner, flags,
                     members, sampled, e164_matches, email_matches, first_seen_at, first_run_id, last_seen_at,
                     last_run_id)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON DUPLICATE KEY UPDATE status = VALUES(status), covered_by = VALUES(covered_by),
                     reason = VALUES(reason), owner = VALUES(owner), flags = VALUES(flags), members = VALUES(members),
                     sampled = VALUES(sampled), e164_matches = VALUES(e164_matches),
                     email_matches = VALUES(email_matches), last_seen_at = VALUES(last_seen_at),
                     last_run_id = VALUES(last_run_id)""",
                rows[start:start + 500],
            )
        fresh: list[str] = []
        for start in range(0, len(unknown), 500):
            chunk = unknown[start:start + 500]
            cur.execute(
                f"SELECT item_id FROM coverage_items WHERE alerted_at IS NULL AND item_id IN "
                f"({', '.join(['%s'] * len(chunk))}) ORDER BY item_id", tuple(chunk))
            fresh += [str(r[0]) for r in cur.fetchall()]
        counts = {s: sum(f.status == s for f in findings) for s in ("covered", "exempt", "unknown")}
        personal = sum(f.status == "unknown" and f.likely_personal for f in findings)
        cur.execute(
            """INSERT INTO coverage_runs (run_id, as_of, started_at, finished_at, items, covered, exempt, unknown,
                 likely_personal, new_unknown, stores) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (run_id, seen, to_naive_utc(started_at), to_naive_utc(wall_clock()), len(findings), counts["covered"],
             counts["exempt"], counts["unknown"], personal, len(fresh), json.dumps(dict(stores), sort_keys=True)),
        )
    return fresh


def mark_alerted(item_ids: Sequence[str], *, conn_id: str = LEDGER_CONN_ID) -> None:
    """Remember that these items were e-mailed."""
    if not item_ids:
        return
    with connect(conn_id) as conn:
        plain_cursor(conn).execute(
            f"UPDATE coverage_items SET alerted_at = %s WHERE alerted_at IS NULL AND item_id IN "
            f"({', '.join(['%s'] * len(item_ids))})", (to_naive_utc(wall_clock()), *item_ids))


# --------------------------------------------------------------------------- reads (dashboard, CLI)

_ITEM_COLUMNS = ("item_id, store, kind, name, status, flags, members, sampled, e164_matches, email_matches, "
                 "first_seen_at, last_seen_at, alerted_at, reason, owner, covered_by")


def latest_run(cur: Any) -> CoverageRun | None:
    """The last coverage run; None when there is none, or the ledger is not migrated that far."""
    import MySQLdb

    try:
        cur.execute("SELECT run_id, as_of, finished_at, items, covered, exempt, unknown, likely_personal, "
                    "new_unknown, stores FROM coverage_runs ORDER BY id DESC LIMIT 1")
    except MySQLdb.ProgrammingError as exc:
        if exc.args and exc.args[0] == _NO_SUCH_TABLE:
            return None
        raise
    row = cur.fetchone()
    if row is None:
        return None
    return CoverageRun(str(row[0]), from_naive_utc(row[1]), from_naive_utc(row[2]), *(int(v) for v in row[3:9]),  # type: ignore[arg-type]
                       stores=json.loads(row[9] or "{}"))


def run_items(cur: Any, run_id: str, *, statuses: Sequence[str] = ("unknown",), limit: int = 200) -> list[CoverageItemRow]:
    """Items the run saw with these statuses: likely personal first, then by store and name."""
    cur.execute(
        f"SELECT {_ITEM_COLUMNS} FROM coverage_items WHERE last_run_id = %s AND status IN "
        f"({', '.join(['%s'] * len(statuses))}) "
        "ORDER BY (flags <> '' OR e164_matches > 0 OR email_matches > 0) DESC, store, kind, name LIMIT %s",
        (run_id, *statuses, limit),
    )
    return [
        CoverageItemRow(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), tuple(f for f in str(r[5]).split(",") if f),
                        int(r[6]), int(r[7]), int(r[8]), int(r[9]), from_naive_utc(r[10]), from_naive_utc(r[11]),  # type: ignore[arg-type]
                        r[12] is not None, r[13], r[14], r[15])
        for r in cur.fetchall()
    ]


def read_latest(conn_id: str = LEDGER_CONN_ID, *, statuses: Sequence[str] = ("unknown",)) -> tuple[CoverageRun | None, list[CoverageItemRow]]:
    """The last run and its items of these statuses (the CLI's ``show``)."""
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        run = latest_run(cur)
        return run, (run_items(cur, run.run_id, statuses=statuses) if run else [])
