"""Checking the ledger's hash chains (``ledger/chain.py``): read-only, streamed, one pass each.

Per chain:

1. **Entries**, in order: each one's position follows the last (a gap: entries deleted), its
   hash recomputes (else: edited), and it follows the previous entry's hash (else: an entry
   deleted with the rest renumbered, inserted, or moved: reordered).
2. **Rows against entries**, per table, merged by id: every row has an entry (else:
   inserted outside the package), every entry's row is still there unless it was chained as
   removed (else: deleted), and each row's content matches its last entry (else: edited, or
   reordered when it matches another row's entry).
3. **Certificates**: every chain position a certificate lists is still in its chain, with the
   same hash (a chain recomputed after an edit no longer matches what was signed).
4. **Checkpoints** (``ledger/checkpoints.py``): each signed checkpoint's head is still at its
   position. Only this catches rows cut off at the end together with their entries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from include.retention.ledger.chain import CHAINS, CHAIN_OF, GENESIS, Entry, content_hash, select_columns
from include.retention.ledger.db import LEDGER_CONN_ID, connect, plain_cursor

#: Findings kept per table and pass (the first one is what matters; the rest show the extent).
MAX_FINDINGS = 20
_FETCH = 5000


@dataclass(frozen=True)
class Finding:
    chain: str
    kind: str  # edited, deleted, inserted, reordered, truncated, rewritten, unsigned
    message: str
    seq: int | None = None
    table: str | None = None
    row_id: int | None = None

    def __str__(self) -> str:
        where = f"{self.table} row {self.row_id}" if self.table is not None and self.row_id is not None else self.chain
        at = f" (chain {self.chain} entry {self.seq})" if self.seq is not None else f" (chain {self.chain})"
        return f"{self.kind.upper()}: {where}{at}: {self.message}"


@dataclass(frozen=True)
class ChainState:
    """A chain as the verifier recomputed it: its valid length and head hash."""

    chain: str
    length: int
    head: str
    recorded_length: int | None = None
    adopted: int = 0
    started_at: str | None = None


@dataclass(frozen=True)
class Report:
    chains: tuple[ChainState, ...]
    findings: tuple[Finding, ...]
    checkpoints: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.findings

    def first(self) -> dict[str, Finding]:
        """Each tampered chain's first finding: the lowest chain position (unpositioned last)."""
        out: dict[str, Finding] = {}
        for f in sorted(self.findings, key=lambda f: (f.seq is None, f.seq or 0)):
            out.setdefault(f.chain, f)
        return out


def _stream(conn: Any, sql: str, params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
    """Rows of one query, fetched in chunks from a server-side cursor (no full result in memory)."""
    import MySQLdb.cursors

    cur = conn.cursor(MySQLdb.cursors.SSCursor)
    try:
        cur.execute(sql, tuple(params))
        while rows := cur.fetchmany(_FETCH):
            yield from rows
    finally:
        cur.close()


def _lookup(cur: Any, sql: str, params: Sequence[Any]) -> Any:
    cur.execute(sql, tuple(params))
    row = cur.fetchone()
    return row[0] if row else None


# --------------------------------------------------------------------------- 1. entries


def check_entries(conn: Any, lookup: Any, chain: str) -> tuple[ChainState, list[Finding]]:
    """Walk one chain's entries in order up to the first break; its valid length and head.

    :param lookup: a second connection, for the look-ups (``conn`` streams).
    """
    prev, expected = GENESIS, 1
    finding: Finding | None = None
    broken: tuple[int, str, int, str] | None = None
    entries = _stream(conn, "SELECT seq, tbl, row_id, op, content_hash, prev_hash, hash, at FROM ledger_chain"
                            " WHERE chain = %s ORDER BY seq", (chain,))
    for seq, tbl, row_id, op, content, prev_hash, digest, at in entries:
        seq = int(seq)
        if seq != expected:
            finding = Finding(chain, "deleted", f"entries {expected} to {seq - 1} are missing", expected)
            break
        if Entry(chain, seq, str(tbl), int(row_id), str(op), content, str(prev_hash), at).digest() != digest:
            finding = Finding(chain, "edited", "the entry's hash does not match its contents", seq, str(tbl),
                              int(row_id))
            break
        if prev_hash != prev:
            broken = (seq, str(tbl), int(row_id), str(prev_hash))
            break
        prev, expected = str(digest), expected + 1
    entries.close()
    if broken is not None:
        finding = _broken_link(lookup, chain, *broken)
    return ChainState(chain, expected - 1, prev), [finding] if finding else []


def _broken_link(conn: Any, chain: str, seq: int, table: str, row_id: int, prev_hash: str) -> Finding:
    """Why entry ``seq`` does not follow entry ``seq - 1``: where the hash it follows is now."""
    follows = _lookup(plain_cursor(conn), "SELECT seq FROM ledger_chain WHERE chain = %s AND hash = %s",
                      (chain, prev_hash))
    if follows is None:
        return Finding(chain, "deleted", "the entry it follows is no longer in the chain (deleted, the rest "
                                         "renumbered, or rewritten)", seq, table, row_id)
    if int(follows) > seq:
        return Finding(chain, "reordered", f"it follows entry {follows}, which comes after it", seq, table, row_id)
    return Finding(chain, "inserted", f"it follows entry {follows}: entries {int(follows) + 1} to {seq - 1} were "
                                      "inserted", int(follows) + 1, table, row_id)


# --------------------------------------------------------------------------- 2. rows against entries


def _last_entries(conn: Any, chain: str, table: str) -> Iterator[tuple[int, int, str, str | None]]:
    """(row id, seq, op, content hash) of each row's last entry, by row id."""
    current: tuple[int, int, str, str | None] | None = None
    for row_id, seq, op, content in _stream(
        conn, "SELECT row_id, seq, op, content_hash FROM ledger_chain WHERE chain = %s AND tbl = %s"
              " ORDER BY row_id, seq", (chain, table)):
        if current is not None and current[0] != int(row_id):
            yield current
        current = (int(row_id), int(seq), str(op), content)
    if current is not None:
        yield current


def check_rows(rows_conn: Any, entries_conn: Any, lookup: Any, table: str) -> list[Finding]:
    """Merge one table's rows with their last chain entries (both by id)."""
    chain = CHAIN_OF[table]
    findings: list[Finding] = []
    rows = _stream(rows_conn, f"SELECT {select_columns(table)} FROM `{table}` ORDER BY id", ())
    entries = _last_entries(entries_conn, chain, table)
    row, entry = next(rows, None), next(entries, None)
    while (row is not None or entry is not None) and len(findings) < MAX_FINDINGS:
        if entry is None or (row is not None and int(row[0]) < entry[0]):
            assert row is not None
            findings.append(Finding(chain, "inserted", "the row has no chain entry: written outside the package",
                                    None, table, int(row[0])))
            row = next(rows, None)
        elif row is None or entry[0] < int(row[0]):
            if entry[2] != "remove":
                findings.append(Finding(chain, "deleted", "the chain records the row, the table no longer holds it",
                                        entry[1], table, entry[0]))
            entry = next(entries, None)
        else:
            if entry[2] == "remove":
                findings.append(Finding(chain, "inserted", "the row was chained as removed and is back", entry[1],
                                        table, entry[0]))
            elif content_hash(table, row[1:]) != entry[3]:
                findings.append(_mismatch(lookup, chain, table, int(row[0]), entry[1], content_hash(table, row[1:])))
            row, entry = next(rows, None), next(entries, None)
    rows.close()
    entries.close()
    return findings


def _mismatch(conn: Any, chain: str, table: str, row_id: int, seq: int, content: str) -> Finding:
    other = _lookup(plain_cursor(conn), "SELECT row_id FROM ledger_chain WHERE chain = %s AND tbl = %s"
                                        " AND content_hash = %s AND row_id <> %s LIMIT 1", (chain, table, content, row_id))
    if other is not None:
        return Finding(chain, "reordered", f"the row holds what the chain recorded for row {other}", seq, table,
                       row_id)
    return Finding(chain, "edited", "the row's content differs from what its last chain entry recorded", seq,
                   table, row_id)


# --------------------------------------------------------------------------- 3. certificates


def check_certificates(conn: Any, lookup: Any) -> list[Finding]:
    """Every chain position a stored certificate lists is in its chain with the same hash."""
    findings: list[Finding] = []
    cur = plain_cursor(lookup)
    cur.execute("SELECT certificate_id, document FROM certificates ORDER BY id")
    for certificate_id, document in cur.fetchall():
        positions = (((json.loads(document).get("certificate") or {}).get("ledger") or {}).get("positions") or {})
        for chain, listed in positions.items():
            for p in listed:
                if p.get("seq") is None:
                    continue
                cur.execute("SELECT tbl, row_id, hash FROM ledger_chain WHERE chain = %s AND seq = %s",
                            (chain, int(p["seq"])))
                found = cur.fetchone()
                if found is None:
                    findings.append(Finding(chain, "deleted", f"certificate {certificate_id} names this entry; the "
                                            "chain no longer holds it", int(p["seq"]), p.get("table"), p.get("id")))
                elif (str(found[0]), int(found[1]), str(found[2])) != (p.get("table"), p.get("id"), p.get("hash")):
                    findings.append(Finding(chain, "rewritten", f"certificate {certificate_id} signed another entry "
                                            "at this position: the chain was recomputed", int(p["seq"]),
                                            p.get("table"), p.get("id")))
                if len(findings) >= MAX_FINDINGS:
                    return findings
    return findings


# --------------------------------------------------------------------------- 4. checkpoints


def check_checkpoint(conn: Any, checkpoint: Mapping[str, Any], states: Mapping[str, ChainState]) -> list[Finding]:
    """One signed checkpoint (already verified) against the chains as they are now."""
    findings: list[Finding] = []
    cur = plain_cursor(conn)
    name = checkpoint.get("checkpoint_id", "checkpoint")
    for chain, head in (checkpoint.get("chains") or {}).items():
        length = int(head["length"])
        if length == 0:
            continue
        state = states.get(chain)
        if state is None or state.length < length:
            have = state.length if state else 0
            held = _lookup(cur, "SELECT MAX(seq) FROM ledger_chain WHERE chain = %s", (chain,)) or 0
            if int(held) < length:
                findings.append(Finding(chain, "truncated", f"{name} saw {length} entries, the chain holds "
                                        f"{int(held)}: entries {int(held) + 1} to {length} were cut off", int(held) + 1))
            elif have < length:
                continue  # broken before the checkpoint's head: pass 1 reported where
            continue
        digest = _lookup(cur, "SELECT hash FROM ledger_chain WHERE chain = %s AND seq = %s", (chain, length))
        if digest != head["head"]:
            findings.append(Finding(chain, "rewritten", f"entry {length} differs from {name}'s signed head: the "
                                    "chain was recomputed up to there", length))
    return findings


# --------------------------------------------------------------------------- all of it


def verify_ledger(
    *, checkpoints: Sequence[Mapping[str, Any]] = (), unsigned: Sequence[Finding] = (),
    conn_id: str = LEDGER_CONN_ID,
) -> Report:
    """Check every chain, the certificates' positions and the given (signature-checked) checkpoints.

    :param unsigned: findings about checkpoints whose signature failed, to report with the rest.
    """
    states: dict[str, ChainState] = {}
    findings: list[Finding] = list(unsigned)
    with connect(conn_id) as rows_conn, connect(conn_id) as entries_conn, connect(conn_id) as lookup:
        cur = plain_cursor(rows_conn)
        cur.execute("SELECT chain, length, adopted, started_at FROM ledger_chain_heads")
        heads = {str(c): (int(n), int(a), s.isoformat() if s else None) for c, n, a, s in cur.fetchall()}
        for chain, tables in CHAINS.items():
            state, broken = check_entries(entries_conn, lookup, chain)
            recorded, adopted, started = heads.get(chain, (None, 0, None))
            states[chain] = ChainState(chain, state.length, state.head, recorded, adopted, started)
            findings += broken
            if recorded is None:
                findings.append(Finding(chain, "deleted", "the chain's head row is missing"))
            elif not broken and recorded != state.length:
                findings.append(Finding(chain, "truncated" if recorded > state.length else "inserted",
                                        f"its head row says {recorded} entries, the chain holds {state.length}",
                                        min(recorded, state.length) + 1))
            for table in tables:
                findings += check_rows(rows_conn, entries_conn, lookup, table)
        findings += check_certificates(rows_conn, lookup)
        for checkpoint in checkpoints:
            findings += check_checkpoint(lookup, checkpoint, states)
    return Report(tuple(states.values()), tuple(findings), len(checkpoints))
