"""Benchmark: CosStore purge vs one DeleteObject per key vs ``aws s3 rm --recursive``.

Scenarios
- speed: purge one month of one tenant's recordings (``--days`` x ``--per-day`` objects,
  default 30 x 200 = 6,000) as the daily DAG does (an ExpiredSelection over the month's day
  prefixes), on a private Swift s3api node this script starts on a spare port and stops by
  pid. The baselines delete a sample of the same layout (``--sample-days`` days of two other
  tenants), one DeleteObject per key after a listing, and with ``aws s3 rm --recursive``
  (awscli from PyPI in a throwaway venv under ``.run/``, not the project's). A neighbour
  tenant 123 must keep every object.
- memory: purge ``--rss-objects`` objects (default 120,000) in a child process and record its
  peak RSS. Swift here writes ~50 objects/s (seeding 120,000 would take 40 minutes) and
  moto's listing is quadratic (20,000 objects: 31 s per full listing), so this runs against
  ``SyntheticS3`` below: a small S3 endpoint that serves ListObjectsV2 pages from a sorted
  key list, checks Content-MD5 on DeleteObjects as Swift does, and deletes. The client path
  (S3Hook, botocore, signing, XML parsing, our store) is the real one; RSS is the client's.
  The Swift month purge also runs in a child process, so its RSS is reported too.

Usage: ``.venv/bin/python benchmarks/bench_cos.py [--days 30 --per-day 200 --sample-days 3]``
"""

from __future__ import annotations

import argparse
import base64
import bisect
import hashlib
import json
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape, unescape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONN_ID = "retention_cos_bench"
MONTH_START = date(2026, 5, 1)
AWSCLI_VENV = ROOT / ".run" / "bench-awscli"


def day_keys(tenant: str, days: int, per_day: int, start: date = MONTH_START) -> list[str]:
    return [
        f"recordings/{tenant}/{start + timedelta(days=d):%Y/%m/%d}/call-{i:06d}.wav"
        for d in range(days)
        for i in range(per_day)
    ]


def units(tenant: str, days: int, start: date = MONTH_START) -> list[str]:
    return [f"recordings/{tenant}/{start + timedelta(days=d):%Y/%m/%d}/" for d in range(days)]


def conn_env(endpoint_url: str, login: str, password: str) -> dict[str, str]:
    return {
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps({
            "conn_type": "aws",
            "login": login,
            "password": password,
            "extra": {"endpoint_url": endpoint_url, "region_name": "us-east-1",
                      "config_kwargs": {"read_timeout": 600, "retries": {"max_attempts": 2, "mode": "standard"}}},
        }),
        "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", str(ROOT / ".run" / "airflow-bench")),
        "PYTHONPATH": str(ROOT),
    }


# --------------------------------------------------------------------------- child: our store


def purge_child(args: argparse.Namespace) -> None:
    """Run one purge with CosStore and print JSON: counts, seconds, RSS before and at peak."""
    from zoneinfo import ZoneInfo

    from include.retention.policy import load_policy
    from include.retention.selections import ExpiredSelection, TenantSelection
    from include.retention.stores.cos import CosStore

    policy = load_policy()
    target = policy.target("call_data.recordings")
    store = CosStore(timezone=ZoneInfo(policy.timezone_name), aws_conn_id=CONN_ID, bucket=args.bucket)
    store.versioned()  # client created and bucket mode known before the clock starts
    if args.units_file:
        names = tuple(json.loads(Path(args.units_file).read_text()))
        from datetime import datetime, timezone

        selection: Any = ExpiredSelection(before=datetime(2100, 1, 1, tzinfo=timezone.utc), tenant=args.tenant,
                                          units=names)
    else:
        selection = TenantSelection(args.tenant)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    result = store.purge(target, selection)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    remaining = store.verify(target, selection)
    print(json.dumps({"deleted": result.deleted, "planned": result.planned, "batches": result.batches,
                      "listing_requests": result.details.get("listing_requests"), "seconds": seconds,
                      "rss_before_mb": baseline, "rss_peak_mb": peak, "remaining": remaining}))


def run_store_child(endpoint_url: str, login: str, password: str, bucket: str, tenant: str,
                    unit_names: list[str] | None) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--purge-child", "--bucket", bucket, "--tenant", tenant]
    if unit_names is not None:
        units_file = ROOT / ".run" / f"bench-cos-units-{secrets.token_hex(3)}.json"
        units_file.parent.mkdir(parents=True, exist_ok=True)
        units_file.write_text(json.dumps(unit_names))
        argv += ["--units-file", str(units_file)]
    try:
        out = subprocess.run(argv, env={**os.environ, **conn_env(endpoint_url, login, password)}, check=True,
                             capture_output=True, text=True)
    finally:
        if unit_names is not None:
            units_file.unlink(missing_ok=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- baselines


def per_object(client: Any, bucket: str, prefix: str) -> tuple[int, float]:
    """List, then one DeleteObject per key: what a script without batching does."""
    started = time.perf_counter()
    deleted = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", ()):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
            deleted += 1
    return deleted, time.perf_counter() - started


def awscli() -> tuple[Path | None, str]:
    """``aws`` from PyPI in a throwaway venv (never the project's venv)."""
    aws = AWSCLI_VENV / "bin" / "aws"
    if not aws.exists():
        subprocess.run([sys.executable, "-m", "venv", str(AWSCLI_VENV)], check=True, capture_output=True)
        pip = subprocess.run([str(AWSCLI_VENV / "bin" / "pip"), "install", "-q", "awscli"], capture_output=True,
                             text=True)
        if pip.returncode or not aws.exists():
            return None, f"awscli did not install: {pip.stderr.strip()[-200:]}"
    version = subprocess.run([str(aws), "--version"], capture_output=True, text=True)
    return aws, (version.stdout or version.stderr).strip()


def aws_rm(aws: Path, endpoint_url: str, login: str, password: str, bucket: str, prefix: str) -> tuple[float, str]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": login, "AWS_SECRET_ACCESS_KEY": password,
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    started = time.perf_counter()
    out = subprocess.run([str(aws), "s3", "rm", f"s3://{bucket}/{prefix}", "--recursive", "--only-show-errors",
                          "--endpoint-url", endpoint_url], env=env, capture_output=True, text=True)
    return time.perf_counter() - started, (out.stderr or "").strip()[-300:]


# --------------------------------------------------------------------------- SyntheticS3


class SyntheticS3(ThreadingHTTPServer):
    """A bucket of generated keys behind the three S3 calls a purge makes (listings with or
    without ``Delimiter``, versioning status, DeleteObjects / DeleteObject)."""

    daemon_threads = True

    def __init__(self, port: int, bucket: str, keys: list[str]) -> None:
        super().__init__(("127.0.0.1", port), _SyntheticHandler)
        self.bucket, self.keys, self.deleted = bucket, sorted(keys), set[str]()
        self.lock = threading.Lock()


class _SyntheticHandler(BaseHTTPRequestHandler):
    server: SyntheticS3
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: Any) -> None:
        return

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if "versioning" in query:
            self._send(200, '<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>')
            return
        prefix = query.get("prefix", "")
        after = query.get("start-after", "")
        delimiter = query.get("delimiter", "")
        if "continuation-token" in query:
            after = base64.urlsafe_b64decode(query["continuation-token"]).decode()
        limit = min(int(query.get("max-keys", "1000")), 1000)
        srv = self.server
        index = bisect.bisect_right(srv.keys, after) if after else bisect.bisect_left(srv.keys, prefix)
        if delimiter and "continuation-token" in query and after.endswith(delimiter):  # resume past a CommonPrefix
            index = bisect.bisect_left(srv.keys, after[:-1] + chr(ord(after[-1]) + 1))
        found: list[str] = []
        prefixes: list[str] = []
        truncated = False
        with srv.lock:
            while index < len(srv.keys):
                key = srv.keys[index]
                index += 1
                if not key.startswith(prefix):
                    if key > prefix:
                        break
                    continue
                if key in srv.deleted:
                    continue
                cut = key.find(delimiter, len(prefix)) if delimiter else -1
                if cut >= 0:  # rolled up into a CommonPrefix, as S3 does; then skip past it
                    common = key[: cut + len(delimiter)]
                    if len(found) + len(prefixes) == limit:
                        truncated = True
                        break
                    prefixes.append(common)
                    index = bisect.bisect_left(srv.keys, common[:-1] + chr(ord(common[-1]) + 1), index)
                    continue
                if len(found) + len(prefixes) == limit:
                    truncated = True
                    break
                found.append(key)
        contents = "".join(
            f"<Contents><Key>{escape(k)}</Key><LastModified>2026-05-01T00:00:00.000Z</LastModified>"
            f"<ETag>&quot;9dd4e461268c8034f5c8564e155c67a6&quot;</ETag><Size>1</Size>"
            f"<StorageClass>STANDARD</StorageClass></Contents>"
            for k in found
        )
        common_xml = "".join(f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in prefixes)
        last = max(found[-1:] + prefixes[-1:]) if truncated else ""
        token = (f"<NextContinuationToken>{base64.urlsafe_b64encode(last.encode()).decode()}"
                 f"</NextContinuationToken>") if truncated else ""
        self._send(200, f'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>{srv.bucket}</Name>'
                        f"<Prefix>{escape(prefix)}</Prefix><KeyCount>{len(found) + len(prefixes)}</KeyCount>"
                        f"<MaxKeys>{limit}</MaxKeys><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
                        f"{token}{contents}{common_xml}</ListBucketResult>")

    def do_HEAD(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_DELETE(self) -> None:  # noqa: N802
        from urllib.parse import unquote

        key = unquote(urlsplit(self.path).path).split("/", 2)[-1]
        with self.server.lock:
            self.server.deleted.add(key)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if "delete" not in urlsplit(self.path).query:
            self._send(400, "<Error><Code>NotImplemented</Code></Error>")
            return
        md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        if self.headers.get("Content-MD5") != md5:  # as Swift's s3api and COS do
            self._send(400, "<Error><Code>InvalidRequest</Code><Message>Missing required header for this request: "
                            "Content-MD5</Message></Error>")
            return
        keys = [unescape(k) for k in re.findall(r"<Key>(.*?)</Key>", body.decode())]
        with self.server.lock:
            self.server.deleted.update(keys)
        self._send(200, '<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>')


def serve_synthetic(args: argparse.Namespace) -> None:
    keys = day_keys("12", 30, -(-args.objects // 30)) [: args.objects] + day_keys("123", 1, 100)
    server = SyntheticS3(args.port, "bench", keys)
    print("ready", flush=True)
    server.serve_forever()


# --------------------------------------------------------------------------- servers


def serve_moto(args: argparse.Namespace) -> None:
    """moto in this process, its bucket seeded straight into the backend (HTTP PUTs to moto
    run at ~40/s here), then served over HTTP like ``moto_server``."""
    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    boto3.client("s3", endpoint_url=f"http://127.0.0.1:{args.port}", aws_access_key_id="bench",
                 aws_secret_access_key="bench", region_name="us-east-1").create_bucket(Bucket=args.bucket)
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for key in json.loads(Path(args.keys_file).read_text()):
        backend.put_object(args.bucket, key, b"x")
    print("ready", flush=True)
    threading.Event().wait()


def serve_synthetic_keys(args: argparse.Namespace) -> None:
    server = SyntheticS3(args.port, args.bucket, json.loads(Path(args.keys_file).read_text()))
    print("ready", flush=True)
    server.serve_forever()


class Server:
    """One S3 server holding ``keys`` in ``bucket``, with how to reach it and stop it."""

    def __init__(self, kind: str, keys: list[str], notes: list[str]) -> None:
        from devservers import swift
        from devservers.procs import spare_port

        self.kind, self.bucket = kind, f"bench-cos-{secrets.token_hex(2)}"
        self.node: Any = None
        self.proc: subprocess.Popen[str] | None = None
        started = time.perf_counter()
        if kind == "swift":
            from devservers.procs import RUN_DIR

            tag = self.bucket.rsplit("-", 1)[1]
            self.node = swift.SwiftNode(RUN_DIR / f"swift-bench-{tag}", spare_port(), name=f"swift-bench-{tag}")
            ep = self.node.start()
            self.url, self.login, self.password = f"http://{ep.host}:{ep.port}", ep.login, ep.password
            notes.append(f"swift: private node up in {time.perf_counter() - started:.1f} s")
            client = self.client()
            client.create_bucket(Bucket=self.bucket)
            seconds = put_all(client, self.bucket, keys)
            notes.append(f"swift: seeded {len(keys):,} objects in {seconds:.0f} s ({len(keys) / seconds:.0f} PUT/s, "
                         "12 threads)")
            return
        port = spare_port()
        self.url, self.login, self.password = f"http://127.0.0.1:{port}", "bench", "bench"
        keys_file = ROOT / ".run" / f"bench-cos-keys-{secrets.token_hex(3)}.json"
        keys_file.parent.mkdir(parents=True, exist_ok=True)
        keys_file.write_text(json.dumps(keys))
        mode = "--serve-moto" if kind == "moto" else "--serve-synthetic-keys"
        try:
            self.proc = subprocess.Popen([sys.executable, __file__, mode, "--port", str(port), "--bucket", self.bucket,
                                          "--keys-file", str(keys_file)], stdout=subprocess.PIPE, text=True,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
            assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"
        finally:
            keys_file.unlink(missing_ok=True)
        notes.append(f"{kind}: {len(keys):,} objects loaded in {time.perf_counter() - started:.1f} s")

    def client(self) -> Any:
        from devservers import swift
        from devservers.procs import Endpoint
        from include.retention.stores.cos_client import install_content_md5

        port = int(self.url.rsplit(":", 1)[1])
        ep = Endpoint("s3", "127.0.0.1", port, owned=True, login=self.login, password=self.password)
        return install_content_md5(swift.s3_client(ep, max_pool_connections=16, read_timeout=600))

    def cpu_seconds(self) -> float:
        """CPU the server's processes have used so far (user + system, from /proc)."""
        if self.node is not None:
            pids = [p for p in self.node.pids().values() if p]
        else:
            pids = [self.proc.pid] if self.proc else []
        total = 0.0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def keys(self, prefix: str = "") -> set[str]:
        return {o["Key"] for p in self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                                           Prefix=prefix)
                for o in p.get("Contents", ())}

    def close(self) -> None:
        if self.node is not None:
            client = self.client()
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                batch = [{"Key": o["Key"]} for o in page.get("Contents", ())]
                if batch:
                    client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            client.delete_bucket(Bucket=self.bucket)
            self.node.stop()
            shutil.rmtree(self.node.devices, ignore_errors=True)
            shutil.rmtree(self.node.home, ignore_errors=True)
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=15)


# --------------------------------------------------------------------------- main


def put_all(client: Any, bucket: str, keys: list[str]) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=b"x"), keys))
    return time.perf_counter() - started


def speed(kind: str, args: argparse.Namespace, rows: list[str], notes: list[str]) -> None:
    month = day_keys("12", args.days, args.per_day)
    sample_per_object = day_keys("13", args.sample_days, args.per_day)
    sample_awscli = day_keys("14", args.sample_days, args.per_day)
    neighbours = day_keys("123", 1, 50)
    server = Server(kind, month + sample_per_object + sample_awscli + neighbours, notes)
    label = {"swift": "Swift s3api", "moto": "moto", "synthetic": "SyntheticS3"}[kind]
    try:
        cpu = server.cpu_seconds()
        ours = run_store_child(server.url, server.login, server.password, server.bucket, "12", units("12", args.days))
        ours_cpu = (server.cpu_seconds() - cpu) / max(1, ours["deleted"]) * 1000  # verify's listing included
        assert ours["remaining"] == 0 and ours["deleted"] == len(month), ours
        ours_rate = ours["deleted"] / ours["seconds"]
        rows.append(f"| CosStore.purge (ExpiredSelection, {args.days} day prefixes) | {label} | "
                    f"{ours['deleted']:,} | {ours['seconds']:.1f} | {ours_rate:,.0f} | 1.0x | "
                    f"{ours['batches']} DeleteObjects, {ours['listing_requests']} listings; "
                    f"peak RSS {ours['rss_peak_mb']:.0f} MB; server CPU {ours_cpu:.1f} ms/object |")

        cpu = server.cpu_seconds()
        n, secs = per_object(server.client(), server.bucket, "recordings/13/")
        per_cpu = (server.cpu_seconds() - cpu) / max(1, n) * 1000
        assert n == len(sample_per_object), n
        rate = n / secs
        rows.append(f"| list + one DeleteObject per key | {label} | {n:,} | {secs:.1f} | {rate:,.0f} | "
                    f"{ours_rate / rate:.1f}x | sequential; server CPU {per_cpu:.1f} ms/object |")

        aws, version = awscli()
        if aws is None:
            notes.append(version)
        else:
            cpu = server.cpu_seconds()
            secs, err = aws_rm(aws, server.url, server.login, server.password, server.bucket, "recordings/14/")
            aws_cpu = server.cpu_seconds() - cpu
            n = len(sample_awscli) - len(server.keys("recordings/14/"))
            rate = n / secs if n else 0.0
            ratio = f"{ours_rate / rate:.1f}x" if rate else "-"
            rows.append(f"| `aws s3 rm --recursive` | {label} | {n:,} | {secs:.1f} | {rate:,.0f} | {ratio} | "
                        f"{version.split()[0]}, 10 threads; server CPU {aws_cpu / max(1, n) * 1000:.1f} ms/object"
                        f"{'; ' + err.splitlines()[-1] if err else ''} |")
        left = server.keys()
        assert left == set(neighbours), f"neighbours changed: {len(left)} left, expected {len(neighbours)}"
        notes.append(f"{kind}: neighbour tenant 123 kept all {len(neighbours)} objects")
    finally:
        server.close()


def memory(args: argparse.Namespace, rows: list[str], notes: list[str]) -> None:
    from devservers.procs import spare_port

    port = spare_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve-synthetic", "--port", str(port),
                               "--objects", str(args.rss_objects)], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        url = f"http://127.0.0.1:{port}"
        result = run_store_child(url, "bench", "bench", "bench", "12", None)
        assert result["remaining"] == 0 and result["deleted"] == args.rss_objects, result
        rows.append(f"| CosStore.purge (TenantSelection) | SyntheticS3 (memory run) | {result['deleted']:,} | "
                    f"{result['seconds']:.1f} | {result['deleted'] / result['seconds']:,.0f} | - | "
                    f"RSS {result['rss_before_mb']:.0f} MB before, {result['rss_peak_mb']:.0f} MB peak; "
                    f"{result['batches']} DeleteObjects |")
        notes.append(f"memory: peak RSS {result['rss_peak_mb']:.0f} MB for {result['deleted']:,} objects "
                     f"({result['rss_peak_mb'] - result['rss_before_mb']:+.0f} MB over the process after imports)")
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=200)
    parser.add_argument("--sample-days", type=int, default=3)
    parser.add_argument("--rss-objects", type=int, default=120_000)
    parser.add_argument("--servers", default="swift,moto,synthetic",
                        help="speed runs on these, in order (swift, moto, synthetic)")
    parser.add_argument("--skip-memory", action="store_true")
    # internal modes
    parser.add_argument("--purge-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-synthetic", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-synthetic-keys", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-moto", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keys-file", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    parser.add_argument("--tenant", help=argparse.SUPPRESS)
    parser.add_argument("--units-file", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--objects", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.purge_child:
        purge_child(args)
        return 0
    if args.serve_synthetic:
        serve_synthetic(args)
        return 0
    if args.serve_synthetic_keys:
        serve_synthetic_keys(args)
        return 0
    if args.serve_moto:
        serve_moto(args)
        return 0

    import boto3
    import botocore

    rows = ["| method | server | objects | seconds | objects/s | ours vs it | notes |",
            "|---|---|---:|---:|---:|---:|---|"]
    notes: list[str] = []
    for kind in [k for k in args.servers.split(",") if k]:
        speed(kind, args, rows, notes)
    if not args.skip_memory:
        memory(args, rows, notes)
    load = os.getloadavg()
    print(f"bench_cos: {os.cpu_count()} cores, load {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}, "
          f"Python {sys.version.split()[0]}, boto3 {boto3.__version__}, botocore {botocore.__version__}\n")
    print("\n".join(rows))
    print()
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
