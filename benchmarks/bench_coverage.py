"""Benchmark: the coverage check over the large benchmark's data, on private servers. Not a test.

    .venv/bin/python benchmarks/bench_coverage.py [--tenants 500] [--redis-keys 1000000] [--months 12]
        [--objects 2000] [--backup-days 0] [--calls 200000]

Loads the world of ``benchmarks/bench_daily_dags.py`` (its ``World``: private MariaDB, Redis,
Swift s3api and the Elasticsearch stand-in, bulk paths; 500 tenants x 12 months = 6,000 indices,
1M Redis keys), adds what the policy does not know (``crm_callbacks`` with 10,000 phone numbers,
a Redis key family ``cc:{tenant}:callback:{n}``, a COS prefix ``exports/``, an index family
``crm-contacts-{tenant}``), then times each store's inventory (``coverage.run.inventory_store``,
as the DAG's tasks run it, through the Airflow connections) and the classification, with the
default bounds and, side by side in the same run, with a Redis scan of the whole keyspace.
Prints markdown with the load average. Smaller than the daily benchmark where size changes
nothing here, to keep the load short: ``--calls`` 200k (5M there: an unknown table is sampled
with ``LIMIT`` and the policy's tables are only listed from ``information_schema``) and
``--objects`` 2,000 without backups (20,000 there: COS is listed at its top level only).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import bench_daily_dags as daily  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--redis-keys", type=int, default=1_000_000)
    parser.add_argument("--objects", type=int, default=2_000)
    parser.add_argument("--backup-days", type=int, default=0)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--mysql-port", type=int, default=3327)
    args = parser.parse_args()
    # the daily benchmark's remaining arguments, at its defaults
    defaults = dict(terminated=0, agents_per_tenant=200, metrics_agents=5, docs_per_index=10,
                    as_of=daily.DAGTEST_AS_OF, executor="dagtest", buffer_pool="1G", put_threads=8)
    for key, value in defaults.items():
        setattr(args, key, value)
    return args


def add_unknowns(world: Any, tenants: list[str]) -> None:
    """What no policy target names: a table, a key family, a prefix and an index family, with phone numbers."""
    data = world.data
    data.sql("INSERT INTO crm_callbacks (tenant_id, contact, slot, status) SELECT "
             f"CAST({daily.TENANT_BASE + 1} + seq MOD {len(tenants)} AS CHAR), CONCAT('+659', 1000000 + seq), "
             "NOW(), 'scheduled' FROM seq_1_to_10000")
    client = world.servers.redis.client()
    pipe = client.pipeline(transaction=False)
    for n, tenant in enumerate(tenants):
        for k in range(10):
            pipe.set(f"cc:{tenant}:callback:{k}", f"+659{2000000 + n * 10 + k}")
    pipe.execute()
    s3 = data.s3()
    for tenant in tenants[:20]:
        s3.put_object(Bucket=world.bucket, Key=f"exports/{tenant}/report.csv", Body=b"x")
    es = data.es()
    try:
        ops: list[dict[str, Any]] = []
        for n, tenant in enumerate(tenants):
            ops += [{"index": {"_index": f"crm-contacts-{tenant}"}}, {"contact": f"+659{3000000 + n}"}]
        es.bulk(operations=ops, refresh=True)
    finally:
        es.close()


def measure(policy: Any, bounds: Any) -> dict[str, float]:
    from include.retention.coverage.exemptions import load_exemptions
    from include.retention.coverage.run import classify_results, inventory_store
    from include.retention.policy import STORES

    exemptions = load_exemptions()
    out: dict[str, float] = {}
    results = []
    for store in STORES:
        started = time.monotonic()
        results.append(inventory_store(store, policy, exemptions, bounds))
        out[store] = time.monotonic() - started
    started = time.monotonic()
    findings = classify_results(results, exemptions)
    out["classify"] = time.monotonic() - started
    out["total"] = sum(out.values())  # the four stores and the classification
    out["items"] = len(findings)
    out["unknown"] = sum(f.status == "unknown" for f in findings)
    out["unknown items"] = "; ".join(f"{f.id} ({f.item.counts.e164} phone-shaped of {f.item.counts.sampled})"  # type: ignore[assignment]
                                     for f in findings if f.status == "unknown")
    out["redis keys scanned"] = next(r for r in results if r["store"] == "redis")["details"]["keys_scanned"]
    return out


def main() -> int:
    args = parse_args()
    sizes = daily.Sizes(args)
    world = daily.World(args, sizes)
    try:
        world.load()
        add_unknowns(world, sizes.tenants)
        os.environ.update({k: v for k, v in world.env.items() if k.startswith("AIRFLOW_CONN_")})
        from include.retention.coverage.run import Settings

        measure(sizes.policy, Settings())  # warm-up: imports, connections, the stand-in's first answers
        load_before = os.getloadavg()
        bounded = measure(sizes.policy, Settings())
        whole = measure(sizes.policy, Settings(redis_sample_keys=2 * args.redis_keys + 100_000))
        load_after = os.getloadavg()
    finally:
        world.servers.stop()
    print(f"# Coverage check over the large benchmark's data\n\n- Machine: {daily.machine()}; load average "
          f"before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, after {load_after[0]:.2f} "
          f"{load_after[1]:.2f} {load_after[2]:.2f}")
    print(f"- Data: {len(sizes.tenants)} tenants, {len(sizes.months)} months ({world.before.get('elasticsearch indices')}"
          f" cc-logs indices + {len(sizes.tenants)} crm-contacts), {world.before.get('redis keys'):,} Redis keys "
          f"(+{len(sizes.tenants) * 10:,} callback keys), {world.before.get('cos objects'):,} COS objects, "
          f"{sizes.calls:,} call records; ES is the stand-in")
    print("- Command: `.venv/bin/python benchmarks/bench_coverage.py " + " ".join(sys.argv[1:]) + "`\n")
    print("| step | default bounds (SCAN 20,000 keys) | whole Redis keyspace |\n|---|---|---|")
    for key in ("mysql", "redis", "cos", "elasticsearch", "classify", "total"):
        print(f"| {key} | {bounded[key]:.2f} s | {whole[key]:.2f} s |")
    for key in ("redis keys scanned", "items", "unknown"):
        print(f"| {key} | {int(bounded[key]):,} | {int(whole[key]):,} |")
    print(f"\nUnknown (default bounds): {bounded['unknown items']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
