"""Decisions people took in Airflow's "Required actions": the ``approvals`` table.

One row per ask (``asked``, naming who triggered the run) and per answer or timeout
(``approved``, ``rejected``, ``refused``, ``timed_out``) of an approval step
(``include/retention/approvals.py``), for any scope: a request (``request:<request id>``) or a daily run. The names are Airflow
user names (who triggered the run, who answered); no personal data of a subject.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from include.retention.ledger.chain import chained
from include.retention.ledger.db import LEDGER_CONN_ID, connect, plain_cursor
from include.retention.timeutil import from_naive_utc, to_naive_utc, wall_clock


@dataclass(frozen=True)
class ApprovalRecord:
    scope: str
    run_id: str
    outcome: str
    triggered_by: str | None
    responded_by: str | None
    responded_at: datetime | None
    reason: str | None
    recorded_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "run_id": self.run_id, "triggered_by": self.triggered_by,
                "responded_by": self.responded_by,
                "responded_at": self.responded_at.isoformat() if self.responded_at else None,
                "reason": self.reason, "recorded_at": self.recorded_at.isoformat()}


def request_scope(request_id: str) -> str:
    """The approval scope of a request."""
    return f"request:{request_id}"


def record_decision(
    *,
    scope: str,
    dag_id: str,
    run_id: str,
    task_id: str,
    outcome: str,
    triggered_by: str | None,
    responded_by: str | None,
    responded_at: datetime | None,
    reason: str | None,
    details: Mapping[str, Any],
    conn_id: str = LEDGER_CONN_ID,
) -> None:
    """Append one decision."""
    with connect(conn_id) as conn, chained(cur := plain_cursor(conn), "decisions") as chain:
        cur.execute(
            """INSERT INTO approvals (scope, dag_id, run_id, task_id, outcome, triggered_by, responded_by,
                 responded_at, reason, details, recorded_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (scope[:160], dag_id[:250], run_id[:250], task_id[:250], outcome[:16],
             (triggered_by or None) and triggered_by[:128], (responded_by or None) and responded_by[:128],
             to_naive_utc(responded_at) if responded_at else None, (reason or None) and reason[:500],
             json.dumps(dict(details), sort_keys=True, default=str), to_naive_utc(wall_clock())),
        )
        chain.link("approvals", int(cur.lastrowid))


def decisions(scope: str, *, conn_id: str = LEDGER_CONN_ID) -> list[ApprovalRecord]:
    """Every decision of ``scope``, oldest first."""
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(
            "SELECT scope, run_id, outcome, triggered_by, responded_by, responded_at, reason, recorded_at"
            " FROM approvals WHERE scope = %s ORDER BY id",
            (scope,),
        )
        return [ApprovalRecord(str(r[0]), str(r[1]), str(r[2]), r[3], r[4],
                               from_naive_utc(r[5]) if r[5] else None, r[6], from_naive_utc(r[7]))  # type: ignore[arg-type]
                for r in cur.fetchall()]


def approval_of(scope: str, *, conn_id: str = LEDGER_CONN_ID) -> ApprovalRecord | None:
    """The approval that stands for ``scope``: its last ``approved`` decision, or None."""
    approved = [d for d in decisions(scope, conn_id=conn_id) if d.outcome == "approved"]
    return approved[-1] if approved else None
