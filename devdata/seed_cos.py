"""COS: call recordings and daily backup manifests, named by the policy's prefixes.

``recordings/{tenant}/{yyyy}/{mm}/{dd}/{call_id}.wav`` for a share of answered calls, and
``backups/{tenant}/{yyyy-mm-dd}/{category}/{table}.json.gz`` for the last ``backup_days``.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import struct
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any, Iterator

from devdata.report import SeedReport, store_report
from devdata.world import SeedConfig, build_world, calls_on, days, named_rng, recordings_target, span, tenant_ids
from include.retention.policy import CosTarget, MySqlTarget, Policy, load_policy

log = logging.getLogger(__name__)


def backup_targets(policy: Policy) -> list[tuple[CosTarget, list[str]]]:
    """Dated COS targets that back up their category's MySQL tables, with those tables."""
    out = []
    for category in policy.categories.values():
        tables = [t.table for t in category.targets if isinstance(t, MySqlTarget)]
        for target in category.targets:
            if isinstance(target, CosTarget) and target.subject_keys_from is None and target.is_dated and tables:
                out.append((target, tables))
    return out


def _wav(call_id: str, seconds: float = 0.05, rate: int = 8_000) -> bytes:
    """A tiny valid 8 kHz mono PCM WAV (silence with a faint deterministic tone)."""
    frames = int(seconds * rate)
    seed = int(call_id[:8], 16)
    data = bytes((128 + ((seed >> (i % 24)) & 7)) & 0xFF for i in range(frames))
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, rate, 1, 8) + b"data" + struct.pack("<I", len(data))
    return header + data


def _backup_body(tenant: str, day: date, category: str, table: str, rows: int) -> bytes:
    doc = {"tenant_id": tenant, "date": day.isoformat(), "category": category, "table": table, "rows": rows,
           "format": "synthetic backup manifest"}
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
        gz.write(json.dumps(doc, sort_keys=True).encode())
    return buffer.getvalue()


def cos_objects(config: SeedConfig, policy: Policy | None = None) -> Iterator[tuple[str, str, str, bytes]]:
    """(tenant, target, key, body) of every object the seeder writes, generated lazily."""
    policy = policy or load_policy()
    recordings = recordings_target(policy)
    backups = backup_targets(policy)
    _, end_day = span(config)
    for tenant in build_world(config, policy):
        for day in days(config, tenant):
            for call in calls_on(config, tenant, day, policy):
                if call.recording_key:
                    yield tenant.tenant_id, recordings.qualified_name, call.recording_key, _wav(call.call_id)
        rng = named_rng(config, "backups", tenant.tenant_id)
        for offset in range(config.backup_days, 0, -1):
            day = end_day - timedelta(days=offset)
            if day >= tenant.last_day:
                continue
            for target, tables in backups:
                prefix = target.prefix.render(tenant=tenant.tenant_id, date=day)  # type: ignore[union-attr]
                for table in tables:
                    body = _backup_body(tenant.tenant_id, day, target.category, table, rng.randint(10, 50_000))
                    yield tenant.tenant_id, target.qualified_name, f"{prefix}{table}.json.gz", body


def seed_cos(
    config: SeedConfig,
    *,
    aws_conn_id: str = "retention_cos",
    bucket: str | None = None,
    policy: Policy | None = None,
) -> SeedReport:
    """Recordings and daily backups, uploaded by a small thread pool (bucket created if missing)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    policy = policy or load_policy()
    started = time.monotonic()
    hook = S3Hook(aws_conn_id=aws_conn_id)
    bucket = bucket or hook.service_config.get("bucket_name")
    if not bucket:
        raise ValueError(f"no bucket: pass bucket= or set service_config.s3.bucket_name in {aws_conn_id!r}")
    client = hook.get_conn()
    _ensure_bucket(client, bucket)
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    in_flight = max(config.cos_workers * 4, 8)

    def put(key: str, body: bytes) -> None:
        content_type = "audio/wav" if key.endswith(".wav") else "application/gzip"
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    with ThreadPoolExecutor(max_workers=config.cos_workers, thread_name_prefix="seed-cos") as pool:
        pending = []
        for tenant, target, key, body in cos_objects(config, policy):
            pending.append(pool.submit(put, key, body))
            tally[tenant][target] += 1
            if len(pending) >= in_flight:  # bounded: never queue the whole span in memory
                for future in pending:
                    future.result()
                pending = []
        for future in pending:
            future.result()
    seconds = time.monotonic() - started
    report = store_report(tally, tenant_ids(config), "cos", seconds, {"bucket": bucket})
    log.info("Seeded COS bucket %s: %d objects in %.1fs", bucket, sum(report.counts.values()), seconds)
    return report


def _ensure_bucket(client: Any, bucket: str) -> None:
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) not in ("404", "NoSuchBucket", "NotFound"):
            raise
        client.create_bucket(Bucket=bucket)
