"""A local distributed Airflow, as production runs it: ``./scripts/cluster.sh up|down|status``
(``make cluster``).

- Metadata database: PostgreSQL (``devservers/postgres.py``: the server on 5432 if one
  answers, else a private one from the installed binaries, else Debian's), with its own
  database and user (``retention_airflow``; the password is generated once per home).
- Celery broker: Redis db 15, which the retention data never uses (the demo's is 3, the
  tests' 9), or RabbitMQ with ``--broker amqp`` (``amqp://guest:guest@127.0.0.1:5672//``, or
  ``RETENTION_CELERY_BROKER_URL``).
- Processes: api-server, scheduler, dag-processor, triggerer and two Celery workers, each in
  its own process group with a pid file; each worker has its own ``--celery-hostname``, its
  own log-server port and its own host name on its task instances
  (``devservers/worker_host.py``). ``AIRFLOW__CORE__EXECUTOR=CeleryExecutor``; the store
  pools are created, the connections are ``AIRFLOW_CONN_*`` of the namespace's servers.
- ``down`` stops exactly what ``up`` started: the Airflow processes by pid, and the private
  PostgreSQL if ``up`` started one. The dev servers (MariaDB, Redis, Swift, the Elasticsearch
  stand-in) are shared with the demo and stop with ``./scripts/stop.sh``.

The components and their lifecycle are ``devservers/airflow_ui.py``'s (the one-machine
Airflow of ``scripts/airflow.sh``); this module adds the database, the broker and the workers.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from devservers import airflow_ui, postgres
from devservers.procs import RUN_DIR

DEFAULT_HOME = RUN_DIR / "airflow-cluster"
DATABASE = "retention_airflow"
USER = "retention_airflow"
#: The broker's Redis db: not the demo's (3), not the tests' (9), not db 0.
BROKER_REDIS_DB = 15
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
BROKER_URL_ENV = "RETENTION_CELERY_BROKER_URL"
WORKERS = 2


def say(message: str) -> None:
    print(f"[cluster] {message}", flush=True)


def broker_url(kind: str) -> str:
    if os.environ.get(BROKER_URL_ENV):
        return os.environ[BROKER_URL_ENV]
    if kind == "amqp":
        return AMQP_URL
    from devservers.servers import ensure_all

    redis = ensure_all()["redis"]
    auth = f":{redis.password}@" if redis.password else ""
    return f"redis://{auth}{redis.host}:{redis.port}/{BROKER_REDIS_DB}"


def metadata_database(home: Path, database: str = DATABASE, user: str = USER, *, fresh: bool = False) -> dict[str, object]:
    """The cluster's own PostgreSQL database and user (created when missing; ``fresh``: empty)."""
    server = postgres.ensure()
    password = airflow_ui.shared_secrets(home)["metadata_db_password"]
    if fresh:
        postgres.drop_database(server, database)
    postgres.ensure_database(server, database, user, password)
    return {"host": server.host, "port": server.port, "database": database, "user": user}


def up(home: Path = DEFAULT_HOME, *, namespace: str = "demo", port: int | None = None, broker: str = "redis",
       workers: int = WORKERS, database: str = DATABASE, fresh: bool = False, extra: dict[str, str] | None = None,
       unpause: bool = True) -> airflow_ui.Instance:
    """Start the cluster in ``home`` (or find it running); healthy and consuming on return."""
    home = home.resolve()
    celery = airflow_ui.CeleryCluster(workers, metadata_database(home, database, fresh=fresh), broker_url(broker))
    return airflow_ui.up(home, namespace=namespace, port=port, celery=celery, extra=extra, unpause=unpause)


def down(home: Path = DEFAULT_HOME) -> list[str]:
    """Stop what ``up`` started: the components, and the private PostgreSQL if it is ours."""
    stopped = airflow_ui.down(home.resolve())
    if postgres.stop_private():
        stopped.append("postgres (private)")
    return stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devservers.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--namespace", choices=["demo", "test"], default="demo")
    parser.add_argument("--port", type=int, default=None, help=f"default: ${airflow_ui.PORT_ENV}, else 8080 if free")
    parser.add_argument("--broker", choices=["redis", "amqp"], default="redis",
                        help=f"Celery broker (default Redis db {BROKER_REDIS_DB}); ${BROKER_URL_ENV} overrides")
    args = parser.parse_args(argv)
    home = Path(os.environ.get("RETENTION_CLUSTER_HOME") or DEFAULT_HOME).resolve()
    if args.command == "down":
        stopped = down(home)
        say("stopped: " + (", ".join(stopped) if stopped else f"nothing (no cluster was started in {home})"))
        return 0
    if args.command == "status":
        running, instance = airflow_ui.running_components(home), airflow_ui.load_instance(home)
        if not running or instance is None:
            say(f"not running in {home}")
            return 1
        say(f"{instance.executor} in {home}: " + ", ".join(f"{c} (pid {p})" for c, p in running.items()))
        missing = [c for c in instance.components if c not in running]
        if missing:
            say("NOT running: " + ", ".join(missing))
        for line in airflow_ui.describe(instance):
            print("  " + line)
        return 0 if not missing else 1
    try:
        instance = up(home, namespace=args.namespace, port=args.port, broker=args.broker)
    except RuntimeError as exc:
        say(f"FAILED: {exc}")
        return 1
    say(f"up in {home}: {', '.join(instance.components)}; broker {redact(instance.broker_url)}; metadata DB "
        f"postgresql://{instance.metadata_db['user']}@{instance.metadata_db['host']}:{instance.metadata_db['port']}"
        f"/{instance.metadata_db['database']}")
    for line in airflow_ui.describe(instance):
        print("  " + line)
    return 0


def redact(url: str) -> str:
    """A URL without its password, for the terminal."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


if __name__ == "__main__":
    raise SystemExit(main())
