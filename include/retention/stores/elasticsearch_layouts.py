"""Elasticsearch layouts where tenants share indices: shared dated indices and a data stream.

- **Listing.** Shared dated indices are listed with ``_cat/indices`` on the template's literal
  prefix plus ``*`` (open and closed, never hidden) and re-checked against the template; a
  data stream's backing indices come from ``GET _data_stream/{name}`` (the last one is the
  write index), each dated by its oldest and newest document.
- **Expiry.** An index lying wholly before the cut-off whose every document matches the
  expiry query is dropped by its explicit name; a data stream's write index is rolled over
  first. Every other index in scope is thinned by ``_delete_by_query``: a range below the
  cut-off, the tenant's term (or ``must_not`` the kept tenants) and ``must_not`` the held
  subjects.
- **Terminations and deletions** run ``_delete_by_query`` with term filters on the tenant
  (and subject) field, throttled and sliced, as tasks, polled.

Counts are exact: each index is refreshed and counted with the selection's own query
before anything goes, and verify counts again with the same query.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from include.retention.policy import ElasticsearchTarget
from include.retention.results import PartialPurgeError, PurgeResult, UnsupportedSelection
from include.retention.selections import DatedUnit, ExpiredSelection, Selection
from include.retention.stores.elasticsearch_client import chunk_names
from include.retention.stores.elasticsearch_indices import check_exact_fields
from include.retention.stores.elasticsearch_shared import (
    SharedIndex,
    SharedPlan,
    document_time,
    droppable,
    in_scope,
    just_after,
    query_fields,
    selection_query,
)
from include.retention.stores.elasticsearch_tasks import ElasticsearchTasks

log = logging.getLogger(__name__)


class SharedLayouts(ElasticsearchTasks):
    """The verbs for targets whose tenants share indices (``target.layout.shared``)."""

    timezone: Any

    # ------------------------------------------------------------------ listing

    def _shared_list(self, target: ElasticsearchTarget, *, dated: bool = True) -> list[SharedIndex]:
        """The target's concrete indices; ``dated``: with each backing index's oldest and newest document."""
        layout = target.layout
        if layout.data_stream is not None:
            return self._backing_indices(target, layout.data_stream, dated=dated)
        shared = layout.shared_index
        assert shared is not None
        rows = self._call(
            "list indices", self.client.cat.indices, index=shared.prefix + "*", format="json",
            h="index,docs.count,status", expand_wildcards="open,closed",  # reading only; deletes name each index
        )
        found: list[SharedIndex] = []
        for row in getattr(rows, "body", rows):
            day = shared.parse(str(row["index"]))
            if day is None:
                continue  # another layout's or a hidden index: never ours to touch
            start, end = shared.bounds(day, self.timezone)
            found.append(SharedIndex(str(row["index"]), int(row.get("docs.count") or 0), start, end, str(row.get("status") or "open")))
        return sorted(found, key=lambda i: i.name)

    def _backing_indices(self, target: ElasticsearchTarget, stream: str, *, dated: bool) -> list[SharedIndex]:
        from elasticsearch import NotFoundError

        try:
            resp = self._call("read data stream", self.client.indices.get_data_stream, name=stream)
        except NotFoundError:
            return []
        streams = [s for s in resp["data_streams"] if s["name"] == stream]
        if not streams:
            return []
        names = [str(i["index_name"]) for i in streams[0]["indices"]]
        rows = self._call("list indices", self.client.cat.indices, index=stream, format="json",
                          h="index,docs.count,status", expand_wildcards="all")
        by_name = {str(r["index"]): r for r in getattr(rows, "body", rows)}
        self._refresh_stream(stream)
        found = []
        for name in names:
            row = by_name.get(name, {})
            status = str(row.get("status") or "open")
            docs = int(row.get("docs.count") or 0)
            oldest = newest = None
            if dated and docs and status != "close":
                oldest, newest = self._edge(name, target.time_field, "asc"), self._edge(name, target.time_field, "desc")
            found.append(SharedIndex(name, docs, oldest, just_after(newest) if newest else None, status,
                                     write_index=name == names[-1]))
        return found

    def _edge(self, index: str, field: str, order: str) -> Any:
        """The oldest (asc) or newest (desc) document time in one backing index."""
        resp = self._call("read document times", self.client.search, index=index, size=1, source=[field],
                          sort=[{field: {"order": order}}], track_total_hits=False)
        hits = resp["hits"]["hits"]
        return document_time(hits[0]["_source"].get(field)) if hits else None

    def _refresh_stream(self, stream: str) -> None:
        self._call("refresh", self.client.indices.refresh, index=stream)

    def _shared_units(self, target: ElasticsearchTarget) -> list[DatedUnit]:
        return [DatedUnit(i.name, i.start, i.end, None) for i in self._shared_list(target)
                if i.start is not None and i.end is not None]

    # ------------------------------------------------------------------ plans and counts

    def _shared_plan(self, target: ElasticsearchTarget, selection: Selection) -> SharedPlan:
        """Refresh, then count the selection's documents index by index, and decide what goes whole."""
        query = selection_query(target, selection)
        expiry = isinstance(selection, ExpiredSelection)
        indices = [i for i in self._shared_list(target, dated=expiry) if in_scope(i, selection)]
        closed = [i.name for i in indices if i.closed]
        if closed:
            raise UnsupportedSelection(
                f"{len(closed)} index(es) of {target.qualified_name} are closed ({', '.join(closed[:5])}); open them "
                "so the selection's documents can be counted and deleted"
            )
        names = [i.name for i in indices]
        if not names:
            return SharedPlan(query)
        self._check_shared_mapping(target, names, query_fields(target, selection))
        if target.layout.data_stream is None:
            self._refresh(names)
        if not expiry:  # nothing goes whole: one count over every index
            total = sum(int(self._call("count", self.client.count, index=chunk, query=query)["count"])
                        for chunk in self._address_chunks(target, names))
            return SharedPlan(query, thin=tuple(indices), total=total)
        matched: dict[str, int] = {}
        for info in indices:
            resp = self._call("count", self.client.count, index=self._address(target, info.name), query=query)
            matched[info.name] = int(resp["count"])
        drop = tuple(i for i in indices if droppable(i, selection, matched[i.name]) and i.docs > 0)
        thin = tuple(i for i in indices if i not in drop and matched[i.name] > 0)
        return SharedPlan(query, drop, thin, matched)

    def _address(self, target: ElasticsearchTarget, name: str) -> str:
        """An exact index name for a request path: a backing index of the target's stream or a
        shared index that parsed."""
        stream = target.layout.data_stream
        ok = name.startswith(f".ds-{stream}-") if stream else target.layout.shared_index.parse(name) is not None  # type: ignore[union-attr]
        if not ok or any(c in name for c in "*?,"):
            raise RuntimeError(f"refusing to address index {name!r}: not an index of {target.qualified_name}")
        return name

    def _address_chunks(self, target: ElasticsearchTarget, names: list[str]) -> list[list[str]]:
        """Exact index names in comma-joined chunks that keep each URL short."""
        return list(chunk_names([self._address(target, n) for n in sorted(names)], self.max_url_chars, 1_000))

    def _check_shared_mapping(self, target: ElasticsearchTarget, names: list[str], fields: tuple[str, ...]) -> None:
        for chunk in self._address_chunks(target, names):
            resp = self._call("read mappings", self.client.indices.get_mapping, index=chunk)
            for index, body in getattr(resp, "body", resp).items():
                check_exact_fields(index, body.get("mappings", {}), fields)

    def _shared_count(self, target: ElasticsearchTarget, selection: Selection) -> int:
        return self._shared_plan(target, selection).planned

    # ------------------------------------------------------------------ purge

    def _shared_purge(self, target: ElasticsearchTarget, selection: Selection, *, dry_run: bool) -> PurgeResult:
        started = time.monotonic()
        plan = self._shared_plan(target, selection)
        method = ("delete_index+" if plan.drop else "") + "delete_by_query"
        details: dict[str, object] = {
            "layout": target.layout.kind,
            "indices": len(plan.drop),
            "index_names": [i.name for i in plan.drop][:50],
            "thinned": [i.name for i in plan.thin][:50],
        }
        if dry_run or plan.planned == 0:
            return PurgeResult(target.qualified_name, self.store, method, plan.planned, 0, dry_run=dry_run,
                               seconds=time.monotonic() - started, details=details)
        deleted = batches = 0
        for info in plan.drop:
            try:
                deleted += self._drop_whole(target, info, plan)
            except PartialPurgeError:
                raise
            except Exception as exc:
                raise PartialPurgeError(target.qualified_name, deleted, exc) from exc
            batches += 1
        tasks: list[str] = []
        conflicts = 0
        scope = [i for i in plan.thin if plan.total or (plan.matched and plan.matched[i.name])]
        if scope:
            # One task over the stream (or the shared indices), sliced and throttled.
            names = [target.layout.data_stream] if target.layout.data_stream else [i.name for i in scope]
            for _pass in range(3):  # documents changed while the task ran are skipped as conflicts: go again
                outcome = self._delete_by_query(target, names, plan.query, deleted)
                deleted += outcome.deleted
                batches += outcome.batches
                tasks += outcome.tasks
                conflicts = outcome.conflicts
                if not conflicts:
                    break
        details["tasks"] = tasks
        if conflicts:
            details["version_conflicts"] = conflicts
        log.info("Purged %s (%s): %d documents, %d index(es) dropped, %d thinned", target.qualified_name,
                 target.layout.kind, deleted, len(plan.drop), len(plan.thin))
        return PurgeResult(target.qualified_name, self.store, method, plan.planned, deleted, batches=batches,
                           seconds=time.monotonic() - started, details=details)

    def _drop_whole(self, target: ElasticsearchTarget, info: SharedIndex, plan: SharedPlan) -> int:
        """Delete one index by its explicit name (a write index after a rollover), after checking
        once more that every document in it is the selection's; returns the documents it held."""
        name = self._address(target, info.name)
        if info.write_index:
            stream = target.layout.data_stream
            assert stream is not None
            self._call("roll over", self.client.indices.rollover, alias=stream)
            log.info("Rolled %s over: its write index %s has expired", stream, name)
        self._call("refresh", self.client.indices.refresh, index=name)
        docs = int(self._call("count", self.client.count, index=name)["count"])
        still = int(self._call("count", self.client.count, index=name, query=plan.query)["count"])
        if docs != still:
            raise PartialPurgeError(target.qualified_name, 0, f"index {name} gained {docs - still} document(s) "
                                    "the selection keeps since it was counted; rerun the purge")
        self._guard_concrete([name])
        self._call("delete index", self.client.indices.delete, index=name)
        return docs

    def _guard_concrete(self, names: list[str]) -> None:
        """Refuse to send an alias or a data stream to ``DELETE /{index}``."""
        _, others = self._concrete(names)
        if others:
            raise RuntimeError(f"refusing to delete {', '.join(others[:5])}: an alias or a data stream, not an index")
