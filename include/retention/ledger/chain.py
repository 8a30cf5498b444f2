"""Hash chains over the ledger's history: the ``ledger_chain`` and ``ledger_chain_heads`` tables
(migration 9), and the only SQL that writes them.

Four chains, each one order of events: ``purge_audit``, ``request_events``, ``certificates``
and ``decisions`` (the ``approvals``, ``legal_holds`` and ``tenant_overrides`` rows). Every
write to a chained row appends one entry to its chain, in the same transaction:

- ``append``: the row was inserted; ``settle``: it was updated (an audit row going
  ``running`` -> ``ok``, a hold released, a certificate stored again); ``remove``: it was
  deleted (an override cleared); ``adopt``: migration 9 chained a row that existed before it.
- ``content_hash``: SHA-256 of the row's columns (``COLUMNS``) as the server stores them,
  read back inside the transaction; ``hash``: SHA-256 of the entry (its chain, position,
  row, operation, content hash, the previous entry's hash and its time).

An entry holds hashes only: nothing of the row that the row does not already hold. A row's
current content must match its chain's last entry for it; older entries prove its earlier
states were chained in that order. The head row of a chain is locked (``SELECT ... FOR
UPDATE``) for the whole write, so parallel tasks on several workers append one after another.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterator, Sequence

from include.retention.timeutil import to_naive_utc, wall_clock

GENESIS = "0" * 64
OPS = ("adopt", "append", "settle", "remove")

#: Which tables each chain orders.
CHAINS: dict[str, tuple[str, ...]] = {
    "purge_audit": ("purge_audit",),
    "request_events": ("request_events",),
    "certificates": ("certificates",),
    "decisions": ("approvals", "legal_holds", "tenant_overrides"),
}
CHAIN_OF: dict[str, str] = {table: chain for chain, tables in CHAINS.items() for table in tables}

#: The columns hashed for each table, fixed: a column added later is not covered until a new
#: version of the chain names it (hashing every column would break every row on each ALTER).
#: The id is not hashed: the entry names it, so a row moved to another id is seen as moved.
COLUMNS: dict[str, tuple[str, ...]] = {
    "purge_audit": (
        "run_id", "dag_id", "task_id", "category", "target", "store", "selection_kind", "tenant_id",
        "subject_type", "subject_hash", "cutoff", "units_count", "planned", "deleted", "verified_remaining",
        "method", "dry_run", "override_reason", "duration_s", "outcome", "error", "details", "started_at",
        "finished_at", "attempt_key", "settled_by", "rule", "withheld", "approved_by",
    ),
    "request_events": ("request_id", "at", "run_id", "event", "from_state", "to_state", "message"),
    "certificates": ("request_id", "certificate_id", "issued_at", "key_id", "signature", "cos_bucket",
                     "cos_key", "document"),
    "approvals": ("scope", "dag_id", "run_id", "task_id", "outcome", "triggered_by", "responded_by",
                  "responded_at", "reason", "details", "recorded_at"),
    "legal_holds": ("tenant_id", "subject_type", "subject_hash", "subject_enc", "reason", "placed_by",
                    "placed_at", "released_at"),
    "tenant_overrides": ("tenant_id", "category", "retention_months", "reason", "set_by", "set_at"),
}


@dataclass(frozen=True)
class Position:
    """Where one write sits in its chain."""

    chain: str
    seq: int
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {"chain": self.chain, "seq": self.seq, "hash": self.hash}


@dataclass(frozen=True)
class Entry:
    chain: str
    seq: int
    table: str
    row_id: int
    op: str
    content_hash: str | None
    prev_hash: str
    at: datetime

    def digest(self) -> str:
        return entry_hash(self.chain, self.seq, self.table, self.row_id, self.op, self.content_hash, self.prev_hash,
                          self.at)


# --------------------------------------------------------------------------- hashing (pure)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float)):
        return int(value) if isinstance(value, bool) else value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return str(value)


def content_hash(table: str, row: Sequence[Any]) -> str:
    """SHA-256 of one row's ``COLUMNS[table]`` values, as the server returns them."""
    if len(row) != len(COLUMNS[table]):
        raise ValueError(f"{table}: {len(row)} values for {len(COLUMNS[table])} columns")
    doc = json.dumps([table, [_plain(v) for v in row]], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()


def entry_hash(chain: str, seq: int, table: str, row_id: int, op: str, content: str | None, prev: str,
               at: datetime) -> str:
    """SHA-256 of one chain entry; ``prev`` is the previous entry's (``GENESIS`` for the first)."""
    doc = "\x1f".join((chain, str(int(seq)), table, str(int(row_id)), op, content or "-", prev,
                       at.replace(tzinfo=None).isoformat(timespec="microseconds")))
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- writing


def select_columns(table: str, alias: str = "") -> str:
    """The row's id, then its hashed columns, for a SELECT."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}`{c}`" for c in ("id", *COLUMNS[table]))


class ChainWriter:
    """Appends entries to one chain whose head row this transaction holds locked."""

    def __init__(self, cur: Any, chain: str, length: int, head: str) -> None:
        self._cur, self.chain, self.length, self.head = cur, chain, length, head
        self.positions: list[Position] = []

    def link(self, table: str, row_id: int, op: str = "append") -> Position:
        """Chain the current state of one row (read back now), or its removal (``op='remove'``)."""
        if CHAIN_OF.get(table) != self.chain:
            raise ValueError(f"table {table!r} is not in chain {self.chain!r}")
        if op not in OPS:
            raise ValueError(f"unknown chain operation {op!r}")
        content: str | None = None
        if op != "remove":
            self._cur.execute(f"SELECT {select_columns(table)} FROM `{table}` WHERE id = %s", (int(row_id),))
            row = self._cur.fetchone()
            if row is None:
                raise LookupError(f"{table} row {row_id} is not there to chain")
            content = content_hash(table, row[1:])
        return self._add(table, int(row_id), op, content)

    def _add(self, table: str, row_id: int, op: str, content: str | None) -> Position:
        entry = Entry(self.chain, self.length + 1, table, row_id, op, content, self.head,
                      to_naive_utc(wall_clock()))
        digest = entry.digest()
        self._cur.execute(
            """INSERT INTO ledger_chain (chain, seq, tbl, row_id, op, content_hash, prev_hash, hash, at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (entry.chain, entry.seq, table, row_id, op, content, entry.prev_hash, digest, entry.at),
        )
        self.length, self.head = entry.seq, digest
        position = Position(self.chain, entry.seq, digest)
        self.positions.append(position)
        return position


@contextmanager
def chained(cur: Any, chain: str) -> Iterator[ChainWriter]:
    """A transaction on ``cur`` holding ``chain``'s head row locked: write rows, ``link`` each.

    Commits the rows and their entries together on exit, rolls both back on an error. The
    head is locked before anything is written, so ids and chain positions grow together.
    """
    if chain not in CHAINS:
        raise ValueError(f"unknown chain {chain!r}")
    cur.execute("START TRANSACTION")
    try:
        writer = ChainWriter(cur, chain, *_lock_head(cur, chain))
        yield writer
        if writer.positions:
            cur.execute("UPDATE ledger_chain_heads SET length = %s, head_hash = %s, updated_at = %s WHERE chain = %s",
                        (writer.length, writer.head, to_naive_utc(wall_clock()), chain))
        cur.execute("COMMIT")
    except BaseException:
        try:
            cur.execute("ROLLBACK")
        except Exception:  # noqa: BLE001 - a lost connection rolls back by itself; keep the first error
            pass
        raise


def _lock_head(cur: Any, chain: str) -> tuple[int, str]:
    cur.execute("SELECT length, head_hash FROM ledger_chain_heads WHERE chain = %s FOR UPDATE", (chain,))
    row = cur.fetchone()
    if row is None:
        raise RuntimeError(f"ledger chain {chain!r} has no head row: apply ledger migration 9 (retention migrate)")
    return int(row[0]), str(row[1])


def positions_of(cur: Any, table: str, row_ids: Sequence[int]) -> dict[int, Position]:
    """The last chain position of each of these rows (rows never chained are absent)."""
    ids = sorted({int(i) for i in row_ids})
    out: dict[int, Position] = {}
    for start in range(0, len(ids), 500):
        some = ids[start:start + 500]
        cur.execute(
            f"""SELECT l.row_id, l.seq, l.hash FROM ledger_chain l
                JOIN (SELECT row_id, MAX(seq) AS seq FROM ledger_chain WHERE chain = %s AND tbl = %s
                        AND row_id IN ({', '.join(['%s'] * len(some))}) GROUP BY row_id) m
                  ON l.chain = %s AND l.seq = m.seq""",
            (CHAIN_OF[table], table, *some, CHAIN_OF[table]),
        )
        out.update({int(r): Position(CHAIN_OF[table], int(s), str(h)) for r, s, h in cur.fetchall()})
    return out


# --------------------------------------------------------------------------- migration 9

#: Rows chained per transaction when migration 9 adopts what existed before it.
ADOPT_BATCH = 5000

CHAIN_DDL = (
    """CREATE TABLE IF NOT EXISTS ledger_chain (
      chain        VARCHAR(32)  NOT NULL,
      seq          BIGINT       NOT NULL COMMENT 'position in the chain, from 1',
      tbl          VARCHAR(32)  NOT NULL COMMENT 'the chained row''s table',
      row_id       BIGINT       NOT NULL COMMENT 'the chained row''s id',
      op           ENUM('adopt', 'append', 'settle', 'remove') NOT NULL,
      content_hash CHAR(64)     NULL     COMMENT 'sha256 of the row''s columns; NULL for remove',
      prev_hash    CHAR(64)     NOT NULL COMMENT 'hash of entry seq - 1 (64 zeros for the first)',
      hash         CHAR(64)     NOT NULL COMMENT 'sha256 of this entry',
      at           DATETIME(6)  NOT NULL COMMENT 'UTC',
      PRIMARY KEY (chain, seq),
      KEY ix_row (chain, tbl, row_id, seq)
    ) ENGINE=InnoDB DEFAULT CHARSET=ascii""",
    """CREATE TABLE IF NOT EXISTS ledger_chain_heads (
      chain        VARCHAR(32)  NOT NULL PRIMARY KEY,
      length       BIGINT       NOT NULL,
      head_hash    CHAR(64)     NOT NULL,
      updated_at   DATETIME(6)  NOT NULL COMMENT 'UTC',
      started_at   DATETIME(6)  NOT NULL COMMENT 'UTC: when migration 9 started the chain',
      adopted      BIGINT       NOT NULL DEFAULT 0 COMMENT 'rows that existed before and were chained then'
    ) ENGINE=InnoDB DEFAULT CHARSET=ascii""",
    # Certificates get an id so that the chain can name a row (the request id stays the key).
    "ALTER TABLE certificates ADD COLUMN IF NOT EXISTS id BIGINT NOT NULL AUTO_INCREMENT UNIQUE",
)


def adopt_existing(cur: Any) -> dict[str, int]:
    """Chain, once, every row that existed before migration 9 (op ``adopt``), and record where
    each chain starts. Idempotent: a rerun after an interruption chains only what is left.

    :return: rows adopted per chain by this call.
    """
    now = to_naive_utc(wall_clock())
    adopted: dict[str, int] = {}
    for chain, tables in CHAINS.items():
        cur.execute("INSERT IGNORE INTO ledger_chain_heads (chain, length, head_hash, updated_at, started_at)"
                    " VALUES (%s, 0, %s, %s, %s)", (chain, GENESIS, now, now))
        adopted[chain] = 0
        for table in tables:
            last = 0
            while True:
                with chained(cur, chain) as writer:
                    cur.execute(
                        f"""SELECT {select_columns(table, 't')} FROM `{table}` t
                            LEFT JOIN ledger_chain l ON l.chain = %s AND l.tbl = %s AND l.row_id = t.id
                            WHERE t.id > %s AND l.row_id IS NULL ORDER BY t.id LIMIT %s""",
                        (chain, table, last, ADOPT_BATCH),
                    )
                    rows = cur.fetchall()
                    entries = []
                    for row in rows:
                        entry = Entry(chain, writer.length + 1, table, int(row[0]), "adopt", content_hash(table, row[1:]),
                                      writer.head, now)
                        digest = entry.digest()
                        entries.append((chain, entry.seq, table, entry.row_id, "adopt", entry.content_hash,
                                        entry.prev_hash, digest, now))
                        writer.length, writer.head = entry.seq, digest
                    if entries:
                        cur.executemany(
                            """INSERT INTO ledger_chain (chain, seq, tbl, row_id, op, content_hash, prev_hash, hash, at)
                               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""", entries)
                        writer.positions.append(Position(chain, writer.length, writer.head))
                        cur.execute("UPDATE ledger_chain_heads SET adopted = adopted + %s WHERE chain = %s",
                                    (len(entries), chain))
                if not rows:
                    break
                last = int(rows[-1][0])
                adopted[chain] += len(rows)
    return adopted
