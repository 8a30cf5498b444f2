"""Read each store's derived copies from its server, through the connection the store uses.

``read_copies`` reads only the stores a request deleted from. A store whose server will not
answer is listed as unread (``values.unreadable``), never skipped and never guessed.
"""

from __future__ import annotations

import logging
from datetime import datetime, tzinfo
from typing import Any, Callable, Mapping

from include.retention.copies import cos_versions, es_snapshots, mysql_binlog, redis_persistence
from include.retention.copies.values import DerivedCopy, unreadable

log = logging.getLogger(__name__)

MYSQL_CONN_ID = "retention_mysql"
ORDER = ("mysql", "redis", "cos", "elasticsearch")
_WHAT = {"mysql": "binary logs", "redis": "persistence files", "cos": "versions and lifecycle rules",
         "elasticsearch": "snapshots"}


def _mysql(deleted_by: datetime, timezone: tzinfo) -> list[DerivedCopy]:
    import MySQLdb.cursors
    from airflow.providers.mysql.hooks.mysql import MySqlHook

    conn = MySqlHook(mysql_conn_id=MYSQL_CONN_ID).get_conn()
    try:
        conn.cursorclass = MySQLdb.cursors.Cursor
        return [mysql_binlog.read_copy(conn, deleted_by=deleted_by)]
    finally:
        conn.close()


def _redis(deleted_by: datetime, timezone: tzinfo) -> list[DerivedCopy]:
    from include.retention.stores.redis import RedisStore

    return redis_persistence.read_copies(RedisStore().client, deleted_by=deleted_by)


def _cos(deleted_by: datetime, timezone: tzinfo) -> list[DerivedCopy]:
    from include.retention.stores.cos import CosStore

    store = CosStore(timezone=timezone)
    return cos_versions.read_copies(store.client, store.bucket)


def _elasticsearch(deleted_by: datetime, timezone: tzinfo) -> list[DerivedCopy]:
    from include.retention.stores.elasticsearch import ElasticsearchStore

    return es_snapshots.read_copies(ElasticsearchStore(timezone=timezone).client, deleted_by=deleted_by)


READERS: dict[str, Callable[[datetime, tzinfo], list[DerivedCopy]]] = {
    "mysql": _mysql, "redis": _redis, "cos": _cos, "elasticsearch": _elasticsearch,
}


def read_copies(deleted_by: Mapping[str, datetime], timezone: tzinfo,
                readers: Mapping[str, Callable[[datetime, tzinfo], list[DerivedCopy]]] | None = None,
                ) -> list[DerivedCopy]:
    """The derived copies of each store in ``deleted_by`` (store -> the latest instant it deleted by).

    :param readers: the readers by store (tests replace them); the servers' by default.
    """
    readers = READERS if readers is None else readers
    copies: list[DerivedCopy] = []
    for store in sorted(deleted_by, key=lambda s: ORDER.index(s) if s in ORDER else len(ORDER)):
        reader = readers.get(store)
        if reader is None:
            continue
        try:
            copies.extend(reader(deleted_by[store], timezone))
        except Exception as exc:  # noqa: BLE001 - any failure is stated on the certificate, not hidden
            why = type(exc).__name__
            log.warning("Derived copies of %s could not be read: %s", store, why)
            copies.append(unreadable(store, _WHAT.get(store, "copies"), why))
    return copies


def deleted_by_store(steps: Any, fallback: datetime) -> dict[str, datetime]:
    """Per store, the latest instant its steps were verified by (each delete came before its re-count)."""
    out: dict[str, datetime] = {}
    for step in steps:
        at = getattr(step, "verified_at", None) or fallback
        if step.store not in out or at > out[step.store]:
            out[step.store] = at
    return out
