"""Redis persistence: the RDB dump and the append-only file keep a deleted key until the next save or rewrite.

Read with ``INFO persistence``: ``rdb_last_save_time`` (a key deleted after it is still in the
dump file until the next save), ``rdb_changes_since_last_save``, ``aof_enabled``. No save or
rewrite is forced: that belongs to the operator. On a cluster, each primary is read and the
oldest save stated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from include.retention.copies.values import DerivedCopy, iso
from include.retention.timeutil import UTC

STORE = "redis"


def _nodes(client: Any) -> list[Any]:
    from redis.cluster import RedisCluster

    if isinstance(client, RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


def read_info(client: Any) -> list[dict[str, Any]]:
    """``INFO persistence`` of the server, or of every primary of a cluster."""
    return [dict(node.info("persistence")) for node in _nodes(client)]


def state(infos: Sequence[dict[str, Any]], *, deleted_by: datetime) -> list[DerivedCopy]:
    """The dump and the append-only file, for keys deleted no later than ``deleted_by``."""
    if not infos:
        raise ValueError("no INFO persistence to state")
    saves = [datetime.fromtimestamp(int(i.get("rdb_last_save_time") or 0), UTC) for i in infos]
    last_save = min(saves)
    aof = any(int(i.get("aof_enabled") or 0) for i in infos)
    read = {"nodes": len(infos), "rdb_last_save_time": iso(last_save), "aof_enabled": int(aof),
            "rdb_changes_since_last_save": sum(int(i.get("rdb_changes_since_last_save") or 0) for i in infos)}
    if last_save >= deleted_by:
        rdb = DerivedCopy(STORE, "RDB dump", "none",
                          f"the last RDB save ({iso(last_save)}) came after the delete: the dump no longer holds "
                          "the keys", read=read)
    else:
        rdb = DerivedCopy(STORE, "RDB dump", "next_event",
                          f"the dump file of the last RDB save ({iso(last_save)}, before the delete) may hold the "
                          "keys until the next save replaces it (not forced: the operator's)", read=read)
    if aof:
        aof_copy = DerivedCopy(STORE, "append-only file", "operator",
                               "the append-only file is on (aof_enabled 1): it holds the keys' writes until the next "
                               "AOF rewrite (automatic by size, or BGREWRITEAOF by the operator; not forced)",
                               read=read)
    else:
        aof_copy = DerivedCopy(STORE, "append-only file", "none", "the append-only file is off (aof_enabled 0)",
                               read=read)
    return [rdb, aof_copy]


def read_copies(client: Any, *, deleted_by: datetime) -> list[DerivedCopy]:
    return state(read_info(client), deleted_by=deleted_by)
