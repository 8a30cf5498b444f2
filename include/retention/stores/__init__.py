"""HOW each store deletes: one module per store behind the interface in ``base``.

A store past ~500 lines is split by concern into sibling modules: ``mysql`` (purge loop)
over ``mysql_sql`` (pure SQL) and ``mysql_connection``; ``cos`` over ``cos_scan`` (pure),
``cos_bucket`` (client and listing) and ``cos_client`` (botocore hooks); ``elasticsearch``
over ``elasticsearch_indices`` (pure plans), ``elasticsearch_tasks`` and
``elasticsearch_client``; ``redis`` over ``redis_keys`` (pure key matching). ``progress`` holds the
counters the streaming purges share.
"""

from __future__ import annotations

from datetime import tzinfo

from include.retention.stores.base import RetentionStore

#: Stores whose back end serves every selection of one target in one pass (``base.OnePassPurge``):
#: the daily purge keeps all of a target's specs of these stores in one mapped task.
ONE_PASS_STORES = frozenset({"redis"})


def store_for(store: str, timezone: tzinfo, *, batch_size: int | None = None) -> RetentionStore:  # type: ignore[type-arg]
    """The store back end for ``store`` on its role's default connection id
    (``retention_mysql``, ``retention_redis``, ``retention_cos``, ``retention_elasticsearch``).
    No I/O happens here."""
    kwargs: dict[str, object] = {} if batch_size is None else {"batch_size": batch_size}
    if store == "mysql":
        from include.retention.stores.mysql import MySqlStore

        return MySqlStore(**kwargs)  # type: ignore[arg-type]
    if store == "redis":
        from include.retention.stores.redis import RedisStore

        return RedisStore(**kwargs)  # type: ignore[arg-type]
    if store == "cos":
        from include.retention.stores.cos import CosStore

        return CosStore(timezone=timezone, **kwargs)  # type: ignore[arg-type]
    if store == "elasticsearch":
        from include.retention.stores.elasticsearch import ElasticsearchStore

        return ElasticsearchStore(timezone=timezone, **kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown store {store!r}")
