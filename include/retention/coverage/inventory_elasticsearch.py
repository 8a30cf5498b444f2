"""Elasticsearch: indices, aliases and data streams.

Indices come from ``_cat/indices`` (hidden and system indices, whose names start with '.',
are left out: a data stream's backing indices are reported as their stream), aliases from
``GET /_alias``, data streams from ``GET /_data_stream``. An index or stream whose whole name
is a target's index template is covered (grouped under the template); any other is grouped
by its name's shape (``items.index_shape``). An alias is covered when every index it points
at is. Of an unknown family or stream, ``documents`` documents of its first index are
sampled (``_search``): every leaf value is counted for phone and e-mail shapes and every
field name checked for personal words.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Callable

from include.retention.coverage.classify import es_group, es_target
from include.retention.coverage.items import Item, ValueCounts, index_shape, scrub_name
from include.retention.policy import Policy

log = logging.getLogger(__name__)

DEFAULT_DOCUMENTS = 20


def _body(response: Any) -> Any:
    return response.body if hasattr(response, "body") else response


def list_names(client: Any) -> tuple[list[str], dict[str, list[str]], dict[str, list[str]]]:
    """(indices, alias -> indices, data stream -> backing indices), without hidden names."""
    indices = [str(row["index"]) for row in _body(client.cat.indices(format="json"))
               if not str(row["index"]).startswith(".")]
    aliases: dict[str, list[str]] = defaultdict(list)
    for index, info in (_body(client.indices.get_alias()) or {}).items():
        for alias in (info or {}).get("aliases", {}) or {}:
            if not str(alias).startswith("."):
                aliases[str(alias)].append(str(index))
    streams = {str(s["name"]): [str(i["index_name"]) for i in s.get("indices", ())]
               for s in (_body(client.indices.get_data_stream()) or {}).get("data_streams", ())
               if not str(s["name"]).startswith(".")}
    return indices, dict(aliases), streams


def sample_documents(client: Any, names: list[str], size: int, counts: ValueCounts, fields: set[str]) -> None:
    """Leaf values of the first ``size`` documents of the first of ``names`` that answers."""
    from elasticsearch import ApiError

    for name in names[:3]:
        try:
            hits = _body(client.search(index=name, size=size, query={"match_all": {}}))["hits"]["hits"]
        except ApiError as exc:
            log.warning("Coverage: could not sample an index (%s)", type(exc).__name__)
            continue
        for hit in hits:
            counts.add_leaves(hit.get("_source") or {}, fields)
        return


def _group(policy: Policy, names: list[str]) -> dict[str, tuple[str | None, list[str]]]:
    grouped: dict[str, tuple[str | None, list[str]]] = {}
    for name in names:
        target = es_target(policy, name)
        key = es_group(target) if target is not None else index_shape(scrub_name(name))
        covered_by = target.qualified_name if target is not None else None
        grouped.setdefault(key, (covered_by, []))[1].append(name)
    return grouped


def inventory(
    client: Any,
    policy: Policy,
    *,
    should_sample: Callable[[Item], bool],
    documents: int = DEFAULT_DOCUMENTS,
) -> list[Item]:
    """Index families, aliases and data streams as items; unknown ones carry their sample's counts."""
    indices, aliases, streams = list_names(client)
    items: list[Item] = []
    for kind, names in (("index", indices), ("data_stream", list(streams))):
        for name, (covered_by, members) in _group(policy, names).items():
            item = Item("elasticsearch", kind, name, len(members), covered_by=covered_by)
            if not covered_by and should_sample(item):
                counts, fields = ValueCounts(), set()
                sample_documents(client, members, documents, counts, fields)
                item = Item("elasticsearch", kind, name, len(members), counts=counts,
                            flag_names=tuple(sorted(fields)))
            items.append(item)
    by_shape: dict[str, tuple[set[str], int]] = {}
    for alias, targets in aliases.items():
        shape = index_shape(scrub_name(alias))
        covering = {es_target(policy, i) for i in targets}
        names = {t.qualified_name if t is not None else "" for t in covering}
        seen, count = by_shape.get(shape, (set(), 0))
        by_shape[shape] = (seen | names, count + 1)
    for shape, (names, count) in by_shape.items():
        covered_by = ",".join(sorted(names)) if names and "" not in names else None
        items.append(Item("elasticsearch", "alias", shape, count, covered_by=covered_by))
    log.info("Elasticsearch coverage: %d indices, %d aliases, %d data streams", len(indices), len(aliases),
             len(streams))
    return items
