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
- 429 and 5xx answers are retried with bounded exponential back-off; then the call fails
  loudly. A purge that fails part-way raises PartialPurgeError; a rerun finishes it.

Counts are of documents (``docs.count`` after a refresh). The subject id goes only into
request bodies, never into a URL, a log line or a result.
"""

from __future__ import annotations

import base64
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, TypeVar
from urllib.parse import quote

from include.retention.policy import ElasticsearchTarget
from include.retention.stores.base import DEFAULT_BATCH_SIZE, RetentionStore
from include.retention.selections import (
    DatedUnit,
    ExpiredSelection,
    Selection,
    SubjectSelection,
    TenantSelection,
)
from include.retention.results import PartialPurgeError, PurgeResult, UnsupportedSelection

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "retention_elasticsearch"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_URL_CHARS = 3_000  # index names per request, like Curator's 3 KB chunks
#: Field types on which a ``term`` query matches the exact id (no analysis).
EXACT_FIELD_TYPES = frozenset(
    {"keyword", "constant_keyword", "wildcard", "long", "integer", "short", "byte", "unsigned_long"}
)
#: Index names shown in a result's details (the count is always complete).
SHOWN_NAMES = 50

R = TypeVar("R")


class ElasticsearchUnavailable(RuntimeError):
    """The cluster kept refusing a request (429 / 5xx / connection errors) after every retry."""


@dataclass(frozen=True)
class IndexInfo:
    """One listed index whose name parses as the target's template."""

    name: str
    tenant: str
    start: datetime | None  # the unit's bounds on the policy calendar; None for undated templates
    end: datetime | None
    docs: int | None  # None when the index is closed (its documents cannot be counted)
    created: datetime | None
    status: str

    @property
    def closed(self) -> bool:
        return self.status == "close"


@dataclass(frozen=True)
class _Plan:
    """What a tenant or expiry purge will do: indices to drop, and indices to thin out by query."""

    drop: tuple[IndexInfo, ...]
    thin: tuple[IndexInfo, ...] = ()  # expired indices of tenants with held subjects
    thin_query: Mapping[str, dict[str, Any]] | None = None  # per tenant: what to delete in them
    refused: tuple[IndexInfo, ...] = ()
    kept_for_hold: tuple[IndexInfo, ...] = ()
    unrecognised: tuple[str, ...] = ()


@dataclass(frozen=True)
class _TaskOutcome:
    """What delete-by-query tasks did, added up."""

    deleted: int
    batches: int
    conflicts: int
    tasks: tuple[str, ...]
    seconds: float  # the tasks' own "took"


def _chunks(names: list[str], max_chars: int, max_names: int) -> Iterator[list[str]]:
    """Split index names into comma-joined groups no longer than ``max_chars``."""
    chunk: list[str] = []
    length = 0
    for name in names:
        extra = len(name) + (1 if chunk else 0)
        if chunk and (length + extra > max_chars or len(chunk) >= max_names):
            yield chunk
            chunk, length = [], 0
            extra = len(name)
        chunk.append(name)
        length += extra
    if chunk:
        yield chunk


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def _field_type(mappings: Mapping[str, Any], path: str) -> str | None:
    """The mapped type of a dotted field path (through objects and multi-fields), or None."""
    props: Mapping[str, Any] = mappings.get("properties", {})
    parts = path.split(".")
    i = 0
    spec: Mapping[str, Any] | None = None
    while i < len(parts):
        # Dotted names may be mapped as one key ("a.b") or as nested objects (a -> b).
        for j in range(len(parts), i, -1):
            key = ".".join(parts[i:j])
            if key in props:
                spec, i = props[key], j
                break
        else:
            return None
        if i < len(parts):
            if "properties" in spec:
                props = spec["properties"]
            elif "fields" in spec:
                props = spec["fields"]
            else:
                return None
    if spec is None:
        return None
    return str(spec.get("type", "object"))


def index_mappings(target: ElasticsearchTarget) -> dict[str, Any]:
    """The mappings (for an index template) under which this store's exact term queries work:
    the tenant and subject fields as ``keyword``, the time field as ``date``."""
    properties: dict[str, Any] = {target.tenant_field: {"type": "keyword"}, target.time_field: {"type": "date"}}
    for field in target.subject_fields.values():
        properties[field] = {"type": "keyword"}
    return {"properties": properties}


class ElasticsearchStore(RetentionStore[ElasticsearchTarget]):
    """Purges dated per-tenant indices, and one subject's documents, through the official client.

    :param elasticsearch_conn_id: Airflow connection, e.g. ``elasticsearch://user:pw@host:9200/https``
        (the path is the scheme); extras ``ca_certs``, ``verify_certs`` and ``api_key`` are passed on.
    :param timezone: the policy's calendar, on which index months begin and end.
    :param batch_size: documents per delete-by-query batch (``scroll_size``).
    :param max_retries: retries of a request answered 429/502/503/504 or lost on the wire.
    :param backoff_seconds: first back-off; it doubles each retry, up to ``max_backoff_seconds``.
    :param task_timeout_seconds: how long to wait for one delete-by-query task before failing.
    :param poll_seconds: the longest single long poll of a task (``GET _tasks/{id}?wait_for_completion``).
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
    ) -> None:
        super().__init__(batch_size=min(batch_size, 10_000))  # scroll_size is at most 10,000
        if max_retries < 0 or backoff_seconds < 0 or task_timeout_seconds <= 0 or max_url_chars < 300:
            raise ValueError("max_retries and backoff must be >= 0, task_timeout > 0, max_url_chars >= 300")
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self.timezone = timezone
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.task_timeout_seconds = task_timeout_seconds
        self.poll_seconds = poll_seconds
        self.max_url_chars = max_url_chars
        self.request_timeout = request_timeout
        self._es: Elasticsearch | None = None
        self._warned: set[str] = set()
        self._auth_headers: dict[str, str] = {}  # for the one request sent through the transport
        self._parsed: dict[tuple[str, str | None, str], dict[str, object] | None] = {}

    # ------------------------------------------------------------------ client

    @property
    def client(self) -> Elasticsearch:
        """The official client, built once from the Airflow connection through the provider hook."""
        if self._es is None:
            from airflow.providers.elasticsearch.hooks.elasticsearch import ElasticsearchPythonHook
            from airflow.sdk import BaseHook

            conn = BaseHook.get_connection(self.elasticsearch_conn_id)
            extra = conn.extra_dejson
            host = conn.host or "localhost"
            scheme = conn.schema or str(extra.get("scheme") or "http")
            if "://" in host:  # a host written with its scheme
                scheme, _, host = host.partition("://")
            if scheme not in ("http", "https"):
                raise ValueError(
                    f"connection {self.elasticsearch_conn_id!r}: scheme {scheme!r} must be http or https "
                    "(write it as the path: elasticsearch://user:pw@host:9200/https)"
                )
            args: dict[str, Any] = {
                # Retries are ours (bounded, with back-off); the transport's are immediate.
                "max_retries": 0,
                "retry_on_status": (),
                "retry_on_timeout": False,
                "request_timeout": self.request_timeout,
            }
            if extra.get("api_key"):
                args["api_key"] = extra["api_key"]
                key = extra["api_key"]
                if isinstance(key, (list, tuple)):
                    key = base64.b64encode(f"{key[0]}:{key[1]}".encode()).decode()
                self._auth_headers = {"authorization": f"ApiKey {key}"}
            elif conn.login:
                args["basic_auth"] = (conn.login, conn.password or "")
                token = base64.b64encode(f"{conn.login}:{conn.password or ''}".encode()).decode()
                self._auth_headers = {"authorization": f"Basic {token}"}
            for key in ("ca_certs", "verify_certs", "ssl_show_warn"):
                if key in extra:
                    args[key] = extra[key]
            url = f"{scheme}://{host}:{conn.port or 9200}"
            hook = ElasticsearchPythonHook(hosts=[url], es_conn_args=args)
            self._es = hook.get_conn
        return self._es

    def _call(self, what: str, fn: Callable[..., R], **kwargs: Any) -> R:
        """Run one request, retrying 429/5xx and connection errors with bounded exponential back-off."""
        from elasticsearch import ApiError, ConnectionError, ConnectionTimeout

        attempt = 0
        while True:
            try:
                return fn(**kwargs)
            except ApiError as exc:
                if exc.meta.status not in RETRY_STATUSES:
                    raise
                cause = f"HTTP {exc.meta.status} {exc.message}"
                error: Exception = exc
            except (ConnectionError, ConnectionTimeout) as exc:
                cause, error = type(exc).__name__, exc
            if attempt >= self.max_retries:
                raise ElasticsearchUnavailable(
                    f"{what} failed after {attempt + 1} attempts; last answer: {cause}"
                ) from error
            delay = min(self.max_backoff_seconds, self.backoff_seconds * 2**attempt) * random.uniform(0.5, 1.0)
            attempt += 1
            log.warning("%s: %s; retry %d of %d in %.2f s", what, cause, attempt, self.max_retries, delay)
            time.sleep(delay)

    # ------------------------------------------------------------------ listing

    def _template(self, target: ElasticsearchTarget):  # type: ignore[no-untyped-def]
        if target.index is None:
            raise UnsupportedSelection(f"{target.qualified_name} has no index template")
        return target.index

    def _bounds(
        self, target: ElasticsearchTarget, values: Mapping[str, object]
    ) -> tuple[datetime | None, datetime | None]:
        placeholder = self._template(target).date_placeholder
        if placeholder is None:
            return None, None
        day = values[placeholder]
        assert isinstance(day, date)
        if placeholder == "month":
            first = day.replace(day=1)
            nxt = _next_month(first)
        else:
            first, nxt = day, day + timedelta(days=1)
        return (
            datetime(first.year, first.month, first.day, tzinfo=self.timezone),
            datetime(nxt.year, nxt.month, nxt.day, tzinfo=self.timezone),
        )

    def _list(self, target: ElasticsearchTarget, tenant: str | None) -> tuple[list[IndexInfo], list[str]]:
        """The target's indices (of one tenant, or all): those that parse, and names that do not."""
        template = self._template(target)
        prefix = template.prefix(tenant=tenant) if tenant is not None else template.prefix()
        rows = self._call(
            "list indices",
            self.client.cat.indices,
            index=prefix + "*",  # reading only; deletes name every index
            format="json",
            h="index,docs.count,creation.date,health,status",
            expand_wildcards="all",
        )
        found: list[IndexInfo] = []
        unrecognised: list[str] = []
        for row in getattr(rows, "body", rows):
            name = str(row["index"])
            values = self._parse(template, name)
            if values is None or (tenant is not None and values.get("tenant") != tenant):
                unrecognised.append(name)
                continue
            start, end = self._bounds(target, values)
            created_ms = row.get("creation.date")
            created = (
                datetime.fromtimestamp(int(created_ms) / 1000, tz=timezone.utc)
                if created_ms not in (None, "")
                else None
            )
            docs = row.get("docs.count")
            found.append(
                IndexInfo(
                    name=name,
                    tenant=str(values["tenant"]),
                    start=start,
                    end=end,
                    docs=int(docs) if docs not in (None, "") else None,
                    created=created,
                    status=str(row.get("status") or "open"),
                )
            )
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
        infos, _ = self._list(target, None)
        return [
            DatedUnit(name=i.name, start=i.start, end=i.end, tenant=i.tenant)
            for i in infos
            if i.start is not None and i.end is not None
        ]

    def _chunked(self, names: Iterable[str]) -> Iterator[list[str]]:
        for chunk in _chunks(sorted(names), self.max_url_chars, max_names=self.batch_size):
            for name in chunk:
                # Belt and braces: only exact names that parsed reach a request path.
                if not name or any(c in name for c in "*?,") or name.startswith(("-", "_")):
                    raise RuntimeError(f"refusing to address index {name!r}: not an exact index name")
            yield chunk

    def _refresh(self, names: Iterable[str]) -> None:
        for chunk in self._chunked(names):
            self._call("refresh", self.client.indices.refresh, index=chunk, ignore_unavailable=True)

    # ------------------------------------------------------------------ plans

    def _tenant_plan(self, target: ElasticsearchTarget, tenant: str) -> _Plan:
        infos, unrecognised = self._list(target, tenant)
        return _Plan(drop=tuple(infos), unrecognised=tuple(unrecognised))

    def _expired_plan(self, target: ElasticsearchTarget, sel: ExpiredSelection) -> _Plan:
        template = self._template(target)
        if template.date_placeholder is None:
            raise UnsupportedSelection(f"{target.qualified_name}: index names carry no date to expire by")
        infos, unrecognised = self._list(target, sel.tenant)
        by_name = {i.name: i for i in infos}

        def in_scope(tenant: str) -> bool:
            return (sel.tenant is None or tenant == sel.tenant) and tenant not in sel.exclude_tenants

        candidates: list[IndexInfo] = []
        if sel.units:
            for name in sel.units:
                values = template.parse(name, whole=True)
                if values is None:
                    raise ValueError(f"unit {name!r} is not an index of {target.qualified_name} ({template.text})")
                _, end = self._bounds(target, values)
                tenant = str(values["tenant"])
                if end is None or end > sel.before:
                    raise ValueError(f"unit {name!r} is not wholly before the cut-off {sel.before.isoformat()}")
                if not in_scope(tenant):
                    raise ValueError(f"unit {name!r} belongs to tenant {tenant}, which this selection excludes")
                if name in by_name:  # a unit already gone is fine: purges are idempotent
                    candidates.append(by_name[name])
        else:
            candidates = [i for i in infos if i.end is not None and i.end <= sel.before and in_scope(i.tenant)]

        # An index whose name says it is old but which was created after the cut-off may hold
        # current data written under a wrong name: never drop it on the strength of its name.
        refused = [i for i in candidates if i.created is not None and i.created >= sel.before]
        for info in refused:
            log.error(
                "Refusing to drop %s: its name dates it before %s but it was created %s",
                info.name,
                sel.before.isoformat(),
                info.created.isoformat() if info.created else "?",
            )
        candidates = [i for i in candidates if i not in refused]

        # Held subjects stay: their tenants' expired indices are thinned by query, not dropped.
        held: dict[str, list[tuple[str, str]]] = {}
        for tenant, subject_type, subject_id in sel.exclude_subjects:
            held.setdefault(tenant, []).append((subject_type, subject_id))
        thin_query: dict[str, dict[str, Any]] = {}
        kept: list[IndexInfo] = []
        for tenant, subjects in held.items():
            clauses = self._held_clauses(target, subjects)
            if clauses is None:
                # We cannot tell the held subject's documents apart here: keep the indices whole.
                kept.extend(i for i in candidates if i.tenant == tenant)
            else:
                thin_query[tenant] = {
                    "bool": {"filter": [{"term": {target.tenant_field: tenant}}], "must_not": clauses}
                }
        kept_names = {i.name for i in kept}
        thin = [i for i in candidates if i.tenant in thin_query and i.name not in kept_names]
        drop = [i for i in candidates if i.tenant not in thin_query and i.name not in kept_names]
        if kept:
            log.warning(
                "Keeping %d expired index(es) whole: a held subject there has no field in %s",
                len(kept),
                target.qualified_name,
            )
        return _Plan(
            drop=tuple(drop),
            thin=tuple(thin),
            thin_query=thin_query,
            refused=tuple(refused),
            kept_for_hold=tuple(kept),
            unrecognised=tuple(unrecognised),
        )

    def _held_clauses(
        self, target: ElasticsearchTarget, subjects: Iterable[tuple[str, str]]
    ) -> list[dict[str, Any]] | None:
        """Exact term queries for held (subject_type, subject_id) of one tenant, for a ``must_not``;
        None when one of them has no field here, so its documents cannot be told apart."""
        template = self._template(target)
        clauses = []
        for subject_type, subject_id in sorted(subjects):
            field = target.subject_fields.get(subject_type)
            fmt = template.fields.get(subject_type)
            if field is None or fmt is None:
                return None
            clauses.append({"term": {field: fmt.validate(subject_id, echo=False)}})
        return clauses

    def _plan(self, target: ElasticsearchTarget, selection: Selection) -> _Plan:
        if isinstance(selection, TenantSelection):
            return self._tenant_plan(target, selection.tenant)
        if isinstance(selection, ExpiredSelection):
            return self._expired_plan(target, selection)
        raise TypeError(f"no index plan for a {selection.kind} selection")

    def _count_plan(self, target: ElasticsearchTarget, selection: Selection) -> tuple[_Plan, int, int]:
        """Refresh the planned indices, then count: (plan, documents, closed indices)."""
        plan = self._plan(target, selection)
        if plan.thin:
            # The held subjects are spared by exact term queries: their fields must be keyword.
            fields = {target.tenant_field} | {
                str(next(iter(clause["term"])))
                for query in (plan.thin_query or {}).values()
                for clause in query["bool"]["must_not"]
            }
            self._check_mapping([i.name for i in plan.thin if not i.closed], tuple(sorted(fields)))
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
        template = self._template(target)
        field = target.subject_fields.get(sel.subject_type)
        if field is None:
            raise UnsupportedSelection(f"{target.qualified_name} has no field for subject type {sel.subject_type!r}")
        fmt = template.fields.get(sel.subject_type)
        if fmt is None:
            raise UnsupportedSelection(f"unknown subject type {sel.subject_type!r}")
        subject_id = fmt.validate(sel.subject_id, echo=False)
        infos, _ = self._list(target, sel.tenant)
        closed = [i.name for i in infos if i.closed]
        if closed:
            raise UnsupportedSelection(
                f"{len(closed)} index(es) of tenant {sel.tenant} are closed ({', '.join(closed[:5])}); open them so "
                "the subject's documents can be found and deleted"
            )
        names = [i.name for i in infos]
        query: dict[str, Any] = {
            "bool": {"filter": [{"term": {target.tenant_field: sel.tenant}}, {"term": {field: subject_id}}]}
        }
        # As in MySQL, a document names a held subject only through a subject field of the target.
        held = self._held_clauses(target, [
            (k, i) for t, k, i in sel.exclude_subjects if t == sel.tenant and k in target.subject_fields
        ])
        if held is None:
            raise UnsupportedSelection(f"{target.qualified_name}: a held subject's type has no id format in the policy")
        if held:
            query["bool"]["must_not"] = held  # a document that also names a held subject stays
        held_fields = [str(next(iter(clause["term"]))) for clause in held]
        self._check_mapping(names, tuple(dict.fromkeys([target.tenant_field, field, *held_fields])))
        return names, query

    def _check_mapping(self, names: list[str], fields: tuple[str, ...]) -> None:
        """Refuse fields a term query cannot match exactly (analyzed text, or unmapped but present)."""
        for chunk in self._chunked(names):
            resp = self._call("read mappings", self.client.indices.get_mapping, index=chunk, ignore_unavailable=True)
            for name, body in getattr(resp, "body", resp).items():
                mappings = body.get("mappings", {})
                for field in fields:
                    ftype = _field_type(mappings, field)
                    if ftype is None:
                        if str(mappings.get("dynamic", "true")).lower() == "false":
                            raise UnsupportedSelection(
                                f"index {name}: field {field} is not mapped and dynamic mapping is off, so documents "
                                "may hold it without it being searchable; map it as keyword"
                            )
                        continue  # never mapped: no document has it
                    if ftype not in EXACT_FIELD_TYPES:
                        raise UnsupportedSelection(
                            f"index {name}: field {field} is mapped as {ftype}, on which a term query does not match "
                            "exact ids; map it as keyword or point the policy at its .keyword sub-field"
                        )

    def _delete_by_query(
        self, target: ElasticsearchTarget, names: list[str], query: dict[str, Any], deleted_before: int
    ) -> _TaskOutcome:
        """Run delete-by-query tasks over ``names`` (one per chunk of names) and add up their results."""
        deleted = batches = conflicts = took = 0
        tasks: list[str] = []
        for chunk in self._chunked(names):
            try:
                resp = self._call(
                    "delete by query",
                    self.client.delete_by_query,
                    index=chunk,
                    query=query,
                    conflicts="proceed",
                    slices="auto",
                    scroll_size=self.batch_size,
                    refresh=True,
                    wait_for_completion=False,
                    ignore_unavailable=True,
                )
            except Exception as exc:
                raise PartialPurgeError(target.qualified_name, deleted_before + deleted, exc) from exc
            task_id = str(resp["task"])
            tasks.append(task_id)
            result = self._wait_for_task(target, task_id, deleted_before + deleted)
            deleted += int(result.get("deleted", 0))
            took += int(result.get("took", 0))
            batches += int(result.get("batches", 0))
            conflicts += int(result.get("version_conflicts", 0))
            failures = result.get("failures") or []
            if failures or result.get("timed_out"):
                kinds = Counter(
                    f"{(f.get('cause') or f.get('reason') or {}).get('type', 'unknown')} ({f.get('status', '?')})"
                    for f in failures
                )
                summary = ", ".join(f"{kind} x{n}" for kind, n in kinds.most_common()) or "timed out"
                raise PartialPurgeError(
                    target.qualified_name,
                    deleted_before + deleted,
                    f"delete-by-query task {task_id} reported {len(failures)} failure(s): {summary}",
                )
        return _TaskOutcome(deleted, batches, conflicts, tuple(tasks), took / 1000)

    def _wait_for_task(self, target: ElasticsearchTarget, task_id: str, deleted_before: int) -> dict[str, Any]:
        """Poll a delete-by-query task until it completes (bounded), then drop its stored result.

        Each poll is a long poll (``wait_for_completion=true`` with a timeout of at most
        ``poll_seconds``), so completion is seen at once without a flood of requests.
        """
        from elasticsearch import ApiError

        def get_task(wait: float) -> Any:
            params: dict[str, Any] = {}
            if wait > 0:
                params = {"wait_for_completion": "true", "timeout": f"{max(1, int(wait * 1000))}ms"}
            # GET _tasks/{id} through perform_request: client.tasks.get() is marked "technical
            # preview", and building that warning walks the whole stack (about 0.5 s a call here).
            return self._call(
                "read task",
                self.client.perform_request,
                method="GET",
                path=f"/_tasks/{quote(task_id, safe='')}",
                params=params,
                headers={"accept": "application/json"},
            )

        deadline = time.monotonic() + self.task_timeout_seconds
        while True:
            remaining = deadline - time.monotonic()
            try:
                resp = get_task(min(self.poll_seconds, remaining))
            except ApiError as exc:
                if exc.message != "timeout_exception":  # the long poll ended before the task did
                    raise PartialPurgeError(target.qualified_name, deleted_before, exc) from exc
                resp = None
            except Exception as exc:
                raise PartialPurgeError(target.qualified_name, deleted_before, exc) from exc
            if resp is not None and resp.get("completed"):
                break
            if time.monotonic() >= deadline:
                try:
                    status = (get_task(0).get("task") or {}).get("status") or {}
                except Exception:  # noqa: BLE001 - the timeout is the error to report
                    status = {}
                raise PartialPurgeError(
                    target.qualified_name,
                    deleted_before + int(status.get("deleted", 0)),
                    f"delete-by-query task {task_id} did not finish within {self.task_timeout_seconds:g} s; it keeps "
                    f"running in the cluster (GET _tasks/{task_id}); rerun the purge once it is done",
                )
        if resp.get("error"):
            error = resp["error"]
            raise PartialPurgeError(
                target.qualified_name,
                deleted_before,
                f"delete-by-query task {task_id} failed: {error.get('type', 'error')}",
            )
        self._forget_task(task_id)
        return dict(resp.get("response") or {})

    def _forget_task(self, task_id: str) -> None:
        """Delete the task's stored result from ``.tasks``, as Elastic advises once it is read (best effort).

        Sent through the transport: Elasticsearch answers it with a system-index deprecation
        warning, and the client turns every warning into a Python warning by walking the
        whole stack (about 0.4 s a call here).
        """
        from elastic_transport import TransportError

        try:
            meta, _ = self.client.transport.perform_request(
                "DELETE",
                f"/.tasks/_doc/{quote(task_id, safe='')}",
                headers={"accept": "application/json", **self._auth_headers},
                request_timeout=self.request_timeout,
            )
            if meta.status not in (200, 404):
                log.info(
                    "Could not delete the stored result of task %s (HTTP %d); it is harmless", task_id, meta.status
                )
        except TransportError as exc:
            log.info("Could not delete the stored result of task %s (%s); it is harmless", task_id, type(exc).__name__)

    # ------------------------------------------------------------------ the verbs

    def count(self, target: ElasticsearchTarget, selection: Selection) -> int:
        """Documents the selection matches now (after a refresh of the indices concerned)."""
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
        if isinstance(selection, SubjectSelection):
            return self.count(target, selection)
        _, docs, closed = self._count_plan(target, selection)
        return docs + closed

    def purge(self, target: ElasticsearchTarget, selection: Selection, *, dry_run: bool = False) -> PurgeResult:
        started = time.monotonic()
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
        for chunk in self._chunked(docs_of):
            try:
                self._call("delete indices", self.client.indices.delete, index=chunk, ignore_unavailable=True)
            except Exception as exc:
                raise PartialPurgeError(target.qualified_name, deleted, exc) from exc
            batches += 1
            deleted += sum(docs_of[n] for n in chunk)
            log.info("Dropped %d index(es) of %s", len(chunk), target.qualified_name)

        # Re-list to confirm: the listing, not the acknowledgement, is the proof.
        if plan.drop:
            try:
                remaining, _ = self._list(target, getattr(selection, "tenant", None))
            except Exception as exc:
                raise PartialPurgeError(target.qualified_name, deleted, exc) from exc
            still = sorted({i.name for i in remaining} & set(docs_of))
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
