"""Extended retention: the ``tenant_overrides`` table (a tenant that bought extended storage)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from include.retention.facts import MAX_OVERRIDE_MONTHS, TenantOverride, operator_text
from include.retention.ledger.chain import chained
from include.retention.ledger.db import LEDGER_CONN_ID, connect, plain_cursor
from include.retention.timeutil import from_naive_utc, to_naive_utc, wall_clock

log = logging.getLogger(__name__)


def set_override(
    tenant_id: str,
    category: str,
    retention_months: int,
    *,
    reason: str,
    set_by: str,
    at: datetime | None = None,
    conn_id: str = LEDGER_CONN_ID,
) -> TenantOverride:
    """Set (or replace) a tenant's retention period for one category."""
    if isinstance(retention_months, bool) or not isinstance(retention_months, int):
        raise ValueError("retention_months must be a whole number")
    if not 1 <= retention_months <= MAX_OVERRIDE_MONTHS:
        raise ValueError(f"retention_months must be between 1 and {MAX_OVERRIDE_MONTHS}")
    override = TenantOverride(
        tenant_id=operator_text(tenant_id, "tenant_id", 64),
        category=operator_text(category, "category", 64),
        retention_months=retention_months,
        reason=operator_text(reason, "reason", 255),
        set_by=operator_text(set_by, "set_by", 128),
        set_at=from_naive_utc(to_naive_utc(at or wall_clock())),
    )
    with connect(conn_id) as conn, chained(cur := plain_cursor(conn), "decisions") as chain:
        cur.execute(
            """INSERT INTO tenant_overrides (tenant_id, category, retention_months, reason, set_by, set_at)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON DUPLICATE KEY UPDATE retention_months = VALUES(retention_months), reason = VALUES(reason),
                 set_by = VALUES(set_by), set_at = VALUES(set_at)""",
            (override.tenant_id, override.category, override.retention_months, override.reason,
             override.set_by, to_naive_utc(override.set_at)),
        )
        # rowcount 1: inserted, 2: replaced, 0: the same values again (nothing to chain)
        if changed := cur.rowcount:
            cur.execute("SELECT id FROM tenant_overrides WHERE tenant_id = %s AND category = %s",
                        (override.tenant_id, override.category))
            chain.link("tenant_overrides", int(cur.fetchone()[0]), "append" if changed == 1 else "settle")
    log.info("Tenant %s keeps %s for %d months", override.tenant_id, override.category, retention_months)
    return override


def clear_override(tenant_id: str, category: str, *, conn_id: str = LEDGER_CONN_ID) -> bool:
    """Remove a tenant's override of one category; False when there was none."""
    with connect(conn_id) as conn, chained(cur := plain_cursor(conn), "decisions") as chain:
        cur.execute("SELECT id FROM tenant_overrides WHERE tenant_id = %s AND category = %s FOR UPDATE",
                    (tenant_id, category))
        row = cur.fetchone()
        if row is None:
            return False
        cur.execute("DELETE FROM tenant_overrides WHERE id = %s", (int(row[0]),))
        chain.link("tenant_overrides", int(row[0]), "remove")
        return True


def list_overrides(category: str | None = None, *, conn_id: str = LEDGER_CONN_ID) -> list[TenantOverride]:
    """Every override, or those of one category, ordered by category and tenant."""
    sql = "SELECT tenant_id, category, retention_months, reason, set_by, set_at, id FROM tenant_overrides"
    params: tuple[Any, ...] = ()
    if category is not None:
        sql += " WHERE category = %s"
        params = (category,)
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(sql + " ORDER BY category, tenant_id", params)
        rows = cur.fetchall()
    return [
        TenantOverride(str(t), str(c), int(m), str(r), str(b), from_naive_utc(s), int(i))
        for t, c, m, r, b, s, i in rows
    ]
