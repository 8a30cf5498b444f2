"""Chain positions of the rows a certificate rests on (``ledger/chain.py``): read, never written.

A certificate lists, for each audit row of its runs, each event of its request and each
decision of its approval scope, the chain entry that last recorded it (position and hash).
The verifier then checks the certificate against the chains, and the chains against it.
"""

from __future__ import annotations

from typing import Any, Sequence

from include.retention.ledger.chain import Position, positions_of
from include.retention.ledger.db import LEDGER_CONN_ID, connect, plain_cursor


def _ids(cur: Any, sql: str, params: Sequence[Any]) -> list[int]:
    cur.execute(sql, tuple(params))
    return [int(r[0]) for r in cur.fetchall()]


def _listed(table: str, ids: list[int], positions: dict[int, Position]) -> list[dict[str, Any]]:
    # A row without a position was written before its chain existed and is not adopted yet.
    return [{"table": table, "id": i, **({"seq": positions[i].seq, "hash": positions[i].hash} if i in positions
                                        else {"seq": None})} for i in ids]


def certificate_positions(
    *, dag_id: str, run_ids: Sequence[str], request_id: str, scope: str, conn_id: str = LEDGER_CONN_ID
) -> dict[str, Any]:
    """Chain positions of the audit rows of ``run_ids`` (of ``dag_id``), the events of
    ``request_id`` and the approvals of ``scope``, by chain, ordered by id."""
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        audit = _ids(cur, f"SELECT id FROM purge_audit WHERE dag_id = %s AND run_id IN "
                          f"({', '.join(['%s'] * len(run_ids))}) ORDER BY id", (dag_id, *run_ids)) if run_ids else []
        events = _ids(cur, "SELECT id FROM request_events WHERE request_id = %s ORDER BY id", (request_id,))
        approvals = _ids(cur, "SELECT id FROM approvals WHERE scope = %s ORDER BY id", (scope,))
        return {
            "purge_audit": _listed("purge_audit", audit, positions_of(cur, "purge_audit", audit)),
            "request_events": _listed("request_events", events, positions_of(cur, "request_events", events)),
            "decisions": _listed("approvals", approvals, positions_of(cur, "approvals", approvals)),
        }
