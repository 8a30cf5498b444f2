"""Redis: key families from a bounded SCAN sample.

At most ``sample_keys`` keys are read by ``SCAN`` (``COUNT`` 1,000), on every primary of a
cluster. A key a Redis target's template matches is covered (grouped under that template);
any other key belongs to its family (``items.redis_family``: the first three ':'-segments,
ids as ``*``). Of a family that is neither covered nor exempt, up to ``keys_per_family`` keys
are sampled: each key's segments and a bounded part of its value (a string's first 4 KiB, 20
members of a hash, list, set or sorted set), reduced to counts at once.

A bounded sample can miss a rare family: the result states how many keys were scanned and
whether the scan reached the end of the keyspace.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Callable, Sequence

from include.retention.coverage.classify import redis_target
from include.retention.coverage.items import Item, ValueCounts, redis_family
from include.retention.policy import Policy

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_KEYS = 20_000
DEFAULT_KEYS_PER_FAMILY = 5
MEMBERS_SAMPLED = 20


def scan_nodes(client: Any) -> list[Any]:
    """The server, or every primary of a cluster."""
    from redis.cluster import RedisCluster

    if isinstance(client, RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def scan_sample(nodes: Sequence[Any], limit: int) -> tuple[list[str], bool]:
    """At most ``limit`` keys, and whether every node's scan reached its end."""
    keys: list[str] = []
    complete = True
    per_node = max(1, limit // max(1, len(nodes)))
    for node in nodes:
        cursor, taken = 0, 0
        while True:
            cursor, batch = node.scan(cursor=cursor, count=1000)
            keys.extend(_text(k) for k in batch)
            taken += len(batch)
            if int(cursor) == 0:
                break
            if taken >= per_node:
                complete = False
                break
    return keys, complete


def sample_values(client: Any, keys: Sequence[str], counts: ValueCounts) -> None:
    """Add each key's segments and a bounded part of its value to ``counts``."""
    if not keys:
        return
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
    kinds = [_text(k) for k in pipe.execute()]
    pipe = client.pipeline(transaction=False)
    for key, kind in zip(keys, kinds):
        if kind == "string":
            pipe.getrange(key, 0, 4095)
        elif kind == "hash":
            pipe.hscan(key, 0, count=MEMBERS_SAMPLED)
        elif kind == "list":
            pipe.lrange(key, 0, MEMBERS_SAMPLED - 1)
        elif kind == "set":
            pipe.srandmember(key, MEMBERS_SAMPLED)
        elif kind == "zset":
            pipe.zrange(key, 0, MEMBERS_SAMPLED - 1)
        else:
            pipe.exists(key)
    for key, kind, reply in zip(keys, kinds, pipe.execute()):
        counts.add_all(key.split(":"))
        if kind == "string":
            counts.add(reply)
        elif kind == "hash":
            fields = list(reply[1].items())[:MEMBERS_SAMPLED]
            counts.add_all([f for f, _ in fields] + [v for _, v in fields])  # a hash may be keyed by numbers
        elif kind in ("list", "set", "zset"):
            counts.add_all(list(reply or ())[:MEMBERS_SAMPLED])


def inventory(
    client: Any,
    policy: Policy,
    *,
    should_sample: Callable[[Item], bool],
    sample_keys: int = DEFAULT_SAMPLE_KEYS,
    keys_per_family: int = DEFAULT_KEYS_PER_FAMILY,
) -> tuple[list[Item], dict[str, Any]]:
    """Key families as items, and what the scan saw (``keys_scanned``, ``complete``)."""
    keys, complete = scan_sample(scan_nodes(client), sample_keys)
    covered: dict[str, tuple[str, int]] = {}
    families: dict[str, list[str]] = defaultdict(list)
    members: dict[str, int] = defaultdict(int)
    for key in keys:
        target = redis_target(policy, key)
        if target is not None and target.key is not None:
            name = target.key.text
            covered[name] = (target.qualified_name, covered.get(name, ("", 0))[1] + 1)
            continue
        family = redis_family(key)
        members[family] += 1
        if len(families[family]) < keys_per_family:
            families[family].append(key)
    items = [Item("redis", "keys", name, count, covered_by=target) for name, (target, count) in covered.items()]
    for family, examples in families.items():
        item = Item("redis", "keys", family, members[family])
        if should_sample(item):
            counts = ValueCounts()
            sample_values(client, examples, counts)
            item = Item("redis", "keys", family, members[family], counts=counts)
        items.append(item)
    log.info("Redis coverage: %d keys scanned (%s), %d families", len(keys),
             "whole keyspace" if complete else "a bounded sample", len(items))
    return items, {"keys_scanned": len(keys), "complete": complete}
