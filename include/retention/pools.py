"""The Airflow pools the purge tasks run in: one per store, bounding how many purges hit it at once."""

from __future__ import annotations

#: Pool name -> slots for a local or fresh installation; operators size them for production.
STORE_POOLS = {"retention_mysql": 4, "retention_redis": 4, "retention_cos": 4, "retention_elasticsearch": 2}


def ensure_store_pools(*, only_missing: bool = False) -> None:
    """Create (or reset to the defaults) the store pools in the metadata DB this process uses.

    :param only_missing: leave a pool that exists as it is (its slots may have been sized).
    """
    from airflow.models.pool import Pool

    for name, slots in STORE_POOLS.items():
        if only_missing and Pool.get_pool(name) is not None:
            continue
        Pool.create_or_update_pool(name=name, slots=slots, description="retention purges", include_deferred=False)
