"""Deterministic synthetic contact-center data in all four stores, named by the policy.

One seed, one scale and one span (``months`` ending at ``as_of``) give the same tenants,
agents, customers, calls and documents every time: every random draw comes from a
``random.Random`` seeded with the seed and the thing being drawn (``7/calls/1600123/2026-03-01``),
so any store can regenerate exactly the calls another store saw, one day at a time, without
holding the span in memory. Only the ciphertexts of the ``*_enc`` columns differ between runs
(Fernet tokens carry a random IV and a timestamp); their plaintexts are deterministic.

What is written (every name rendered from the policy's templates; one module per store):

- MySQL (``schema.create_schema``, monthly partitions over the span plus ``future_months``):
  tenants (some terminated), agents and administrators (names, e-mails, phones Fernet-encrypted
  with a demo key), call_records (``started_at`` UTC, ``customer_number`` E.164 +65...,
  ``recording_key`` pointing at the COS object), call_metrics (per agent per local day, stamped
  with the UTC instant the local day starts), service_records, and the configuration tables;
- Redis: ``cc:{tenant}:agent:{agent}:profile`` (hash: name, email) and ``:status``,
  ``cc:{tenant}:session:{agent}:{session}``, and keys no policy target names
  (``cc:{tenant}:queue:{name}``, ``cc:{tenant}:ivr:menu``) that a purge must never touch;
- COS: ``recordings/{tenant}/{yyyy}/{mm}/{dd}/{call_id}.wav`` for a share of answered calls,
  and ``backups/{tenant}/{yyyy-mm-dd}/{category}/{table}.json.gz`` for the last ``backup_days``;
- Elasticsearch: ``cc-logs-{tenant}-{yyyy.mm}`` with operation logs, agent status changes, call
  trajectories and SIP/MOS records (``tenant_id``, ``agent_id``, ``phone_number``, ``@timestamp``).

Days, day prefixes and index months are on the policy's calendar (Asia/Singapore); every
DATETIME is UTC, so a call at 07:00 in Singapore lands on the previous UTC day.

Tenant ids include a pair where one is a prefix of the other (``{base}12`` and ``{base}123``),
agents ``a1`` and ``a10`` share a prefix, and a few customer numbers call several tenants, so
that every purge's exactness is exercised.

Usage::

    report = seed_all(SeedConfig(seed=7, as_of=date(2026, 11, 28)), mysql_database="contact_center")
    secrets = known_personal_data(config)   # devdata.world: to prove none of it reaches a log line

The world (tenants, people, calls) is ``devdata.world``; each store's writer is
``devdata.seed_<store>``; this module seeds them together and is the command line.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Iterable, Sequence

from devdata.report import SeedReport
from devdata.seed_cos import seed_cos
from devdata.seed_elasticsearch import seed_elasticsearch
from devdata.seed_mysql import seed_mysql
from devdata.seed_redis import seed_redis
from devdata.world import SeedConfig, tenant_ids
from include.retention.policy import STORES, Policy, load_policy

log = logging.getLogger(__name__)


def _import_drivers(stores: Iterable[str]) -> None:
    import importlib

    modules = {
        "mysql": ("airflow.providers.mysql.hooks.mysql", "MySQLdb"),
        "redis": ("airflow.providers.redis.hooks.redis", "redis"),
        "cos": ("airflow.providers.amazon.aws.hooks.s3", "botocore.exceptions", "cryptography.fernet"),
        "elasticsearch": ("airflow.providers.elasticsearch.hooks.elasticsearch", "elasticsearch.helpers", "airflow.sdk"),
    }
    importlib.import_module("cryptography.fernet")
    for store in stores:
        for name in modules[store]:
            importlib.import_module(name)


def seed_all(
    config: SeedConfig,
    *,
    mysql_conn_id: str = "retention_mysql",
    redis_conn_id: str = "retention_redis",
    aws_conn_id: str = "retention_cos",
    elasticsearch_conn_id: str = "retention_elasticsearch",
    mysql_database: str | None = None,
    reset_mysql: bool = False,
    cos_bucket: str | None = None,
    stores: Iterable[str] = STORES,
    policy: Policy | None = None,
    parallel: bool = True,
) -> SeedReport:
    """Seed every store named in ``stores``; the report merges theirs.

    :param parallel: seed the stores at the same time, one thread each (each store mostly
        waits on its server, so the whole takes about as long as the slowest store).
    """
    policy = policy or load_policy()
    chosen = tuple(dict.fromkeys(stores))
    unknown = set(chosen) - set(STORES)
    if unknown:
        raise ValueError(f"unknown store(s) {sorted(unknown)}; use {', '.join(STORES)}")
    jobs = {
        "mysql": lambda: seed_mysql(config, mysql_conn_id=mysql_conn_id, database=mysql_database, reset=reset_mysql,
                                    policy=policy),
        "redis": lambda: seed_redis(config, redis_conn_id=redis_conn_id, policy=policy),
        "cos": lambda: seed_cos(config, aws_conn_id=aws_conn_id, bucket=cos_bucket, policy=policy),
        "elasticsearch": lambda: seed_elasticsearch(config, elasticsearch_conn_id=elasticsearch_conn_id,
                                                    policy=policy),
    }
    started = time.monotonic()
    if parallel and len(chosen) > 1:
        _import_drivers(chosen)  # importing airflow from several threads at once deadlocks
        with ThreadPoolExecutor(max_workers=len(chosen), thread_name_prefix="seed") as pool:
            futures = {store: pool.submit(jobs[store]) for store in chosen}
            reports = [futures[store].result() for store in chosen]  # re-raises the first failure
    else:
        reports = [jobs[store]() for store in chosen]
    report = SeedReport(counts={}, by_tenant={}, tenants=tenant_ids(config))
    for part in reports:
        report = report.merged(part)
    report = report.merged(SeedReport(counts={}, by_tenant={}, tenants=(),
                                      seconds={"total": time.monotonic() - started}))
    log.info("Seeded %s in %.1fs", ", ".join(chosen), time.monotonic() - started)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m devdata.seed [--as-of 2026-11-28] [--database contact_center] ...``

    Connections come from the environment (``AIRFLOW_CONN_RETENTION_*``, e.g. from
    ``python -m devservers env``). MySQL is written through ``--mysql-conn-id``: an account that
    may create the schema, which the dev servers' ``retention_mysql`` (least privilege) may not;
    there, give root as ``AIRFLOW_CONN_DEV_MYSQL_ROOT`` and ``--mysql-conn-id dev_mysql_root``.
    Prints the report as JSON.
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m devdata.seed", description=main.__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tenants", type=int, default=6)
    parser.add_argument("--agents-per-tenant", type=int, default=12)
    parser.add_argument("--calls-per-day-per-tenant", type=int, default=30)
    parser.add_argument("--months", type=int, default=9)
    parser.add_argument("--as-of", type=date.fromisoformat, default=None, help="local date (default: today)")
    parser.add_argument("--recording-share", type=float, default=0.05)
    parser.add_argument("--database", default=None, help="MySQL database (default: the connection's)")
    parser.add_argument("--mysql-conn-id", default="retention_mysql",
                        help="the MySQL connection to seed through (it creates the schema)")
    parser.add_argument("--reset", action="store_true", help="drop and recreate the MySQL database first")
    parser.add_argument("--stores", default=",".join(STORES), help="comma-separated subset of " + ",".join(STORES))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    extra = {"as_of": args.as_of} if args.as_of else {}
    config = SeedConfig(
        seed=args.seed, tenants=args.tenants, agents_per_tenant=args.agents_per_tenant,
        calls_per_day_per_tenant=args.calls_per_day_per_tenant, months=args.months,
        recording_share=args.recording_share, **extra,
    )
    report = seed_all(config, mysql_conn_id=args.mysql_conn_id, mysql_database=args.database,
                      reset_mysql=args.reset, stores=[s.strip() for s in args.stores.split(",") if s.strip()])
    print(json.dumps(report.as_dict(), indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
