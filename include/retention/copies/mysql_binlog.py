"""MySQL and MariaDB binary logs: the before-image of every deleted row, until the log file expires.

Read with ``SHOW GLOBAL VARIABLES``: ``log_bin``, ``binlog_format``,
``binlog_expire_logs_seconds`` (MySQL 8, MariaDB 10.6) and ``expire_logs_days`` (older
servers; MySQL 8 ignores it when the first is set). A row deleted at T sits in the log file
being written at T; the server removes a file once it is older than the expiry, at a log
rotation, so the file goes from T + expiry on, at the first rotation after that. With
``binlog_format`` ROW (or MIXED) the log holds the row's columns; STATEMENT holds the DELETE
statement only, which names the subject's keys, not the row. Replicas keep logs of their own,
which this does not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from include.retention.copies.values import DerivedCopy, iso

STORE = "mysql"
COPY = "binary logs"
VARIABLES = ("log_bin", "binlog_format", "binlog_expire_logs_seconds", "expire_logs_days")


@dataclass(frozen=True)
class BinlogSettings:
    log_bin: bool
    binlog_format: str
    expire_seconds: int
    source: str  # the variable the expiry comes from

    @classmethod
    def from_variables(cls, variables: dict[str, str]) -> BinlogSettings:
        if "log_bin" not in variables:
            raise ValueError("the server did not report log_bin")
        seconds = int(float(variables.get("binlog_expire_logs_seconds") or 0))
        source = "binlog_expire_logs_seconds"
        if seconds == 0 and "expire_logs_days" in variables:
            seconds = int(float(variables["expire_logs_days"] or 0) * 86_400)
            source = "expire_logs_days"
        return cls(log_bin=variables["log_bin"].upper() in ("ON", "1"),
                   binlog_format=(variables.get("binlog_format") or "").upper(), expire_seconds=seconds, source=source)


def read_variables(conn: Any) -> dict[str, str]:
    """The four variables, from a DB-API connection (tuple cursor)."""
    cursor = conn.cursor()
    try:
        cursor.execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN (%s, %s, %s, %s)", VARIABLES)
        return {str(name).lower(): "" if value is None else str(value) for name, value in cursor.fetchall()}
    finally:
        cursor.close()


def state(settings: BinlogSettings, *, deleted_by: datetime) -> DerivedCopy:
    """The binary-log copy of rows deleted no later than ``deleted_by``."""
    read = {"log_bin": "ON" if settings.log_bin else "OFF", "binlog_format": settings.binlog_format,
            "expire_seconds": settings.expire_seconds, "expire_from": settings.source}
    if not settings.log_bin:
        return DerivedCopy(STORE, COPY, "none", "binary logging is off (log_bin OFF): no binary log holds the rows",
                           read=read)
    holds = "the deleted rows' columns" if settings.binlog_format != "STATEMENT" else "the DELETE statements"
    if settings.expire_seconds <= 0:
        return DerivedCopy(STORE, COPY, "never",
                           f"binary logs ({settings.binlog_format}) hold {holds} and never expire "
                           f"({settings.source} is 0): they go only when an operator purges them", read=read)
    ends = deleted_by + timedelta(seconds=settings.expire_seconds)
    return DerivedCopy(STORE, COPY, "at",
                       f"binary logs ({settings.binlog_format}) hold {holds} until they expire: from {iso(ends)} "
                       f"({settings.source} = {settings.expire_seconds} s after the delete), at the server's first "
                       "log rotation after that", ends_at=ends, read=read)


def read_copy(conn: Any, *, deleted_by: datetime) -> DerivedCopy:
    return state(BinlogSettings.from_variables(read_variables(conn)), deleted_by=deleted_by)
