"""Benchmark: RedisStore purge vs ``redis-cli --scan | xargs redis-cli unlink``.

Runs against a private redis-server it starts on a spare port (never the shared one) and
stops by pid. Prints a markdown table.

Scenarios
- speed: purge one tenant's 500,000 agent keys among 1,500,000 keys (the tenant's sessions
  and queues, and a neighbour tenant 9200123 whose id starts with the purged 920012);
- memory: purge a 1,000,000-key tenant among 1,500,000 and record the purging process's
  peak RSS (it streams keys; it never holds the list).

Each method runs on a freshly populated keyspace (``DEBUG POPULATE``), ``--rounds`` times;
the table shows the median. Our store runs in a child process so its peak RSS is its own.

Usage: ``.venv/bin/python benchmarks/bench_redis.py [--rounds 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T_MAIN, T_LONG = "920012", "9200123"
CONN_ID = "retention_redis_bench"


def populate(client: object, *, selected_agents: int, other_layout: list[tuple[str, int, int]]) -> int:
    """Fill db 0: ``selected_agents`` x 1,000 agent keys of T_MAIN plus the other groups."""
    client.flushdb()  # type: ignore[attr-defined]  # our private server only
    for a in range(selected_agents):
        client.execute_command("DEBUG", "POPULATE", 1_000, f"cc:{T_MAIN}:agent:a{a}:k", 8)  # type: ignore[attr-defined]
    for prefix, groups, per_group in other_layout:
        for g in range(groups):
            client.execute_command("DEBUG", "POPULATE", per_group, prefix.format(g=g), 8)  # type: ignore[attr-defined]
    return int(client.dbsize())  # type: ignore[attr-defined]


def run_store(port: int, scan_count: int, batch_size: int, *, hiredis: bool = True) -> dict[str, float]:
    """Purge T_MAIN with RedisStore in a child process; returns its timings and peak RSS."""
    env = {
        **os.environ,
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(
            {"conn_type": "redis", "host": "127.0.0.1", "port": port, "extra": {"db": 0}}
        ),
        "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", str(ROOT / ".run" / "airflow-bench")),
        "PYTHONPATH": str(ROOT),
    }
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--worker", "--scan-count", str(scan_count), "--batch-size", str(batch_size)]
        + ([] if hiredis else ["--no-hiredis"]),
        env=env, check=True, capture_output=True, text=True,
    )
    wall = time.perf_counter() - started
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


def worker(scan_count: int, batch_size: int, *, hiredis: bool) -> None:
    import logging

    if not hiredis:
        sys.modules["hiredis"] = None  # type: ignore[assignment]  # redis-py falls back to its Python parser

    logging.disable(logging.INFO)
    from include.retention.policy import load_policy
    from include.retention.selections import TenantSelection
    from include.retention.stores.redis import RedisStore

    target = load_policy().target("agent_info.agent_state")
    store = RedisStore(redis_conn_id=CONN_ID, scan_count=scan_count, batch_size=batch_size)
    store.client.ping()  # connect before the clock starts
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    result = store.purge(target, TenantSelection(T_MAIN))  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    print(json.dumps({
        "seconds": seconds,
        "deleted": result.deleted,
        "batches": result.batches,
        "rss_before_mb": rss_before / 1024,
        "hiredis": __import__("redis").utils.HIREDIS_AVAILABLE,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def run_redis_cli(port: int) -> dict[str, float]:
    """The shell one-liner operators reach for: redis-cli --scan | xargs -n 1000 redis-cli unlink."""
    pattern = f"cc:{T_MAIN}:agent:*"
    cmd = f"redis-cli -p {port} --scan --pattern '{pattern}' | xargs -n 1000 redis-cli -p {port} unlink > /dev/null"
    started = time.perf_counter()
    subprocess.run(["bash", "-c", cmd], check=True)
    return {"seconds": time.perf_counter() - started}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-hiredis", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scan-count", type=int, default=1_000)
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.worker:
        worker(args.scan_count, args.batch_size, hiredis=not args.no_hiredis)
        return 0

    from tests.fixtures.redis import PrivateRedis

    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        print("redis-server and redis-cli are needed", file=sys.stderr)
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    server = PrivateRedis(workdir, persistent=False, extra_args=["--enable-debug-command", "yes"]).start()
    client = server.client()
    version = client.info("server")["redis_version"]
    # 1M keys that must stay: the tenant's sessions and queues, and the neighbour tenant.
    speed_others = [
        (f"cc:{T_MAIN}:session:a{{g}}:s", 250, 1_000),
        (f"cc:{T_MAIN}:queue:q{{g}}:item", 50, 1_000),
        (f"cc:{T_LONG}:agent:a{{g}}:k", 700, 1_000),
    ]
    memory_others = [(f"cc:{T_LONG}:agent:a{{g}}:k", 500, 1_000)]
    rows: list[str] = []
    try:
        measurements: dict[str, list[dict[str, float]]] = {}

        def measure(name: str, selected: int, others: list[tuple[str, int, int]], fn: object) -> None:
            total = populate(client, selected_agents=selected, other_layout=others)
            kept = total - selected * 1_000
            result = fn()  # type: ignore[operator]
            left = sum(1 for _ in client.scan_iter(match=f"cc:{T_MAIN}:agent:*", count=10_000))
            if left or client.dbsize() != kept:
                raise SystemExit(f"{name}: {left} selected keys left, {client.dbsize()} keys vs {kept} kept")
            result["total"], result["selected"] = total, selected * 1_000
            measurements.setdefault(name, []).append(result)
            print(f"  {name}: {result['seconds']:.2f}s", file=sys.stderr)

        load_before = os.getloadavg()[0]
        # Rounds interleave the methods, so that a busy spell on the machine hits them alike.
        for _ in range(args.rounds):
            measure("store", 500, speed_others, lambda: run_store(server.port, args.scan_count, args.batch_size))
            measure("redis-cli", 500, speed_others, lambda: run_redis_cli(server.port))
            measure("store scan_count=10000", 500, speed_others,
                    lambda: run_store(server.port, 10_000, args.batch_size))
            measure("store no hiredis", 500, speed_others,
                    lambda: run_store(server.port, args.scan_count, args.batch_size, hiredis=False))
            measure("store 1M", 1_000, memory_others,
                    lambda: run_store(server.port, args.scan_count, args.batch_size))
            measure("redis-cli 1M", 1_000, memory_others, lambda: run_redis_cli(server.port))
        load_after = os.getloadavg()[0]

        def med(name: str, key: str) -> float:
            return statistics.median(m[key] for m in measurements[name])

        base = med("redis-cli", "seconds")
        base_1m = med("redis-cli 1M", "seconds")
        rows.append(f"Redis {version}, private server, {args.rounds} rounds (median); "
                    f"batch_size={args.batch_size}; 1-min load average {load_before:.1f} before, "
                    f"{load_after:.1f} after ({os.cpu_count()} cores)\n")
        rows.append("| scenario | method | keys in db | deleted | seconds | keys/s | vs redis-cli "
                    "| peak RSS (MB) | RSS before purge (MB) |")
        rows.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, label, baseline in [
            ("store", f"RedisStore (scan_count={args.scan_count})", base),
            ("store scan_count=10000", "RedisStore (scan_count=10000)", base),
            ("store no hiredis", f"RedisStore (scan_count={args.scan_count}), redis-py without hiredis", base),
            ("redis-cli", "redis-cli --scan \\| xargs -n 1000 redis-cli unlink", base),
            ("store 1M", f"RedisStore (scan_count={args.scan_count})", base_1m),
            ("redis-cli 1M", "redis-cli --scan \\| xargs -n 1000 redis-cli unlink", base_1m),
        ]:
            ms = measurements[name]
            seconds = med(name, "seconds")
            selected, total = ms[0]["selected"], ms[0]["total"]
            rss = f"{max(m['peak_rss_mb'] for m in ms):.0f}" if "peak_rss_mb" in ms[0] else "n/a"
            before = f"{max(m['rss_before_mb'] for m in ms):.0f}" if "rss_before_mb" in ms[0] else "n/a"
            scenario = "500k of 1.5M" if selected == 500_000 else "1M of 1.5M"
            rows.append(f"| {scenario} | {label} | {total:,.0f} | {selected:,.0f} | {seconds:.2f} | "
                        f"{selected / seconds:,.0f} | {baseline / seconds:.1f}x | {rss} | {before} |")
        print("\n".join(rows))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
