"""SLA alerts sent: the ``request_alerts`` table (a warning once per request, a breach once a day)."""

from __future__ import annotations

from datetime import date
from typing import Sequence

from include.retention.ledger.db import LEDGER_CONN_ID, connect, plain_cursor
from include.retention.timeutil import to_naive_utc, wall_clock


def sent_alerts(request_ids: Sequence[str], *, conn_id: str = LEDGER_CONN_ID) -> set[tuple[str, str, date]]:
    """(request_id, kind, day) of alerts already sent for these requests."""
    if not request_ids:
        return set()
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(
            f"SELECT request_id, kind, alert_day FROM request_alerts WHERE request_id IN "
            f"({', '.join(['%s'] * len(request_ids))})",
            tuple(request_ids),
        )
        return {(str(r), str(k), d) for r, k, d in cur.fetchall()}


def record_alert(request_id: str, kind: str, days_left: int, day: date, *, run_id: str,
                 conn_id: str = LEDGER_CONN_ID) -> None:
    """Remember that an alert was sent (a second record of the same alert on the same day is ignored)."""
    with connect(conn_id) as conn:
        plain_cursor(conn).execute(
            """INSERT IGNORE INTO request_alerts (request_id, kind, alert_day, days_left, run_id, sent_at)
               VALUES (%s, %s, %s, %s, %s, %s)""",
            (request_id, kind, day, days_left, run_id, to_naive_utc(wall_clock())),
        )
