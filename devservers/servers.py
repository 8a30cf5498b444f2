"""Start (or find) and stop the local servers the demo and the tests use: one place for both
``python -m devservers`` and the scripts that need the servers (the demo, the local Airflow)."""

from __future__ import annotations

from devservers.procs import Endpoint, save_endpoints, stop


def ensure_all() -> dict[str, Endpoint]:
    """Start (or find) every server; idempotent."""
    from devservers import es_standin, mariadb, redis, swift

    endpoints = {
        "mariadb": mariadb.ensure(),
        "redis": redis.ensure(),
        "s3": swift.ensure(),
        "elasticsearch": es_standin.ensure(),
    }
    save_endpoints(endpoints)
    return endpoints


def stop_all() -> list[str]:
    from devservers import es_standin, swift

    stopped = [name for name in ("mariadb", "redis") if stop(name)]
    stopped += swift.stop_all()
    stopped += es_standin.stop_all()
    return stopped
