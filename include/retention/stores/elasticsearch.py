"""Elasticsearch: per-tenant dated indices (``cc-logs-{tenant}-{month}``) and the documents in them.

- A tenant's termination drops its indices; expiry drops whole indices lying before the
  cut-off. Names are found with ``_cat/indices`` on the tenant's literal prefix plus ``*``
  (reading only), each name is re-checked with ``template.parse(name, whole=True)``, and the
  delete names every index explicitly, in chunks that keep the URL short. A wildcard is never
  sent to a delete (Elasticsearch 8 refuses them anyway: ``action.destructive_requires_name``).
  The list is read again afterwards to confirm.
- A subject's deletion runs ``_delete_by_query`` over the tenant's indices as a task, with a
  bool filter of exact ``term`` queries on the tenant field and the subject field, and polls
  the task to the end.
- Aliases are resolved before any delete (``GET /{names}/_alias``): only concrete indices reach
  ``DELETE /{index}``; the listing reads open and closed indices, never hidden ones.
- 429 and 5xx answers are retried with bounded exponential back-off; then the call fails
  loudly. A purge that fails part-way raises PartialPurgeError; a rerun finishes it.

Counts are of documents (``docs.count`` after a refresh). The subject id goes only into
request bodies, never into a URL, a log line or a result.

This module is the verbs; the client and its retries are in ``elasticsearch_client``, the
index plans and queries in ``elasticsearch_indices`` (pure), the delete-by-query tasks in
``elasticsearch_tasks``.
"""

from __future__ import annotations

import logging
import time
from datetime import tzinfo
from typing import Any, Iterable, Mapping

from include.retention.policy import ElasticsearchTarget
from include.retention.results import PartialPurgeError, PurgeResult, UnsupportedSelection
from include.retention.selections import DatedUnit, ExpiredSelection, Selection, SubjectSelection, TenantSelection
from include.retention.stores.base import DEFAULT_BATCH_SIZE
from include.retention.stores.elasticsearch_client import MAX_URL_CHARS
from include.retention.stores.elasticsearch_indices import (
    IndexInfo,
    IndexPlan,
    check_exact_fields,
    expired_plan,
    index_info,
    index_template,
    subject_field,
    subject_query,
    thin_fields,
)
from include.retention.stores.elasticsearch_layouts import SharedLayouts

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "retention_elasticsearch"
#: Index names shown in a result's details (the count is always complete).
SHOWN_NAMES = 50
#: Delete-by-query throttle (documents a second): bounded, so a termination never floods the cluster.
DEFAULT_REQUESTS_PER_SECOND = 20_000.0


class ElasticsearchStore(SharedLayouts):
    """Purges dated per-tenant indices, and one subject's documents, through the official client;
    shared dated indices and data streams through :class:`SharedLayouts`.

    :param elasticsearch_conn_id: Airflow connection, e.g. ``elasticsearch://user:pw@host:9200/https``
        (the path is the scheme); extras ``ca_certs``, ``verify_certs`` and ``api_key`` are passed on.
    :param timezone: the policy's calendar, on which index months begin and end.
    :param batch_size: documents per delete-by-query batch (``scroll_size``).
    :param max_retries: retries of a request answered 429/502/503/504 or lost on the wire.
    :param backoff_seconds: first back-off; it doubles each retry, up to ``max_backoff_seconds``.
    :param task_timeout_seconds: how long to wait for one delete-by-query task before failing.
    :param poll_seconds: the longest single long poll of a task (``GET _tasks/{id}?wait_for_completion``).
    :param requests_per_second: the throttle of every delete-by-query task (documents a second,
        shared by its slices); None runs unthrottled, as Elasticsearch does by default.
    """

    store = "elasticsearch"

    def __init__(
        self,
        *,
        elasticsearch_conn_id: str = DEFAULT_CONN_ID,
        timezone: tzinfo,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_retries: int = 5,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 8.0,
        task_timeout_seconds: float = 3600.0,
        poll_seconds: float = 10.0,
        max_url_chars: int = MAX_URL_CHARS,
        request_timeout: float = 60.0,
        requests_per_second: float | None = DEFAULT_REQUESTS_PER_SECOND,
    ) -> None:
        super().__init__(
            elasticsearch_conn_id=elasticsearch_conn_id, batch_size=batch_size, max_retries=max_retries,
            backoff_seconds=backoff_seconds, max_backoff_seconds=max_backoff_seconds,
            task_timeout_seconds=task_timeout_seconds, poll_seconds=poll_seconds, max_url_chars=max_url_chars,
            request_timeout=request_timeout,
        )
        if requests_per_second is not None and requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive, or None for unthrottled")
        self.requests_per_second = requests_per_second
        self.timezone = timezone
        self._warned: set[str] = set()
        self._parsed: dict[tuple[str, str | None, str], dict[str, object] | None] = {}

    # ------------------------------------------------------------------ listing

    def _list(self, target: ElasticsearchTarget, tenant: str | None) -> tuple[list[IndexInfo], list[str]]:
        """The target's indices (of one tenant, or all): those that parse, and names that do not."""
        template = index_template(target)
        prefix = template.prefix(tenant=tenant) if tenant is not None else template.prefix()
        rows = self._call(
            "list indices",
            self.client.cat.indices,
            index=prefix + "*",  # reading only; deletes name every index
            format="json",
            h="index,docs.count,creation.date,health,status",
            # Open and closed, not hidden: a data stream's .ds- backing indices are never this layout's.
            expand_wildcards="open,closed",
        )
        found: list[IndexInfo] = []
        unrecognised: list[str] = []
        for row in getattr(rows, "body", rows):
            name = str(row["index"])
            values = self._parse(template, name)
            if values is None or (tenant is not None and values.get("tenant") != tenant):
                unrecognised.append(name)
                continue
            found.append(index_info(row, values, template, self.timezone))
        found.sort(key=lambda i: i.name)
        if unrecognised:
            log.warning(
                "%d index(es) under %s* do not parse as %s and are left alone: %s",
                len(unrecognised),
                prefix,
                template.text,
                ", ".join(sorted(unrecognised)[:SHOWN_NAMES]),
            )
        for info in found:
            early = info.created is not None and info.start is not None and info.created < info.start
            if early and info.name not in self._warned:
                self._warned.add(info.name)  # once per index, though a purge lists it up to three times
                log.warning(
                    "Index %s was created %s, before its period began (%s): check what writes into it",
                    info.name,
                    info.created.isoformat() if info.created else "?",
                    info.start.isoformat() if info.start else "?",
                )
        return found, unrecognised

    def _parse(self, template: Any, name: str) -> dict[str, object] | None:
        """``template.parse(name, whole=True)``, remembered: a purge lists the same names up to three times."""
        key = (template.text, template.date_format, name)
        if key not in self._parsed:
            if len(self._parsed) > 200_000:
                self._parsed.clear()
            self._parsed[key] = template.parse(name, whole=True)
        values = self._parsed[key]
        return dict(values) if values is not None else None

    def dated_units(self, target: ElasticsearchTarget) -> list[DatedUnit]:
        """One unit per index that parses as the template, bounded by its month on the policy calendar."""
        if target.layout.shared:
            return self._shared_units(target)
        infos, _ = self._list(target, None)
        return [
            DatedUnit(name=i.name, start=i.start, end=i.end, tenant=i.tenant)
            for i in infos
            if i.start is not None and i.end is not None
        ]

    # ------------------------------------------------------------------ plans

    def _tenant_plan(self, target: ElasticsearchTarget, tenant: str) -> IndexPlan:
        infos, unrecognised = self._list(target, tenant)
        return IndexPlan(drop=tuple(infos), unrecognised=tuple(unrecognised))

    def _expired_plan(self, target: ElasticsearchTarget, sel: ExpiredSelection) -> IndexPlan:
        if index_template(target).date_placeholder is None:
            raise UnsupportedSelection(f"{target.qualified_name}: index names carry no date to expire by")
        infos, unrecognised = self._list(target, sel.tenant)
        return expired_plan(target, sel, infos, unrecognised, self.timezone)

    def _plan(self, target: ElasticsearchTarget, selection: Selection) -> IndexPlan:
        if isinstance(selection, TenantSelection):
            return self._tenant_plan(target, selection.tenant)
        if isinstance(selection, ExpiredSelection):
            return self._expired_plan(target, selection)
        raise TypeError(f"no index plan for a {selection.kind} selection")

    def _count_plan(self, target: ElasticsearchTarget, selection: Selection) -> tuple[IndexPlan, int, int]:
        """Refresh the planned indices, then count: (plan, documents, closed indices)."""
        plan = self._plan(target, selection)
        if plan.thin:
            # The held subjects are spared by exact term queries: their fields must be keyword.
            self._check_mapping([i.name for i in plan.thin if not i.closed], thin_fields(target, plan))
        names = [i.name for i in plan.drop + plan.thin + plan.refused if not i.closed]
        if names:
            self._refresh(names)
            plan = self._plan(target, selection)  # docs.count as of the refresh
        # Refused indices are expired by name and stay: they count, so verify() never says 0 for them.
        docs = sum(i.docs or 0 for i in plan.drop + plan.refused)
        if plan.thin:
            docs += self._count_query(plan.thin, plan.thin_query or {})
        closed = sum(1 for i in plan.drop + plan.thin + plan.refused if i.closed)
        if closed:
            log.warning("%d closed index(es) in the selection: their documents cannot be counted", closed)
        return plan, docs, closed

    def _count_query(self, infos: Iterable[IndexInfo], queries: Mapping[str, dict[str, Any]]) -> int:
        total = 0
        by_tenant: dict[str, list[str]] = {}
        for info in infos:
            if not info.closed:
                by_tenant.setdefault(info.tenant, []).append(info.name)
        for tenant, names in by_tenant.items():
            for chunk in self._chunked(names):
                resp = self._call(
                    "count", self.client.count, index=chunk, query=queries[tenant], ignore_unavailable=True
                )
                total += int(resp["count"])
        return total

    # ------------------------------------------------------------------ subjects

    def _subject_scope(self, target: ElasticsearchTarget, sel: SubjectSelection) -> tuple[list[str], dict[str, Any]]:
        """The tenant's open indices and the exact query for one subject, after checking the mapping."""
        field, subject_id = subject_field(target, sel)
        infos, _ = self._list(target, sel.tenant)
        closed = [i.name for i in infos if i.closed]
        if closed:
            raise UnsupportedSelection(
                f"{len(closed)} index(es) of tenant {sel.tenant} are closed ({', '.join(closed[:5])}); open them so "
                "the subject's documents can be found and deleted"
            )
        names = [i.name for i in infos]
        query, fields = subject_query(target, sel, field, subject_id)
        self._check_mapping(names, fields)
        return names, query

    def _check_mapping(self, names: list[str], fields: tuple[str, ...]) -> None:
        """Refuse fields a term query cannot match exactly (analyzed text, or unmapped but present)."""
        for chunk in self._chunked(names):
            resp = self._call("read mappings", self.client.indices.get_mapping, index=chunk, ignore_unavailable=True)
            for name, body in getattr(resp, "body", resp).items():
                check_exact_fields(name, body.get("mappings", {}), fields)

    # ------------------------------------------------------------------ the verbs

    def count(self, target: ElasticsearchTarget, selection: Selection) -> int:
        """Documents the selection matches now (after a refresh of the indices concerned)."""
        if target.layout.shared:
            return self._shared_count(target, selection)
        if isinstance(selection, SubjectSelection):
            names, query = self._subject_scope(target, selection)
            if not names:
                return 0
            self._refresh(names)
            total = 0
            for chunk in self._chunked(names):
                resp = self._call("count", self.client.count, index=chunk, query=query, ignore_unavailable=True)
                total += int(resp["count"])
            return total
        _, docs, _ = self._count_plan(target, selection)
        return docs

    def verify(self, target: ElasticsearchTarget, selection: Selection) -> int:
        """Independent re-count; a closed index still in the selection counts as 1 (it cannot look empty)."""
        if target.layout.shared:
            return self._shared_count(target, selection)
        if isinstance(selection, SubjectSelection):
            return self.count(target, selection)
        _, docs, closed = self._count_plan(target, selection)
        return docs + closed

    def purge(self, target: ElasticsearchTarget, selection: Selection, *, dry_run: bool = False) -> PurgeResult:
        started = time.monotonic()
        if target.layout.shared:
            return self._shared_purge(target, selection, dry_run=dry_run)
        if isinstance(selection, SubjectSelection):
            return self._purge_subject(target, selection, dry_run=dry_run, started=started)
        plan, planned, closed = self._count_plan(target, selection)
        details: dict[str, object] = {
            "indices": len(plan.drop),
            "index_names": [i.name for i in plan.drop][:SHOWN_NAMES],
        }
        if closed:
            details["closed_indices"] = closed
        if plan.thin:
            details["thinned_for_holds"] = [i.name for i in plan.thin][:SHOWN_NAMES]
        if plan.refused:
            details["refused_indices"] = [i.name for i in plan.refused]
        if plan.kept_for_hold:
            details["kept_for_hold"] = [i.name for i in plan.kept_for_hold][:SHOWN_NAMES]
        if plan.unrecognised:
            details["unrecognised_indices"] = list(plan.unrecognised)[:SHOWN_NAMES]
        method = "delete_index" + ("+delete_by_query" if plan.thin else "")
        if dry_run:
            log.info(
                "Dry run: would drop %d index(es) (%d documents) of %s", len(plan.drop), planned, target.qualified_name
            )
            return PurgeResult(
                target.qualified_name,
                self.store,
                method,
                planned,
                0,
                dry_run=True,
                seconds=time.monotonic() - started,
                details=details,
            )

        deleted, batches = 0, 0
        docs_of = {i.name: i.docs or 0 for i in plan.drop}
        not_indices: list[str] = []
        for chunk in self._chunked(docs_of):
            try:
                concrete, others = self._concrete(chunk)  # an alias never reaches DELETE /{index}
                not_indices += others
                if concrete:
                    self._call("delete indices", self.client.indices.delete, index=concrete, ignore_unavailable=True)
            except Exception as exc:
                raise PartialPurgeError(target.qualified_name, deleted, exc) from exc
            batches += 1
            deleted += sum(docs_of[n] for n in concrete)
            log.info("Dropped %d index(es) of %s", len(concrete), target.qualified_name)
        if not_indices:
            details["not_deleted_aliases"] = not_indices[:SHOWN_NAMES]
            log.warning("%d name(s) of %s are aliases or data streams, not indices: not deleted", len(not_indices),
                        target.qualified_name)

        # Re-list to confirm: the listing, not the acknowledgement, is the proof.
        if plan.drop:
            try:
                remaining, _ = self._list(target, getattr(selection, "tenant", None))
            except Exception as exc:
                raise PartialPurgeError(target.qualified_name, deleted, exc) from exc
            still = sorted({i.name for i in remaining} & set(docs_of) - set(not_indices))
            if still:
                deleted -= sum(docs_of[n] for n in still)
                raise PartialPurgeError(
                    target.qualified_name,
                    deleted,
                    f"{len(still)} index(es) still present after the delete: {', '.join(still[:10])}",
                )

        conflicts = 0
        if plan.thin:
            by_tenant: dict[str, list[str]] = {}
            for info in plan.thin:
                if not info.closed:
                    by_tenant.setdefault(info.tenant, []).append(info.name)
            for tenant, names in by_tenant.items():
                outcome = self._delete_by_query(target, names, (plan.thin_query or {})[tenant], deleted)
                deleted += outcome.deleted
                batches += outcome.batches
                conflicts += outcome.conflicts
        if conflicts:
            details["version_conflicts"] = conflicts
        log.info(
            "Purged %s: %d documents in %d index(es) dropped%s",
            target.qualified_name,
            deleted,
            len(plan.drop),
            f", {len(plan.thin)} thinned" if plan.thin else "",
        )
        return PurgeResult(
            target.qualified_name,
            self.store,
            method,
            planned,
            deleted,
            batches=batches,
            seconds=time.monotonic() - started,
            details=details,
        )

    def _purge_subject(
        self, target: ElasticsearchTarget, sel: SubjectSelection, *, dry_run: bool, started: float
    ) -> PurgeResult:
        names, query = self._subject_scope(target, sel)
        details: dict[str, object] = {"indices": len(names)}
        planned = 0
        if names:
            self._refresh(names)
            for chunk in self._chunked(names):
                planned += int(
                    self._call("count", self.client.count, index=chunk, query=query, ignore_unavailable=True)["count"]
                )
        if dry_run or not names or planned == 0:
            return PurgeResult(
                target.qualified_name,
                self.store,
                "delete_by_query",
                planned,
                0,
                dry_run=dry_run,
                seconds=time.monotonic() - started,
                details=details,
            )
        deleted = batches = conflicts = 0
        tasks: list[str] = []
        task_seconds = 0.0
        # Documents changed while the task ran are skipped as version conflicts: go again for them.
        for _pass in range(3):
            outcome = self._delete_by_query(target, names, query, deleted)
            deleted += outcome.deleted
            batches += outcome.batches
            conflicts = outcome.conflicts
            tasks += outcome.tasks
            task_seconds += outcome.seconds
            if not conflicts:
                break
            log.warning(
                "delete-by-query on %s met %d version conflict(s); running it again", target.qualified_name, conflicts
            )
        details["tasks"] = tasks
        details["task_seconds"] = round(task_seconds, 3)  # the cluster's own time ("took")
        if conflicts:
            details["version_conflicts"] = conflicts
        log.info("Deleted %d documents of one subject of tenant %s from %s", deleted, sel.tenant, target.qualified_name)
        return PurgeResult(
            target.qualified_name,
            self.store,
            "delete_by_query",
            planned,
            deleted,
            batches=batches,
            seconds=time.monotonic() - started,
            details=details,
        )
