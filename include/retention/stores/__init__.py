"""HOW each store deletes: one module per store behind the interface in ``base``."""

from __future__ import annotations

from datetime import tzinfo

from include.retention.stores.base import RetentionStore

CONN_IDS = {
    "mysql": "retention_mysql",
    "redis": "retention_redis",
    "cos": "retention_cos",
    "elasticsearch": "retention_elasticsearch",
}


def store_for(store: str, timezone: tzinfo, *, batch_size: int | None = None) -> RetentionStore:  # type: ignore[type-arg]
    """The store back end for ``store``, on its role's connection id. No I/O happens here."""
    kwargs: dict[str, object] = {} if batch_size is None else {"batch_size": batch_size}
    if store == "mysql":
        from include.retention.stores.mysql import MySqlStore

        return MySqlStore(mysql_conn_id=CONN_IDS["mysql"], **kwargs)  # type: ignore[arg-type]
    if store == "redis":
        from include.retention.stores.redis import RedisStore

        return RedisStore(redis_conn_id=CONN_IDS["redis"], **kwargs)  # type: ignore[arg-type]
    if store == "cos":
        from include.retention.stores.cos import CosStore

        return CosStore(aws_conn_id=CONN_IDS["cos"], timezone=timezone, **kwargs)  # type: ignore[arg-type]
    if store == "elasticsearch":
        from include.retention.stores.elasticsearch import ElasticsearchStore

        return ElasticsearchStore(
            elasticsearch_conn_id=CONN_IDS["elasticsearch"], timezone=timezone, **kwargs  # type: ignore[arg-type]
        )
    raise ValueError(f"unknown store {store!r}")
