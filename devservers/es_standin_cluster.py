"""The stand-in's one-node cluster state (indices, tasks, faults, the request log) and
delete-by-query."""

from __future__ import annotations

import base64
import collections
import copy
import itertools
import re
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

from devservers.es_standin_base import (
    FAULT_BODIES,
    REQUEST_LOG_SIZE,
    EsError,
    bad_request,
    index_not_found,
    now_ms,
    parse_time_value,
    unsupported,
)
from devservers.es_standin_index import SETTABLE, Index, check_mapping, flatten_settings, validate_index_name
from devservers.es_standin_query import Predicate

# --------------------------------------------------------------------------- the cluster


@dataclass
class Fault:
    status: int
    count: int
    paths: str | None = None
    methods: tuple[str, ...] = ()
    stage: str = "http"
    delay: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "count": self.count,
            "paths": self.paths,
            "methods": list(self.methods),
            "stage": self.stage,
            "delay": self.delay,
        }


@dataclass
class Task:
    id: int
    description: str
    start_ms: int
    start_ns: int
    status: dict[str, Any]
    completed: bool = False
    end_ns: int | None = None
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    job: DeleteByQuery | None = None  # while it runs: what _rethrottle changes


class Cluster:
    """All state of the one-node stand-in cluster, guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.indices: dict[str, Index] = {}
        self.node_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22].replace("-", "A").replace("_", "B")
        self.cluster_uuid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22]
        self.task_ids = itertools.count(1000)
        self.tasks: dict[int, Task] = {}
        self.faults: list[Fault] = []
        self.requests: collections.deque[dict[str, Any]] = collections.deque(maxlen=REQUEST_LOG_SIZE)
        self.request_seq = itertools.count(1)
        self.templates: dict[str, dict[str, Any]] = {}  # composable index templates (data_stream ones only)
        self.data_streams: dict[str, list[str]] = {}  # stream -> backing index names, the write index last

    # -- index expressions

    def resolve(
        self,
        expr: str | None,
        *,
        ignore_unavailable: bool = False,
        allow_no_indices: bool = True,
        expand_wildcards: str = "open",
        skip_closed: bool = False,
    ) -> list[Index]:
        """Indices named by a comma-separated expression with ``*`` wildcards (read APIs)."""
        expand = set((expand_wildcards or "open").split(","))
        if "all" in expand:
            expand = {"open", "closed", "hidden"}
        if "none" in expand:
            expand = set()
        parts = [p for p in (expr or "_all").split(",") if p]
        chosen: dict[str, Index] = {}
        wildcard_used = False
        for part in parts:
            exclude = part.startswith("-") and bool(chosen)
            pattern = part[1:] if exclude else part
            if pattern in ("_all", "*") or "*" in pattern:
                wildcard_used = True
                glob = "*" if pattern == "_all" else pattern
                regex = re.compile("^" + ".*".join(re.escape(piece) for piece in glob.split("*")) + "$")
                matches = [
                    ix
                    for name, ix in self.indices.items()
                    if (("closed" in expand) if ix.closed else ("open" in expand))
                    and (
                        # a data stream's backing indices are hidden, and its name still reaches them
                        any(regex.match(stream) for stream in self.streams_of(name))
                        or (
                            (regex.match(name) or any(regex.match(alias) for alias in ix.aliases))
                            and (not ix.hidden or "hidden" in expand or pattern.startswith("."))
                        )
                    )
                ]
                for ix in matches:
                    if exclude:
                        chosen.pop(ix.name, None)
                    else:
                        chosen[ix.name] = ix
                continue
            named = [self.indices[pattern]] if pattern in self.indices else self.alias_indices(pattern)
            if not named and pattern in self.data_streams:
                named = [self.indices[n] for n in self.data_streams[pattern] if n in self.indices]
            if not named:
                if exclude:
                    continue
                if ignore_unavailable:
                    continue
                raise index_not_found(pattern)
            for ix in named:
                if exclude:
                    chosen.pop(ix.name, None)
                else:
                    chosen[ix.name] = ix
        result = list(chosen.values())
        if skip_closed:
            closed = [ix for ix in result if ix.closed]
            if closed and not ignore_unavailable and not wildcard_used:
                raise EsError(400, "index_closed_exception", "closed", index=closed[0].name)
            result = [ix for ix in result if not ix.closed]
        if not result and not allow_no_indices and wildcard_used:
            raise index_not_found(expr or "_all")
        return result

    def create_index(self, name: str, body: dict[str, Any]) -> Index:
        validate_index_name(name)
        if name in self.indices:
            raise EsError(
                400,
                "resource_already_exists_exception",
                f"index [{name}/{self.indices[name].uuid}] already exists",
                index=name,
                index_uuid=self.indices[name].uuid,
            )
        extra = set(body) - {"settings", "mappings", "aliases"}
        if extra:
            raise bad_request(f"unknown key [{sorted(extra)[0]}] for create index", "parse_exception")
        if name in self.all_aliases():
            raise EsError(400, "invalid_index_name_exception", f"Invalid index name [{name}], already exists as alias")
        aliases = body.get("aliases") or {}
        if not isinstance(aliases, dict):
            raise bad_request("aliases must be an object", "parse_exception")
        for alias, props in aliases.items():
            self.check_alias(alias, props, index_name=name)
        settings = flatten_settings(body.get("settings") or {})
        unknown = set(settings) - SETTABLE
        if unknown:
            key = sorted(unknown)[0]
            raise bad_request(
                f"unknown setting [{key}] please check that any required plugins are installed, or check "
                "the breaking changes documentation for removed settings"
            )
        for key in (
            "index.number_of_shards",
            "index.number_of_replicas",
            "index.creation_date",
            "index.max_result_window",
        ):
            if key in settings and not re.fullmatch(r"\d+", settings[key]):
                raise bad_request(f"Failed to parse value [{settings[key]}] for setting [{key}]")
        if "index.refresh_interval" in settings:
            parse_time_value(settings["index.refresh_interval"], "index.refresh_interval")
        settings.setdefault("index.number_of_shards", "1")
        settings.setdefault("index.number_of_replicas", "1")
        settings.setdefault("index.creation_date", str(now_ms()))
        settings["index.provided_name"] = name
        mappings = copy.deepcopy(body.get("mappings") or {})
        extra_m = set(mappings) - {"properties", "dynamic"}
        if extra_m:
            raise unsupported(f"mapping options {sorted(extra_m)}")
        if str(mappings.get("dynamic", "true")).lower() not in ("true", "false", "strict"):
            raise unsupported(f"dynamic [{mappings['dynamic']}]")
        check_mapping(mappings.get("properties", {}))
        ix = Index(name=name, settings=settings, mappings=mappings)
        ix.settings["index.uuid"] = ix.uuid
        ix.aliases = {alias: dict(props or {}) for alias, props in aliases.items()}
        self.indices[name] = ix
        return ix

    # -- aliases

    def alias_indices(self, alias: str) -> list[Index]:
        return [ix for ix in self.indices.values() if alias in ix.aliases]

    def all_aliases(self) -> set[str]:
        return {alias for ix in self.indices.values() for alias in ix.aliases}

    def check_alias(self, alias: str, props: Any, *, index_name: str) -> None:
        """An alias name and properties as ES's AliasValidator takes them, or its 400."""
        if not isinstance(props, dict):
            raise bad_request(f"[{alias}] alias must be an object", "parse_exception")
        extra = set(props) - {"is_write_index", "is_hidden"}
        if extra:
            raise unsupported(f"alias options {sorted(extra)} (supported: is_write_index, is_hidden)")
        try:
            validate_index_name(alias)
        except EsError as exc:
            reason = (exc.reason or "").replace(f"Invalid index name [{alias}], ", f"Invalid alias name [{alias}]: ")
            raise EsError(400, "invalid_alias_name_exception", reason) from None
        if alias == index_name or alias in self.indices:
            raise EsError(
                400,
                "invalid_alias_name_exception",
                f"Invalid alias name [{alias}]: an index or data stream exists with the same name as the alias",
            )

    def write_index(self, name: str) -> Index | None:
        """The index a write or single-document read through ``name`` reaches; None if no such name."""
        ix = self.indices.get(name)
        if ix is not None:
            return ix
        if name in self.data_streams:
            return self.indices[self.data_streams[name][-1]]
        behind = self.alias_indices(name)
        if not behind:
            return None
        writers = [ix for ix in behind if ix.aliases[name].get("is_write_index") in (True, "true")]
        if writers:
            return writers[0]
        if len(behind) == 1 and behind[0].aliases[name].get("is_write_index") not in (False, "false"):
            return behind[0]
        raise bad_request(
            f"no write index is defined for alias [{name}]. The write index may be explicitly disabled using "
            "is_write_index=false or the alias points to multiple indices without one being designated as a "
            "write index"
        )

    def index_for_write(self, name: str) -> Index:
        """The index a write goes to, created on the fly (``action.auto_create_index`` defaults to true)."""
        ix = self.write_index(name)
        if ix is None and self.stream_template(name) is not None:
            self.create_data_stream(name)
            ix = self.write_index(name)
        if ix is None:
            ix = self.create_index(name, {})
        return ix

    # -- data streams

    def streams_of(self, index_name: str) -> list[str]:
        return [s for s, backing in self.data_streams.items() if index_name in backing]

    def stream_template(self, name: str) -> tuple[str, dict[str, Any]] | None:
        """The highest-priority data-stream template whose index_patterns match ``name``."""
        matching = [
            (int(body.get("priority", 0)), tname, body)
            for tname, body in self.templates.items()
            if any(re.fullmatch(".*".join(map(re.escape, p.split("*"))), name) for p in body["index_patterns"])
        ]
        if not matching:
            return None
        _, tname, body = max(matching, key=lambda m: m[0])
        return tname, body

    def create_data_stream(self, name: str) -> None:
        found = self.stream_template(name)
        if found is None:
            raise bad_request(f"no matching index template found for data stream [{name}]")
        if name in self.data_streams:
            raise EsError(400, "resource_already_exists_exception", f"data_stream [{name}] already exists")
        if name in self.indices or name in self.all_aliases():
            raise bad_request(f"data stream [{name}] conflicts with index or alias")
        self.data_streams[name] = []
        self.roll_over(name)

    def check_stream_write(self, name: str, op_type: str, source: dict[str, Any]) -> None:
        """ES's rules for a document written to a data stream: create only, with an @timestamp."""
        if name not in self.data_streams and not (name not in self.indices and self.stream_template(name)):
            return
        if op_type != "create":
            raise bad_request("only write ops with an op_type of create are allowed in data streams")
        if "@timestamp" not in source:
            raise EsError(
                400,
                "document_parsing_exception",
                "[1:2] failed to parse: data stream timestamp field [@timestamp] is missing",
            )

    def roll_over(self, stream: str) -> tuple[str | None, str]:
        """A new write index for ``stream``: ``.ds-{stream}-{yyyy.MM.dd}-{generation:06d}``."""
        _, template = self.stream_template(stream) or (None, {})
        backing = self.data_streams[stream]
        generation = len(backing) + 1
        if backing:
            generation = int(backing[-1].rsplit("-", 1)[1]) + 1
        day = time.strftime("%Y.%m.%d", time.gmtime())
        name = f".ds-{stream}-{day}-{generation:06d}"
        inner = template.get("template") or {}
        mappings = copy.deepcopy(inner.get("mappings") or {})
        mappings.setdefault("properties", {}).setdefault("@timestamp", {"type": "date"})
        settings = {**copy.deepcopy(inner.get("settings") or {}), "index.hidden": True}
        self.create_index(name, {"settings": settings, "mappings": mappings})
        old = backing[-1] if backing else None
        backing.append(name)
        return old, name

    # -- faults and the request log

    def take_fault(self, stage: str, method: str = "", path: str = "") -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.stage != stage or fault.count <= 0:
                    continue
                if fault.paths and not path.startswith(fault.paths):
                    continue
                if fault.methods and method not in fault.methods:
                    continue
                fault.count -= 1
                taken = Fault(**{**fault.__dict__})
                self.faults = [f for f in self.faults if f.count > 0]
                return taken
        return None

    def log_request(self, method: str, path: str, status: int) -> None:
        with self.lock:
            self.requests.append(
                {
                    "seq": next(self.request_seq),
                    "method": method,
                    "path": path,
                    "status": status,
                    "time": round(time.time(), 3),
                }
            )


CLUSTER = Cluster()


# --------------------------------------------------------------------------- delete by query


class DeleteByQuery:
    """One delete-by-query: snapshot what is searchable, delete it in batches with version checks."""

    def __init__(
        self,
        cluster: Cluster,
        indices: list[Index],
        predicates: dict[str, Predicate],
        *,
        abort_on_conflict: bool,
        scroll_size: int,
        slices: int,
        refresh: bool,
        max_docs: int | None,
        requests_per_second: float,
        task: Task | None,
    ) -> None:
        self.cluster, self.indices, self.predicates = cluster, indices, predicates
        self.abort_on_conflict, self.scroll_size, self.slices = abort_on_conflict, scroll_size, slices
        self.refresh, self.max_docs, self.rps, self.task = refresh, max_docs, requests_per_second, task
        self.start = time.monotonic()
        self.totals = self._zero()
        self.slice_status = [dict(self._zero(), slice_id=i) for i in range(slices)] if slices > 1 else []
        self.failures: list[dict[str, Any]] = []

    @staticmethod
    def _zero() -> dict[str, Any]:
        return {
            "total": 0,
            "deleted": 0,
            "batches": 0,
            "version_conflicts": 0,
            "noops": 0,
            "retries": {"bulk": 0, "search": 0},
            "throttled_millis": 0,
        }

    def status(self) -> dict[str, Any]:
        status = {
            **copy.deepcopy(self.totals),
            "updated": 0,
            "created": 0,
            "requests_per_second": self.rps,
            "throttled_until_millis": 0,
        }
        if self.slice_status:
            status["slices"] = copy.deepcopy(self.slice_status)
        return status

    def run(self) -> dict[str, Any]:
        with self.cluster.lock:
            snapshot: list[tuple[Index, str, int]] = []
            for ix in self.indices:
                if ix.closed:
                    continue
                ix.maybe_refresh()
                predicate = self.predicates[ix.name]
                for doc in ix.searchable.values():
                    if predicate(doc):
                        snapshot.append((ix, doc.id, doc.seq_no))
        if self.max_docs is not None:
            snapshot = snapshot[: self.max_docs]
        by_slice: list[list[tuple[Index, str, int]]] = [[] for _ in range(max(1, self.slices))]
        for item in snapshot:
            by_slice[zlib_crc(item[1]) % len(by_slice)].append(item)
        self.totals["total"] = len(snapshot)
        for i, part in enumerate(by_slice):
            if self.slice_status:
                self.slice_status[i]["total"] = len(part)
        aborted = False
        for slice_id, part in enumerate(by_slice):
            for start in range(0, len(part), self.scroll_size):
                batch = part[start : start + self.scroll_size]
                aborted = self._delete_batch(batch, slice_id)
                if aborted:
                    break
            if aborted:
                break
        touched = {ix.name: ix for ix in self.indices}
        if self.refresh:
            with self.cluster.lock:
                for ix in touched.values():
                    if ix.name in self.cluster.indices and not ix.closed:
                        ix.refresh()
        return self.response()

    def _delete_batch(self, batch: list[tuple[Index, str, int]], slice_id: int) -> bool:
        fault = self.cluster.take_fault("delete_by_query_delay")  # slows the next N batches
        fault_delay = fault.delay if fault else 0.0
        started = time.monotonic()
        while True:  # re-read the throttle while waiting: a rethrottle that speeds up applies at once, as in ES
            delay = max(fault_delay, len(batch) / self.rps if self.rps > 0 else 0.0)
            left = delay - (time.monotonic() - started)
            if left <= 0:
                break
            time.sleep(min(left, 0.05))
        self.totals["throttled_millis"] += int((time.monotonic() - started) * 1000)
        aborted = False
        with self.cluster.lock:
            deleted = conflicts = 0
            for ix, doc_id, seq_no in batch:
                if self.cluster.indices.get(ix.name) is not ix:
                    continue  # the index was deleted meanwhile: nothing left to delete
                failure = self.cluster.take_fault("delete_by_query")
                if failure:
                    reason, kind = FAULT_BODIES[failure.status][1], FAULT_BODIES[failure.status][0]
                    self.failures.append(
                        {
                            "index": ix.name,
                            "id": doc_id,
                            "cause": {"type": kind, "reason": reason},
                            "status": failure.status,
                        }
                    )
                    aborted = True
                    continue
                try:
                    ix.delete(doc_id, if_seq_no=seq_no)
                    deleted += 1
                except EsError as exc:
                    if exc.type != "version_conflict_engine_exception":
                        raise
                    conflicts += 1
                    if self.abort_on_conflict:
                        self.failures.append(
                            {
                                "index": ix.name,
                                "id": doc_id,
                                "cause": {"type": exc.type, "reason": exc.reason, "index": ix.name},
                                "status": 409,
                            }
                        )
                        aborted = True
            for counts in [self.totals] + ([self.slice_status[slice_id]] if self.slice_status else []):
                counts["deleted"] += deleted
                counts["version_conflicts"] += conflicts
                counts["batches"] += 1
            if self.task:
                self.task.status = self.status()
        return aborted

    def response(self) -> dict[str, Any]:
        status = self.status()
        status.pop("updated", None)
        status.pop("created", None)
        return {
            "took": int((time.monotonic() - self.start) * 1000),
            "timed_out": False,
            **status,
            "failures": self.failures,
        }


def zlib_crc(text: str) -> int:
    return zlib.crc32(text.encode())


