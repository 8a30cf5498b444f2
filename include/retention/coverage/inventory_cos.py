"""COS: the bucket's top-level prefixes (and top-level objects), from delimiter listings.

``ListObjectsV2`` with ``Delimiter='/'`` lists the top level, page by page. A prefix a COS
target's prefix starts with is covered. Of any other prefix, the first ``keys_per_prefix``
object keys under it are sampled: their '/'-segments are counted for phone and e-mail
shapes. Object bodies are never read (recordings are audio). Top-level objects (no '/')
are grouped by their name's shape.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Callable

from include.retention.coverage.classify import cos_top_levels
from include.retention.coverage.items import Item, ValueCounts, index_shape, scrub_name
from include.retention.policy import Policy

log = logging.getLogger(__name__)

DEFAULT_KEYS_PER_PREFIX = 50


def top_level(client: Any, bucket: str) -> tuple[list[str], list[str]]:
    """(prefixes, object keys) at the top of the bucket."""
    prefixes: list[str] = []
    objects: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Delimiter="/"):
        prefixes.extend(str(p["Prefix"]) for p in page.get("CommonPrefixes", ()) or ())
        objects.extend(str(o["Key"]) for o in page.get("Contents", ()) or ())
    return prefixes, objects


def sample_keys(client: Any, bucket: str, prefix: str, limit: int, counts: ValueCounts) -> None:
    page = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=max(1, limit))
    for entry in page.get("Contents", ()) or ():
        counts.add_all(str(entry["Key"])[len(prefix):].split("/"))


def _shape(prefix: str) -> str:
    return index_shape(scrub_name(prefix.rstrip("/"))) + "/"


def inventory(
    client: Any,
    bucket: str,
    policy: Policy,
    *,
    should_sample: Callable[[Item], bool],
    keys_per_prefix: int = DEFAULT_KEYS_PER_PREFIX,
) -> list[Item]:
    """Top-level prefixes and objects as items; unknown prefixes carry their key sample's counts."""
    covered = cos_top_levels(policy)
    prefixes, objects = top_level(client, bucket)
    grouped: dict[str, list[str]] = defaultdict(list)
    for prefix in prefixes:
        grouped[prefix if prefix in covered else _shape(prefix)].append(prefix)
    items: list[Item] = []
    for name, members in grouped.items():
        item = Item("cos", "prefix", name, len(members), covered_by=covered.get(name))
        if not item.covered_by and should_sample(item):
            counts = ValueCounts()
            for prefix in members[:3]:
                sample_keys(client, bucket, prefix, keys_per_prefix, counts)
            item = Item("cos", "prefix", name, len(members), counts=counts)
        items.append(item)
    shapes: dict[str, int] = defaultdict(int)
    for key in objects:
        shapes[index_shape(scrub_name(key))] += 1
    items += [Item("cos", "object", name, count) for name, count in shapes.items()]
    log.info("COS coverage: %d top-level prefixes, %d top-level objects in %s", len(prefixes), len(objects), bucket)
    return items
