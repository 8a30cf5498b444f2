"""An in-memory S3 bucket behind the client calls a CosStore makes, for fast unit tests.

It answers ``ListObjectsV2`` as S3 does (``Prefix``, ``StartAfter``, ``ContinuationToken``,
``MaxKeys``, ``Delimiter`` with ``CommonPrefixes``, keys and prefixes counted together against
``MaxKeys``), ``GetBucketVersioning`` (not versioned) and ``DeleteObjects`` (with an optional
hook that may refuse keys or wait), and counts every request by operation.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from typing import Any, Callable, Iterator

BUCKET = "fake"


class FakeS3:
    """One bucket of keys; ``calls`` counts requests by operation name."""

    def __init__(self, keys: set[str] | list[str] = ()) -> None:
        self.keys: list[str] = sorted(set(keys))
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        #: called with the keys of each DeleteObjects before it applies; returns the keys to refuse
        self.on_delete: Callable[[list[str]], set[str]] | None = None

    # ------------------------------------------------------------------ listing

    def list_objects_v2(self, *, Bucket: str, Prefix: str = "", MaxKeys: int = 1000, StartAfter: str = "",
                        ContinuationToken: str | None = None, Delimiter: str | None = None) -> dict[str, Any]:
        assert Bucket == BUCKET
        with self.lock:
            self.calls["ListObjectsV2"] += 1
            keys = list(self.keys)
        after = ContinuationToken if ContinuationToken is not None else StartAfter
        index = bisect.bisect_right(keys, after) if after else bisect.bisect_left(keys, Prefix)
        contents: list[str] = []
        prefixes: list[str] = []
        truncated = False
        last = ""
        while index < len(keys):
            key = keys[index]
            index += 1
            if not key.startswith(Prefix):
                if key > Prefix:
                    break
                continue
            if ContinuationToken and Delimiter and ContinuationToken.endswith(Delimiter) and key.startswith(after):
                continue  # resuming after a common prefix: its keys were rolled up already
            rest = key[len(Prefix):]
            cut = rest.find(Delimiter) if Delimiter else -1
            item = Prefix + rest[: cut + len(Delimiter)] if Delimiter and cut >= 0 else None
            if item is not None and prefixes and prefixes[-1] == item:
                continue
            if len(contents) + len(prefixes) == MaxKeys:
                truncated = True
                break
            if item is None:
                contents.append(key)
                last = key
            else:
                prefixes.append(item)
                last = item
        page: dict[str, Any] = {"IsTruncated": truncated, "KeyCount": len(contents) + len(prefixes),
                                "Contents": [{"Key": k} for k in contents]}
        if prefixes:
            page["CommonPrefixes"] = [{"Prefix": p} for p in prefixes]
        if truncated:
            page["NextContinuationToken"] = last
        return page

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        fake = self

        class Paginator:
            def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
                while True:
                    page = fake.list_objects_v2(**kwargs)
                    yield page
                    if not page["IsTruncated"]:
                        return
                    kwargs["ContinuationToken"] = page["NextContinuationToken"]

        return Paginator()

    def get_bucket_versioning(self, *, Bucket: str) -> dict[str, Any]:
        self.calls["GetBucketVersioning"] += 1
        return {}

    # ------------------------------------------------------------------ deletes

    def delete_objects(self, *, Bucket: str, Delete: dict[str, Any]) -> dict[str, Any]:
        asked = [o["Key"] for o in Delete["Objects"]]
        refused = self.on_delete(asked) if self.on_delete is not None else set()
        with self.lock:
            self.calls["DeleteObjects"] += 1
            gone = set(asked) - refused
            self.keys = [k for k in self.keys if k not in gone]
        return {"Errors": [{"Key": k, "Code": "AccessDenied", "Message": "refused"} for k in sorted(refused)]}

    def take(self) -> Counter[str]:
        with self.lock:
            taken, self.calls = self.calls, Counter()
        return taken


def fake_store(fake: FakeS3, **kwargs: Any) -> Any:
    """A CosStore whose client is ``fake`` (no connection, no I/O)."""
    from zoneinfo import ZoneInfo

    from include.retention.stores.cos import CosStore

    store = CosStore(timezone=ZoneInfo("Asia/Singapore"), bucket=BUCKET, **{"deletes_in_flight": 1, **kwargs})
    store._client = fake
    store._versioned[BUCKET] = False
    return store
