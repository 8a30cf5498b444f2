"""Signed daily checkpoints of the ledger's chains in COS, under ``ledger-checkpoints/``.

A checkpoint holds each chain's length and head hash and when it was taken, signed with the
certificate key (HMAC-SHA256 of the canonical JSON, as certificates are). Put with COS Object
Lock retention where the bucket has Object Lock enabled; where it has not (or the server does
not implement it: OpenStack Swift's s3api), the checkpoint says so in its signed body.

A chain alone cannot show rows cut off at its end together with their entries: the last
checkpoint can (``ledger/verify.py``). Before signing, the checkpoint checks that the
previous one's heads are still where it saw them, so it never signs over a truncated chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Mapping

from include.retention.ledger.chain import CHAINS
from include.retention.ledger.db import LEDGER_CONN_ID, connect, ledger_database, plain_cursor
from include.retention.ledger.verify import ChainState, Finding, check_checkpoint
from include.retention.timeutil import UTC

if TYPE_CHECKING:
    from include.retention.crypto import RetentionCrypto

log = logging.getLogger(__name__)

PREFIX = "ledger-checkpoints/"
COS_CONN_ID = "retention_cos"
ALGORITHM = "HMAC-SHA256"
VERSION = 1
#: How long Object Lock keeps a checkpoint (COMPLIANCE mode: nobody can shorten it).
RETAIN_DAYS = 400


@dataclass(frozen=True)
class Stored:
    key: str
    checkpoint: dict[str, Any]
    object_lock: dict[str, Any]


def canonical(body: Mapping[str, Any]) -> bytes:
    """Sorted keys, no white space, ASCII escapes, UTF-8: as a certificate's."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("utf-8")


def key_id(crypto: RetentionCrypto) -> str:
    """The certificate key's public fingerprint (the same as ``certificates.document.key_id``)."""
    return hmac.new(crypto.certificate_key, b"cc-retention certificate key id", hashlib.sha256).hexdigest()[:16]


def cos(conn_id: str = COS_CONN_ID) -> tuple[Any, str]:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=conn_id)
    bucket = hook.service_config.get("bucket_name")
    if not bucket:
        raise ValueError(f"connection {conn_id!r} names no bucket (service_config.s3.bucket_name)")
    return hook.get_conn(), str(bucket)


def heads(conn_id: str = LEDGER_CONN_ID) -> dict[str, dict[str, Any]]:
    """Each chain's length and head hash, from its last entry (not from the head row)."""
    out: dict[str, dict[str, Any]] = {}
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        for chain in CHAINS:
            cur.execute("SELECT seq, hash FROM ledger_chain WHERE chain = %s ORDER BY seq DESC LIMIT 1", (chain,))
            row = cur.fetchone()
            out[chain] = {"length": int(row[0]), "head": str(row[1])} if row else {"length": 0, "head": None}
    return out


def object_lock_of(client: Any, bucket: str) -> dict[str, Any]:
    """Whether the bucket has Object Lock enabled, as the server answers (never assumed)."""
    from botocore.exceptions import ClientError

    try:
        config = client.get_object_lock_configuration(Bucket=bucket).get("ObjectLockConfiguration") or {}
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return {"enabled": False, "reason": f"{error.get('Code') or 'error'}: the bucket has no Object Lock "
                                            f"configuration, or the server does not implement it"}
    if config.get("ObjectLockEnabled") != "Enabled":
        return {"enabled": False, "reason": "Object Lock is not enabled on the bucket"}
    return {"enabled": True}


def build(*, day: date, taken_at: datetime, database: str, chain_heads: Mapping[str, Any],
          object_lock: Mapping[str, Any], crypto: RetentionCrypto) -> dict[str, Any]:
    """The signed checkpoint (pure)."""
    body = {
        "checkpoint_version": VERSION,
        "checkpoint_id": f"LCP-{database}-{day.isoformat()}-{taken_at.astimezone(UTC):%H%M%S%f}",
        "day": day.isoformat(),
        "taken_at": taken_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "database": database,
        "chains": {c: dict(h) for c, h in chain_heads.items()},
        "object_lock": dict(object_lock),
    }
    return {"checkpoint": body,
            "signature": {"algorithm": ALGORITHM, "key_id": key_id(crypto), "value": crypto.sign(canonical(body))}}


def signature_ok(document: Mapping[str, Any], crypto: RetentionCrypto) -> bool:
    body, signature = document.get("checkpoint"), document.get("signature") or {}
    return (isinstance(body, dict) and signature.get("algorithm") == ALGORITHM
            and isinstance(signature.get("value"), str)
            and crypto.verify_signature(canonical(body), signature["value"]))


def load_all(client: Any, bucket: str, database: str, crypto: RetentionCrypto) -> tuple[list[dict[str, Any]], list[Finding]]:
    """Every checkpoint of ``database`` in the bucket, oldest first: (signed bodies, findings
    about objects whose signature does not hold)."""
    good: list[dict[str, Any]] = []
    bad: list[Finding] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{PREFIX}{database}/"):
        for obj in page.get("Contents", ()):
            raw = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            try:
                document = json.loads(raw)
            except ValueError:
                document = {}
            if signature_ok(document, crypto) and document["checkpoint"].get("database") == database:
                good.append(document["checkpoint"])
            else:
                bad.append(Finding("checkpoints", "unsigned", f"{obj['Key']}: the signature does not hold"))
    return sorted(good, key=lambda c: (c["taken_at"], c["checkpoint_id"])), bad


def take(
    *, day: date, taken_at: datetime, crypto: RetentionCrypto, conn_id: str = LEDGER_CONN_ID,
    cos_conn_id: str = COS_CONN_ID, retain_days: int = RETAIN_DAYS,
) -> Stored:
    """Sign the chains' heads and put them in COS; refuses when an earlier checkpoint's head
    is no longer in its chain (the verifier says where).

    :param day: the run's day (its key); ``taken_at``: when, for the record only.
    """
    database = ledger_database(conn_id)
    client, bucket = cos(cos_conn_id)
    earlier, bad = load_all(client, bucket, database, crypto)
    now_heads = heads(conn_id)
    if earlier:
        with connect(conn_id) as conn:
            states = {c: ChainState(c, int(h["length"]), str(h["head"])) for c, h in now_heads.items()}
            broken = check_checkpoint(conn, earlier[-1], states)
        if broken or bad:
            raise RuntimeError("refusing to sign a checkpoint over a tampered ledger: "
                               + "; ".join(str(f) for f in [*bad, *broken]))
    lock = object_lock_of(client, bucket)
    document = build(day=day, taken_at=taken_at, database=database, chain_heads=now_heads, object_lock=lock,
                     crypto=crypto)
    key = f"{PREFIX}{database}/{day.isoformat()}/{document['checkpoint']['checkpoint_id']}.json"
    extra: dict[str, Any] = {}
    if lock["enabled"]:
        extra = {"ObjectLockMode": "COMPLIANCE",
                 "ObjectLockRetainUntilDate": taken_at.astimezone(UTC) + timedelta(days=retain_days)}
    client.put_object(Bucket=bucket, Key=key, Body=json.dumps(document, indent=2, sort_keys=True).encode(),
                      ContentType="application/json", **extra)
    log.info("Ledger checkpoint %s at s3://%s/%s (object lock: %s)", document["checkpoint"]["checkpoint_id"],
             bucket, key, "COMPLIANCE" if lock["enabled"] else "not available")
    return Stored(key, document["checkpoint"], lock)


def checkpoint_task(context: Mapping[str, Any], tz: Any) -> dict[str, Any]:
    """The ``retention_ledger_checkpoint`` DAG's task: today's checkpoint, for the run's day.

    :param tz: the policy's time zone; the day is the run's, in that zone.
    """
    from include.retention.airflow_context import as_of_from_context
    from include.retention.crypto import RetentionCrypto
    from include.retention.timeutil import wall_clock

    day = as_of_from_context(context).astimezone(tz).date()
    stored = take(day=day, taken_at=wall_clock(), crypto=RetentionCrypto.from_connection())
    return {"key": stored.key, "checkpoint_id": stored.checkpoint["checkpoint_id"],
            "chains": stored.checkpoint["chains"], "object_lock": stored.object_lock}
