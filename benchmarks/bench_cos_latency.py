"""Benchmark (a model): COS deletes over a modelled round trip, batches in flight vs one key per request.

COS is remote: every request costs a round trip, and a batch's keys are deleted behind the
API. Neither shows on a local server, so this puts ``LatencyProxy`` in front of
``bench_cos.SyntheticS3`` (an in-memory S3 endpoint whose own cost per key is small: it is
measured and printed). The proxy holds each request for ``--rtt-ms`` (default 30 ms, a
cross-region round trip to a COS endpoint) and a ``DeleteObjects`` for ``--per-key-ms`` more per
key (default 0.2 ms, so that a 1,000-key batch costs 230 ms, the same order as the 14-39x that
batching bought on moto and Swift in ``docs/benchmarks/cos.md``). **These are chosen figures,
not measurements of COS.** Concurrent requests are held side by side, as a remote service does.

Side by side in one run, each on its own tenant's keys:

- ``CosStore.purge`` of a terminated tenant (``--objects`` keys) with 1, 4 and 16 batches in flight;
- list + one ``DeleteObject`` per key, sequential (a ``--sample`` of keys; its rate is what counts);
- list + one ``DeleteObject`` per key from 16 threads (what ``aws s3 rm`` does);
- ``aws s3 rm --recursive`` (awscli from PyPI in a throwaway venv under ``.run/``).

Usage: ``.venv/bin/python benchmarks/bench_cos_latency.py [--objects 20000 --sample 400 --rtt-ms 30 --per-key-ms 0.2]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_cos  # noqa: E402  (the synthetic endpoint, the awscli venv, the connection)

_KEY = re.compile(rb"<Key>")


class LatencyProxy(ThreadingHTTPServer):
    """Forwards every request to ``upstream`` after ``rtt`` seconds (plus ``per_key`` per key
    of a ``DeleteObjects``); one upstream connection per proxy thread."""

    daemon_threads = True

    def __init__(self, port: int, upstream: tuple[str, int], rtt: float, per_key: float) -> None:
        self.upstream, self.rtt, self.per_key = upstream, rtt, per_key
        self.requests = 0
        self.lock = threading.Lock()
        self.local = threading.local()
        super().__init__(("127.0.0.1", port), _Forward)

    def connection(self) -> http.client.HTTPConnection:
        if getattr(self.local, "conn", None) is None:
            self.local.conn = http.client.HTTPConnection(*self.upstream, timeout=600)
        return self.local.conn


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LatencyProxy

    def log_message(self, *_: Any) -> None:
        pass

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        hold = self.server.rtt
        if self.command == "POST" and "delete" in self.path.split("?", 1)[-1]:
            hold += self.server.per_key * len(_KEY.findall(body))
        with self.server.lock:
            self.server.requests += 1
        time.sleep(hold)
        conn = self.server.connection()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815


def per_key(client: Any, bucket: str, prefix: str, threads: int) -> tuple[int, float]:
    """List, then one DeleteObject per key from ``threads`` threads."""
    started = time.perf_counter()
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", ())]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda k: client.delete_object(Bucket=bucket, Key=k), keys))
    return len(keys), time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=20_000, help="objects per CosStore run")
    parser.add_argument("--sample", type=int, default=400, help="objects for one DeleteObject per key, sequential")
    parser.add_argument("--threaded-sample", type=int, default=4_000, help="objects for the 16-thread and aws runs")
    parser.add_argument("--rtt-ms", type=float, default=30.0)
    parser.add_argument("--per-key-ms", type=float, default=0.2)
    args = parser.parse_args()

    from zoneinfo import ZoneInfo

    from devservers.procs import spare_port
    from include.retention.policy import load_policy
    from include.retention.selections import TenantSelection
    from include.retention.stores.cos import CosStore

    flights = (1, 4, 16)
    tenants = {n: str(9800 + n) for n in flights}
    keys = [k for t in tenants.values() for k in bench_cos.day_keys(t, 20, -(-args.objects // 20))[: args.objects]]
    keys += bench_cos.day_keys("9831", 1, args.sample) + bench_cos.day_keys("9832", 1, args.threaded_sample)
    keys += bench_cos.day_keys("9833", 1, args.threaded_sample)
    neighbours = bench_cos.day_keys("98011", 1, 50)  # shares a prefix with tenant 9801
    notes: list[str] = [f"load average at the start: {os.getloadavg()[0]:.2f}"]
    upstream = bench_cos.Server("synthetic", keys + neighbours, notes)
    proxy = LatencyProxy(spare_port(), ("127.0.0.1", int(upstream.url.rsplit(":", 1)[1])), args.rtt_ms / 1000,
                         args.per_key_ms / 1000)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    env = bench_cos.conn_env(url, upstream.login, upstream.password)
    conn_var = f"AIRFLOW_CONN_{bench_cos.CONN_ID.upper()}"
    conn = json.loads(env[conn_var])
    conn["extra"]["config_kwargs"]["max_pool_connections"] = 32  # botocore keeps 10 by default: 16 in flight need more
    os.environ.update({**env, conn_var: json.dumps(conn)})
    direct, upstream.url = upstream.url, url  # the baselines' client goes through the proxy too
    policy = load_policy()
    target = policy.target("call_data.recordings")
    rows: list[tuple[str, int, float, int, float]] = []  # what, objects, seconds, requests, upstream ms/object

    def measure(what: str, run: Any) -> None:
        cpu, sent = upstream.cpu_seconds(), proxy.requests
        objects, seconds = run()
        rows.append((what, objects, seconds, proxy.requests - sent,
                     (upstream.cpu_seconds() - cpu) / max(1, objects) * 1000))

    try:
        for n in flights:
            store = CosStore(timezone=ZoneInfo(policy.timezone_name), aws_conn_id=bench_cos.CONN_ID,
                             bucket=upstream.bucket, deletes_in_flight=n)
            store.versioned()

            def ours(store: CosStore = store, tenant: str = tenants[n]) -> tuple[int, float]:
                started = time.perf_counter()
                result = store.purge(target, TenantSelection(tenant))
                assert result.deleted == result.planned == args.objects, result
                return result.deleted, time.perf_counter() - started

            measure(f"CosStore.purge, {n} batch{'es' if n > 1 else ''} in flight", ours)
        client = upstream.client()
        measure("list + one DeleteObject per key, sequential", lambda: per_key(client, upstream.bucket,
                                                                                "recordings/9831/", 1))
        measure("list + one DeleteObject per key, 16 threads", lambda: per_key(client, upstream.bucket,
                                                                                "recordings/9832/", 16))
        aws, version = bench_cos.awscli()
        if aws is None:
            notes.append(version)
        else:
            def aws_rm() -> tuple[int, float]:
                seconds, err = bench_cos.aws_rm(aws, url, upstream.login, upstream.password, upstream.bucket,
                                                "recordings/9833/")
                if err:
                    notes.append(f"aws s3 rm: {err.splitlines()[-1]}")
                return args.threaded_sample - len(upstream.keys("recordings/9833/")), seconds

            measure(f"`aws s3 rm --recursive` ({version.split()[0]})", aws_rm)
        left = upstream.keys()
        assert left == set(neighbours), f"neighbour 98011 changed: {len(left)} objects left"
        notes.append(f"neighbour tenant 98011 (shares the prefix of 9801) kept all {len(neighbours)} objects")
    finally:
        proxy.shutdown()
        upstream.url = direct
        upstream.close()
    notes.append(f"load average at the end: {os.getloadavg()[0]:.2f}")

    rate = {what: objects / seconds for what, objects, seconds, _, _ in rows}
    sequential = rate["list + one DeleteObject per key, sequential"]
    threaded = rate["list + one DeleteObject per key, 16 threads"]
    print(f"# COS deletes over a modelled round trip: {args.rtt_ms:g} ms a request, "
          f"{args.per_key_ms:g} ms a key of a DeleteObjects (a model, not COS)\n")
    print("| deleter | objects | seconds | objects/s | vs one key per request, sequential | vs 16 threads "
          "| requests | upstream CPU (ms/object) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for what, objects, seconds, requests, cpu in rows:
        r = objects / seconds
        print(f"| {what} | {objects:,} | {seconds:.1f} | {r:,.0f} | {r / sequential:.1f}x | {r / threaded:.1f}x "
              f"| {requests:,} | {cpu:.3f} |")
    print()
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
