"""Benchmark: COS planning of ``retention_call_data`` (recordings and call-data backups), old vs new.

Side by side in one run, for each tenant count (``--tenants``, default 100 500 2000 5000), on the
same bucket: ``plan_category`` of call_data reduced to its COS targets (no MySQL; no deletion
requests, so recordings need no keys from MySQL), with

- **old**: the COS store as it was before this change (``cos*.py`` at ``--old-commit``, read with
  ``git show`` into a temporary package): the prefix tree walked level by level (a ``Delimiter``
  listing per tenant, year and month), one skip-scan per tenant for each count;
- **new**: the store of this tree: one listing of the target's head (dense tenants walked), the
  expired selections of every tenant counted in one skip-scan.

The data per tenant is that of ``benchmarks/bench_daily_dags.py`` at its defaults (20,000 objects
for 500 tenants: two days of backups per tenant around the 28-day cut-off, the rest recordings
spread over a year), so 40 objects a tenant. The endpoint is ``bench_cos.SyntheticS3`` (in memory)
behind ``bench_cos_latency.LatencyProxy``, which holds each request ``--rtt-ms`` (default 30 ms):
**a model of a remote COS endpoint, not COS**. Requests are counted at the proxy, per target.
``--swift-tenants N`` adds one run on a private Swift node (s3api, no latency added) at N tenants,
to show that the request counts are the same on a real S3 implementation.

Usage: ``.venv/bin/python benchmarks/bench_cos_planning.py [--tenants 100 500 2000 5000] [--swift-tenants 500]
[--old-up-to 2000]``
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_cos  # noqa: E402
from bench_cos_latency import LatencyProxy  # noqa: E402

OLD_COMMIT = "eb85ff3"  # the last commit before the one-listing planning
MODULES = ("cos", "cos_bucket", "cos_scan", "cos_client")
AS_OF = date(2026, 11, 28)  # bench_daily_dags' as-of date
OBJECTS_PER_TENANT = 40  # bench_daily_dags: 20,000 objects for 500 tenants
BACKUP_DAYS_AGO = (29, 27)  # bench_daily_dags: --backup-days 2, around the 28-day cut-off
TENANT_BASE = 9_700_000


def old_store_class() -> Any:
    """``CosStore`` as it was at ``OLD_COMMIT``, importing its own old siblings."""
    folder = Path(tempfile.mkdtemp(prefix="old-cos-")) / "old_cos"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for name in MODULES:
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD_COMMIT}:include/retention/stores/{name}.py"],
                              check=True, capture_output=True, text=True).stdout
        for other in MODULES:
            text = text.replace(f"include.retention.stores.{other} ", f"old_cos.{other} ")
            text = text.replace(f"include.retention.stores.{other}\n", f"old_cos.{other}\n")
        (folder / f"{name}.py").write_text(text)
    sys.path.insert(0, str(folder.parent))
    module = importlib.import_module("old_cos.cos")
    assert module.__file__ and module.__file__.startswith(str(folder)), module.__file__
    return module.CosStore


def tenant_keys(policy: Any, tenants: int) -> list[str]:
    """40 objects a tenant: its backups (two days, every backup target's tables), recordings the rest."""
    from devdata.seed_cos import backup_targets
    from include.retention.policy import load_policy

    recordings = policy.target("call_data.recordings").prefix
    targets = backup_targets(load_policy())  # the whole policy: which tables each category backs up
    first = AS_OF - timedelta(days=365)
    keys: list[str] = []
    for n in range(tenants):
        tenant = str(TENANT_BASE + 1 + n)
        backups = [f"{t.prefix.render(tenant=tenant, date=AS_OF - timedelta(days=d))}{table}.json.gz"
                   for d in BACKUP_DAYS_AGO for t, tables in targets for table in tables]
        keys += backups
        for i in range(OBJECTS_PER_TENANT - len(backups)):
            call = hashlib.md5(f"{tenant}-{i}".encode(), usedforsecurity=False).hexdigest()
            day = first + timedelta(days=(i * 365 // (OBJECTS_PER_TENANT - len(backups)) + n) % 365)
            keys.append(f"{recordings.render(tenant=tenant, date=day)}{call}.wav")
    return keys


def cos_only_policy() -> Any:
    import yaml

    from include.retention.policy import DEFAULT_POLICY_PATH, parse_policy

    raw = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    call_data = raw["categories"]["call_data"]
    call_data["targets"] = [t for t in call_data["targets"] if t["store"] == "cos"]
    for t in call_data["targets"]:
        t.pop("subject_keys_from", None)
    call_data["requests"] = ["termination"]
    return parse_policy(raw)


def plan_once(store_class: Any, policy: Any, bucket: str, counter: Counter[str]) -> tuple[float, dict[str, Any]]:
    from devservers.connections import DEV_KEYS
    from include.retention.crypto import RetentionCrypto
    from include.retention.daily.breaker import RunOptions
    from include.retention.daily.plan import plan_category
    from include.retention.facts import LedgerFacts

    crypto = RetentionCrypto(subject_hash_key=DEV_KEYS["subject_hash_key"].encode(),
                             subject_encryption_key=DEV_KEYS["subject_encryption_key"].encode(),
                             certificate_key=DEV_KEYS["certificate_key"].encode())
    store = store_class(timezone=policy.timezone, aws_conn_id=bench_cos.CONN_ID, bucket=bucket)

    def count(params: dict[str, Any], **_: Any) -> None:
        counter[params["query_string"].get("prefix", "").split("/")[0] or "(none)"] += 1

    store.client.meta.events.register("before-call.s3.ListObjectsV2", count)
    store.versioned()
    as_of = datetime(AS_OF.year, AS_OF.month, AS_OF.day, tzinfo=policy.timezone)
    started = time.perf_counter()
    plan = plan_category(policy, "call_data", as_of, RunOptions(allow_large_purge=True, override_reason="bench"),
                         crypto=crypto, facts=LedgerFacts(), stores={"cos": store})
    return time.perf_counter() - started, plan


def planned(plan: dict[str, Any]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for spec in plan["specs"]:
        out[spec["target"]] += spec["planned"]
    return dict(out)


def run_size(label: str, url: str, login: str, password: str, bucket: str, policy: Any, old: Any | None,
             rows: list[dict[str, Any]]) -> None:
    from include.retention.stores.cos import CosStore

    env = bench_cos.conn_env(url, login, password)
    os.environ.update(env)
    results = {}
    for name, cls in (("old", old), ("new", CosStore)) if old is not None else (("new", CosStore),):
        counter: Counter[str] = Counter()
        load = os.getloadavg()[0]
        seconds, plan = plan_once(cls, policy, bucket, counter)
        results[name] = planned(plan)
        rows.append({"endpoint": label, "planning": name, "seconds": seconds, "recordings": counter["recordings"],
                     "backups": counter["backups"], "planned": results[name], "load": load})
        print(json.dumps(rows[-1]), flush=True)
    assert len(set(map(json.dumps, results.values()))) == 1, results  # the same plan, to the object


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, nargs="+", default=[100, 500, 2000, 5000])
    parser.add_argument("--swift-tenants", type=int, default=0)
    parser.add_argument("--old-up-to", type=int, default=10**9,
                        help="run the old planning only up to this many tenants (it costs minutes per 1,000)")
    parser.add_argument("--rtt-ms", type=float, default=30.0)
    args = parser.parse_args()

    from devservers.procs import spare_port

    policy = cos_only_policy()
    old = old_store_class()
    rows: list[dict[str, Any]] = []
    notes = [f"load average at the start: {os.getloadavg()[0]:.2f}"]
    for tenants in args.tenants:
        keys = tenant_keys(policy, tenants)
        upstream = bench_cos.Server("synthetic", keys, notes)
        proxy = LatencyProxy(spare_port(), ("127.0.0.1", int(upstream.url.rsplit(":", 1)[1])), args.rtt_ms / 1000, 0)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        try:
            run_size(f"latency model, {tenants:,} tenants, {len(keys):,} objects",
                     f"http://127.0.0.1:{proxy.server_address[1]}", upstream.login, upstream.password,
                     upstream.bucket, policy, old if tenants <= args.old_up_to else None, rows)
        finally:
            proxy.shutdown()
            upstream.close()
    if args.swift_tenants:
        keys = tenant_keys(policy, args.swift_tenants)
        server = bench_cos.Server("swift", keys, notes)
        try:
            run_size(f"Swift s3api, {args.swift_tenants:,} tenants, {len(keys):,} objects", server.url, server.login,
                     server.password, server.bucket, policy, old, rows)
        finally:
            server.close()
    notes.append(f"load average at the end: {os.getloadavg()[0]:.2f}")

    print(f"\n# COS planning of retention_call_data, old vs new ({args.rtt_ms:g} ms a request on the latency "
          "model: a model, not COS)\n")
    print("| endpoint | planning | plan (s) | LIST requests: recordings | LIST requests: call_data backups "
          "| planned objects | load (1 min) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['endpoint']} | {r['planning']} | {r['seconds']:.1f} | {r['recordings']:,} | {r['backups']:,} "
              f"| {sum(r['planned'].values()):,} | {r['load']:.2f} |")
    print()
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
