"""How :class:`~include.retention.stores.mysql.MySqlStore` talks to the server.

One autocommit connection from the provider hook, opened on first use (tuned first from the
connection's ``retention_tuning`` extra) and re-opened when it went away while idle; plain
tuple cursors whatever the connection's extra asks for; the pacing between two batches (the
configured pause and the replica-lag check); and error texts that never carry row data.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Sequence

from include.retention.policy import MySqlTarget
from include.retention.results import PartialPurgeError
from include.retention.stores.base import RetentionStore

log = logging.getLogger(__name__)

#: A DDL statement waits at most this long for its metadata lock, so a long transaction
#: on the table makes the drop fail (and be retried tomorrow) instead of queueing every
#: other query on the table behind it.
DDL_LOCK_WAIT_SECONDS = 30
REPLICA_CHECK_INTERVAL = 1.0  # seconds between two replica-lag checks while purging
IDLE_PING_SECONDS = 30.0  # a connection idle longer than this is pinged before reuse

#: Store settings a connection may override through its ``retention_tuning`` extra.
TUNABLE = (
    "batch_size", "sleep_between_batches", "replica_conn_id", "max_replica_lag_seconds",
    "replica_wait_timeout_seconds", "partition_row_counts",
)
TUNING_EXTRA = "retention_tuning"

#: Server errors whose message carries no row data; for others only the code is reported.
_SAFE_MESSAGE_CODES = frozenset(
    {1040, 1053, 1152, 1158, 1159, 1160, 1161, 1205, 1213, 1317, 1927, 1969, 2002, 2003, 2006, 2013, 2055, 4031}
)


def describe_db_error(exc: BaseException) -> str:
    """A one-line description of a driver error that never carries row data."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if code is None:
        return type(exc).__name__
    if code in _SAFE_MESSAGE_CODES and len(exc.args) > 1:
        return f"{type(exc).__name__} {code}: {str(exc.args[1])[:200]}"
    return f"{type(exc).__name__} {code}"


class MySqlConnection(RetentionStore[MySqlTarget]):
    """The connection, statements and pacing of a MySQL store; :class:`MySqlStore` documents
    the settings (every one of :data:`TUNABLE`). No I/O in ``__init__``."""

    # Set by _tune, from the constructor and then from the connection's extra.
    sleep_between_batches: float
    replica_conn_id: str | None
    max_replica_lag_seconds: float | None
    replica_wait_timeout_seconds: float
    partition_row_counts: str

    def __init__(
        self,
        *,
        mysql_conn_id: str,
        batch_size: int,
        sleep_between_batches: float,
        replica_conn_id: str | None,
        max_replica_lag_seconds: float | None,
        replica_wait_timeout_seconds: float,
        partition_row_counts: str,
    ) -> None:
        super().__init__(batch_size=batch_size)
        self.mysql_conn_id = mysql_conn_id
        self._tune(
            batch_size=batch_size, sleep_between_batches=sleep_between_batches, replica_conn_id=replica_conn_id,
            max_replica_lag_seconds=max_replica_lag_seconds,
            replica_wait_timeout_seconds=replica_wait_timeout_seconds, partition_row_counts=partition_row_counts,
        )
        self._tuned_from_connection = False
        self._conn: Any = None
        self._replica: Any = None
        self._last_lag_check = float("-inf")
        self._last_used = float("-inf")
        self._database = ""
        # Seams for pacing; tests replace them to avoid real waiting.
        self._sleep: Callable[[float], None] = time.sleep
        self._clock: Callable[[], float] = time.monotonic

    # ------------------------------------------------------------------ tuning

    def _tune(self, **values: Any) -> None:
        """Check and set the tunable values (one place for the constructor and the connection)."""
        unknown = sorted(set(values) - set(TUNABLE))
        if unknown:
            raise ValueError(f"unknown tuning {unknown}; known: {list(TUNABLE)}")
        merged = {name: getattr(self, name, None) for name in TUNABLE} | values
        batch_size, sleep = merged["batch_size"], merged["sleep_between_batches"]
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 100_000:
            raise ValueError(f"batch_size must be an integer between 1 and 100000, got {batch_size!r}")
        if isinstance(sleep, bool) or not isinstance(sleep, (int, float)) or sleep < 0:
            raise ValueError(f"sleep_between_batches must be a number of seconds >= 0, got {sleep!r}")
        if (merged["replica_conn_id"] is None) != (merged["max_replica_lag_seconds"] is None):
            raise ValueError("give replica_conn_id and max_replica_lag_seconds together")
        lag, wait = merged["max_replica_lag_seconds"], merged["replica_wait_timeout_seconds"]
        if lag is not None and (isinstance(lag, bool) or not isinstance(lag, (int, float)) or lag < 0):
            raise ValueError(f"max_replica_lag_seconds must be a number of seconds >= 0, got {lag!r}")
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait <= 0:
            raise ValueError(f"replica_wait_timeout_seconds must be a number of seconds > 0, got {wait!r}")
        if merged["partition_row_counts"] not in ("exact", "estimate"):
            raise ValueError("partition_row_counts must be 'exact' or 'estimate'")
        for name in TUNABLE:
            setattr(self, name, merged[name])

    def _tune_from_connection(self) -> None:
        """Apply the connection's ``retention_tuning`` extra, once, before the first statement."""
        from airflow.sdk import BaseHook

        self._tuned_from_connection = True
        tuning = BaseHook.get_connection(self.mysql_conn_id).extra_dejson.get(TUNING_EXTRA)
        if tuning is None:
            return
        try:
            if not isinstance(tuning, dict):
                raise ValueError("it must be a JSON object")
            self._tune(**tuning)
        except ValueError as exc:
            raise ValueError(f"connection {self.mysql_conn_id!r}, extra {TUNING_EXTRA!r}: {exc}") from None
        log.info("%s: tuning from the connection: %s", self.mysql_conn_id,
                 ", ".join(f"{k}={v}" for k, v in sorted(tuning.items())))

    # ------------------------------------------------------------------ connections

    def _connect(self, conn_id: str) -> Any:
        from airflow.providers.mysql.hooks.mysql import MySqlHook

        conn = MySqlHook(mysql_conn_id=conn_id).get_conn()
        conn.autocommit(True)  # every batch is its own short transaction
        return conn

    def _connection(self) -> Any:
        """The store's connection, opened on first use and re-opened if it went away while idle."""
        if self._conn is not None:
            if self._clock() - self._last_used < IDLE_PING_SECONDS:
                self._last_used = self._clock()
                return self._conn
            try:
                self._conn.ping()
                self._last_used = self._clock()
                return self._conn
            except Exception:  # noqa: BLE001 - any failure means: open a fresh one
                self._discard()
        import MySQLdb.cursors

        if not self._tuned_from_connection:
            self._tune_from_connection()
        conn = self._connect(self.mysql_conn_id)
        cur = conn.cursor(MySQLdb.cursors.Cursor)
        cur.execute("SET SESSION lock_wait_timeout = %s", (DDL_LOCK_WAIT_SECONDS,))
        cur.execute("SELECT DATABASE()")
        (database,) = cur.fetchone()
        cur.close()
        if not database:
            conn.close()
            raise ValueError(f"connection {self.mysql_conn_id!r} names no database (schema)")
        self._conn = conn
        self._database = str(database)
        self._last_used = self._clock()
        return conn

    def _schema(self) -> str:
        """The connection's database, as a literal: information_schema queries that name
        their schema and table by constant open only that table, where DATABASE() makes
        the server open every table of every database."""
        self._connection()
        return self._database

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - it is being thrown away
                pass

    def close(self) -> None:
        """Close the connections this store opened (it reopens them when used again)."""
        self._discard()
        replica, self._replica = self._replica, None
        if replica is not None:
            try:
                replica.close()
            except Exception:  # noqa: BLE001
                pass

    def _cursor(self) -> Any:
        import MySQLdb.cursors

        # A plain tuple cursor whatever the connection's extra asks for.
        return self._connection().cursor(MySQLdb.cursors.Cursor)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self._cursor()
        try:
            cur.execute(sql, tuple(params))
            return list(cur.fetchall())
        finally:
            cur.close()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = self._cursor()
        try:
            cur.execute(sql, tuple(params))
            return int(cur.rowcount)
        finally:
            cur.close()

    # ------------------------------------------------------------------ pacing

    def _between_batches(self, target: MySqlTarget, deleted: int) -> None:
        """Pacing between two batches: the configured pause, then the replica check."""
        if self.sleep_between_batches:
            self._sleep(self.sleep_between_batches)
        self._wait_for_replica(target, deleted)

    def _replica_connection(self) -> Any:
        if self._replica is None:
            assert self.replica_conn_id is not None
            self._replica = self._connect(self.replica_conn_id)
        return self._replica

    def replica_lag(self) -> float | None:
        """The replica's ``Seconds_Behind_Master``; None while replication is not running."""
        import MySQLdb
        import MySQLdb.cursors

        cur = self._replica_connection().cursor(MySQLdb.cursors.DictCursor)
        try:
            try:
                cur.execute("SHOW REPLICA STATUS")
            except MySQLdb.ProgrammingError:  # servers before MariaDB 10.5 / MySQL 8.0.22
                cur.execute("SHOW SLAVE STATUS")
            rows = cur.fetchall()
        finally:
            cur.close()
        if not rows:
            raise RuntimeError(f"connection {self.replica_conn_id!r} is not a replica (no replica status)")
        lags = [row.get("Seconds_Behind_Master", row.get("Seconds_Behind_Source")) for row in rows]
        if any(lag is None for lag in lags):
            return None
        return float(max(lags))

    def _wait_for_replica(self, target: MySqlTarget, deleted: int) -> None:
        """Pause while the replica lags more than allowed; give up after the timeout."""
        if self.max_replica_lag_seconds is None:
            return
        now = self._clock()
        if now - self._last_lag_check < REPLICA_CHECK_INTERVAL:
            return
        waited_since = now
        while True:
            lag = self.replica_lag()
            self._last_lag_check = self._clock()
            if lag is not None and lag <= self.max_replica_lag_seconds:
                return
            if self._clock() - waited_since >= self.replica_wait_timeout_seconds:
                shown = "unknown (replication stopped)" if lag is None else f"{lag:.0f} s"
                raise PartialPurgeError(
                    target.qualified_name,
                    deleted,
                    f"replica lag stayed above {self.max_replica_lag_seconds:g} s for "
                    f"{self.replica_wait_timeout_seconds:g} s (last: {shown}); paused and gave up",
                )
            log.info("Replica lag %s s above %g s; pausing the purge of %s",
                     "unknown" if lag is None else f"{lag:.0f}", self.max_replica_lag_seconds, target.qualified_name)
            self._sleep(REPLICA_CHECK_INTERVAL)
