"""A small wire-compatible Elasticsearch 8 stand-in, for tests and the demo on machines where no
Elasticsearch can be installed.

Run it in its own process: ``python -m devservers.es_standin_server --port 19200`` (add
``--user name:password`` to require HTTP basic auth, as a secured cluster does).

The official ``elasticsearch`` 8.x Python client talks to it over plain HTTP. It keeps indices
and documents in memory, and implements the part of the REST API the retention package and its
tests use, with Elasticsearch 8's semantics where they matter for deleting data correctly:

- every response carries ``X-Elastic-Product: Elasticsearch`` and a Content-Length; a request
  asking for ``compatible-with`` other than 7 or 8 is refused with ``media_type_header_exception``;
- ``DELETE /{index}`` takes explicit names only (``action.destructive_requires_name``, the ES 8
  default): a wildcard or ``_all`` is refused;
- near-real-time search: writes become visible to search, count, ``_cat`` and delete-by-query
  at the next refresh (``?refresh``, ``_refresh``, or ``index.refresh_interval``, default 1s,
  applied lazily when the index is next read);
- mappings: explicit ``properties`` or dynamic mapping like ES (strings become ``text`` with a
  ``.keyword`` sub-field, ISO dates become ``date``); term-level queries on ``text`` fields are
  refused, because the stand-in does not analyze text and would silently answer wrongly;
- ``_delete_by_query`` snapshots the searchable documents, deletes them in ``scroll_size``
  batches with version checks (``conflicts=abort|proceed``), and with
  ``wait_for_completion=false`` runs as a task whose result is stored in ``.tasks``;
- a single node: indices with replicas report health ``yellow``, like a one-node cluster.

Approximations, stated rather than hidden: ``compatible-with=7`` is accepted but answered in
the 8 format; ``_cat`` sizes are the size of the JSON sources (there are no Lucene segments);
the scheduled refresh is applied when an index is next read; ``routing``, ``timeout`` and
``wait_for_active_shards`` change nothing on one node with one shard per index.

What it does not implement it refuses with HTTP 400 and a reason that says so, rather than
pretending. Queries: match_all, match_none, term, terms, range, exists, ids, bool.

Test hooks (not Elasticsearch APIs), under ``/_standin``:

- ``POST /_standin/faults`` ``{"status": 429|503, "count": N, "paths": "/prefix", "methods": [..]}``:
  the next N matching requests fail with that status and an ES error body. With
  ``"stage": "delete_by_query"`` the next N document deletes inside delete-by-query fail with
  that status (reported in the task's ``failures``, as ES reports bulk rejections), or, given
  ``"delay": seconds`` instead of a status, the next N delete-by-query batches wait that long;
  ``DELETE /_standin/faults`` clears them, ``GET`` lists them;
- ``GET /_standin/requests?since=SEQ``: the request log (method, path with query, status);
- ``GET /_standin/info``: pid and the sha256 of this file (so ``ensure()`` can spot a stale server).
"""

from __future__ import annotations

import argparse
import base64
import collections
import copy
import gzip
import hashlib
import itertools
import json
import os
import re
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ES_VERSION = "8.19.0"
LUCENE_VERSION = "9.12.2"
CLUSTER_NAME = "retention-es-standin"
SUPPORTED_COMPAT = ("7", "8")
MAX_RESULT_WINDOW = 10_000
REQUEST_LOG_SIZE = 20_000
SOURCE_SHA256 = hashlib.sha256(open(__file__, "rb").read()).hexdigest()

JSON = Any


# --------------------------------------------------------------------------- errors


class EsError(Exception):
    """An error answered the way Elasticsearch answers it: status + {"error": {...}}."""

    def __init__(self, status: int, type_: str, reason: str | None, **extra: Any) -> None:
        super().__init__(reason)
        self.status, self.type, self.reason, self.extra = status, type_, reason, extra

    def body(self) -> dict[str, Any]:
        cause = {"type": self.type, "reason": self.reason, **self.extra}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


def bad_request(reason: str, type_: str = "illegal_argument_exception") -> EsError:
    return EsError(400, type_, reason)


def unsupported(what: str) -> EsError:
    """What the stand-in does not implement: an honest 400, never a made-up answer."""
    return EsError(400, "illegal_argument_exception", f"the Elasticsearch stand-in does not implement {what}")


def index_not_found(name: str) -> EsError:
    return EsError(
        404,
        "index_not_found_exception",
        f"no such index [{name}]",
        **{"resource.type": "index_or_alias", "resource.id": name, "index": name},
    )


FAULT_BODIES = {
    429: (
        "es_rejected_execution_exception",
        "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, "
        "replica_bytes=0, all_bytes=0, coordinating_operation_bytes=0, max_coordinating_and_primary_bytes=0]",
    ),
    503: ("cluster_block_exception", "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];"),
}


# --------------------------------------------------------------------------- values


_ISO_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2})(?:T(?P<h>\d{2})(?::(?P<mi>\d{2})(?::(?P<s>\d{2})"
    r"(?:[.,](?P<f>\d{1,9}))?)?)?(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?)?)?)?$"
)
_DETECT_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(T.*)?$|^\d{4}/\d{2}/\d{2}( \d{2}:\d{2}:\d{2})?( [+-]\d{4})?$")


def parse_date(value: Any, tz: timezone | ZoneInfo = timezone.utc) -> int:
    """Epoch milliseconds of an ES date value: epoch millis (number or digits) or an ISO-8601
    string (``strict_date_optional_time``); a string without an offset is in ``tz``."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a date")
    if isinstance(value, (int, float)):
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"cannot parse {type(value).__name__} as a date")
    text = value.strip()
    if re.fullmatch(r"-?\d{5,}", text):
        return int(text)
    if text.startswith("now") or "||" in text:
        raise unsupported(f"date math [{text}]")
    m = _ISO_DATE.match(text)
    if not m:
        m2 = re.fullmatch(r"(\d{4})/(\d{2})/(\d{2})(?: (\d{2}):(\d{2}):(\d{2}))?(?: ([+-]\d{4}))?", text)
        if not m2:
            raise ValueError(
                f"failed to parse date field [{text}] with format [strict_date_optional_time||epoch_millis]"
            )
        y, mo, d, h, mi, s, off = m2.groups()
        tzinfo: Any = tz
        if off:
            tzinfo = timezone(timedelta(hours=int(off[:3]), minutes=int(off[0] + off[3:])))
        dt = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), tzinfo=tzinfo)
        return int(dt.timestamp() * 1000)
    g = m.groupdict()
    frac = (g["f"] or "0").ljust(9, "0")
    tzinfo = tz
    if g["tz"]:
        if g["tz"] == "Z":
            tzinfo = timezone.utc
        else:
            raw = g["tz"].replace(":", "")
            sign = -1 if raw[0] == "-" else 1
            tzinfo = timezone(sign * timedelta(hours=int(raw[1:3]), minutes=int(raw[3:5] or 0)))
    dt = datetime(
        int(g["y"]),
        int(g["mo"] or 1),
        int(g["d"] or 1),
        int(g["h"] or 0),
        int(g["mi"] or 0),
        int(g["s"] or 0),
        tzinfo=tzinfo,
    )
    return int(dt.timestamp()) * 1000 + int(frac[:3])


def iso_millis(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def now_ms() -> int:
    return int(time.time() * 1000)


def parse_time_value(text: str, what: str) -> float:
    """``1s``, ``500ms``, ``2m``, ``-1`` -> seconds (``-1`` -> -1)."""
    text = str(text).strip()
    if text == "-1":
        return -1.0
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(nanos|micros|ms|s|m|h|d)", text)
    if not m:
        raise bad_request(
            f"failed to parse setting [{what}] with value [{text}] as a time value: unit is missing or unrecognized"
        )
    scale = {"nanos": 1e-9, "micros": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    return float(m.group(1)) * scale


def human_bytes(n: int) -> str:
    for unit, size in (("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n}b"


# --------------------------------------------------------------------------- mappings

NUMERIC_TYPES = {"long", "integer", "short", "byte", "double", "float", "half_float", "unsigned_long"}
INTEGER_TYPES = {"long", "integer", "short", "byte", "unsigned_long"}
KEYWORD_TYPES = {"keyword", "constant_keyword"}
SUPPORTED_TYPES = NUMERIC_TYPES | KEYWORD_TYPES | {"text", "date", "boolean", "object"}
DATE_FORMATS = {
    "strict_date_optional_time",
    "epoch_millis",
    "date_optional_time",
    "strict_date_optional_time||epoch_millis",
    "date_optional_time||epoch_millis",
}


@dataclass
class FieldSpec:
    """One searchable field: its type and where its values live in ``_source``."""

    path: str
    type: str
    source_path: str
    ignore_above: int | None = None


def _check_mapping(props: dict[str, Any], prefix: str = "") -> None:
    for name, spec in props.items():
        if not isinstance(spec, dict):
            raise bad_request(f"Expected map for property [{prefix}{name}]", "mapper_parsing_exception")
        ftype = spec.get("type", "object" if "properties" in spec else None)
        if ftype not in SUPPORTED_TYPES:
            raise unsupported(f"field type [{ftype}] (field [{prefix}{name}])")
        if ftype == "date" and spec.get("format", "strict_date_optional_time||epoch_millis") not in DATE_FORMATS:
            raise unsupported(f"date format [{spec['format']}] (field [{prefix}{name}])")
        known = {
            "type",
            "properties",
            "fields",
            "ignore_above",
            "format",
            "index",
            "doc_values",
            "dynamic",
            "null_value",
            "store",
            "norms",
            "value",
        }
        extra = set(spec) - known
        if extra:
            raise unsupported(f"mapping parameters {sorted(extra)} (field [{prefix}{name}])")
        if spec.get("null_value") is not None:
            raise unsupported(f"null_value (field [{prefix}{name}])")
        if "properties" in spec:
            _check_mapping(spec["properties"], f"{prefix}{name}.")
        for sub, subspec in spec.get("fields", {}).items():
            _check_mapping({sub: subspec}, f"{prefix}{name}.")


def _flatten_mapping(props: dict[str, Any], prefix: str = "") -> dict[str, FieldSpec]:
    out: dict[str, FieldSpec] = {}
    for name, spec in props.items():
        path = prefix + name
        ftype = spec.get("type", "object" if "properties" in spec else "object")
        if ftype == "object":
            out.update(_flatten_mapping(spec.get("properties", {}), path + "."))
            continue
        out[path] = FieldSpec(path, ftype, path, spec.get("ignore_above"))
        for sub, subspec in spec.get("fields", {}).items():
            out[f"{path}.{sub}"] = FieldSpec(
                f"{path}.{sub}", subspec.get("type", "keyword"), path, subspec.get("ignore_above")
            )
    return out


def extract(obj: Any, parts: tuple[str, ...]) -> Iterator[Any]:
    """Leaf values at a dotted path, through nested objects, dotted keys and arrays."""
    if not parts:
        if isinstance(obj, list):
            for item in obj:
                yield from extract(item, ())
        elif obj is not None and not isinstance(obj, dict):
            yield obj
        return
    if isinstance(obj, list):
        for item in obj:
            yield from extract(item, parts)
        return
    if not isinstance(obj, dict):
        return
    for i in range(1, len(parts) + 1):
        key = ".".join(parts[:i])
        if key in obj:
            yield from extract(obj[key], parts[i:])


def _number(value: Any) -> float:
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise ValueError("not a number")
    return float(value)


def keyword_of(value: Any) -> str:
    """The indexed form of a scalar in a keyword field (JSON true -> "true", 12 -> "12")."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


# --------------------------------------------------------------------------- documents and indices


@dataclass(slots=True)
class Doc:
    id: str
    source: dict[str, Any]
    seq_no: int
    version: int
    size: int


@dataclass
class Index:
    name: str
    settings: dict[str, str]
    mappings: dict[str, Any]
    uuid: str = field(default_factory=lambda: base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22])
    live: dict[str, Doc] = field(default_factory=dict)  # what GET /_doc sees (real-time)
    searchable: dict[str, Doc] = field(default_factory=dict)  # what search/count see (last refresh)
    pending: dict[str, Doc | None] = field(default_factory=dict)  # changes since the last refresh
    seq_no: int = -1
    deleted_docs: int = 0
    bytes: int = 0
    closed: bool = False
    last_refresh: float = field(default_factory=time.monotonic)
    _fields: dict[str, FieldSpec] | None = None

    @property
    def creation_date(self) -> int:
        return int(self.settings["index.creation_date"])

    @property
    def hidden(self) -> bool:
        return self.settings.get("index.hidden") == "true" or self.name.startswith(".")

    @property
    def shards(self) -> int:
        return int(self.settings.get("index.number_of_shards", "1"))

    @property
    def replicas(self) -> int:
        return int(self.settings.get("index.number_of_replicas", "1"))

    @property
    def health(self) -> str:
        return "green" if self.replicas == 0 else "yellow"  # one node: replicas never allocate

    @property
    def fields(self) -> dict[str, FieldSpec]:
        if self._fields is None:
            self._fields = _flatten_mapping(self.mappings.get("properties", {}))
        return self._fields

    def refresh(self) -> None:
        for doc_id, doc in self.pending.items():
            if doc is None:
                if self.searchable.pop(doc_id, None) is not None:
                    self.deleted_docs += 1
            else:
                if doc_id in self.searchable:
                    self.deleted_docs += 1  # an update marks the old copy deleted, as Lucene does
                self.searchable[doc_id] = doc
        self.pending.clear()
        self.last_refresh = time.monotonic()

    def maybe_refresh(self) -> None:
        """Apply the scheduled refresh (``index.refresh_interval``) lazily, when the index is read."""
        if not self.pending:
            return
        interval = parse_time_value(self.settings.get("index.refresh_interval", "1s"), "index.refresh_interval")
        if interval >= 0 and time.monotonic() - self.last_refresh >= interval:
            self.refresh()

    # -- writing

    def put(self, doc_id: str, source: dict[str, Any], *, op_type: str = "index") -> tuple[Doc, str]:
        if self.closed:
            raise EsError(400, "index_closed_exception", "closed", index=self.name)
        old = self.live.get(doc_id)
        if old is not None and op_type == "create":
            raise EsError(
                409,
                "version_conflict_engine_exception",
                f"[{doc_id}]: version conflict, document already exists (current version [{old.version}])",
                index=self.name,
            )
        self._map_document(doc_id, source)
        self.seq_no += 1
        size = len(json.dumps(source, separators=(",", ":")))
        doc = Doc(doc_id, source, self.seq_no, (old.version + 1) if old else 1, size)
        self.bytes += size - (old.size if old else 0)
        self.live[doc_id] = doc
        self.pending[doc_id] = doc
        return doc, "updated" if old else "created"

    def delete(self, doc_id: str, *, if_seq_no: int | None = None) -> Doc | None:
        if self.closed:
            raise EsError(400, "index_closed_exception", "closed", index=self.name)
        old = self.live.get(doc_id)
        if if_seq_no is not None and (old is None or old.seq_no != if_seq_no):
            current = "document does not exist" if old is None else f"current document has seqNo [{old.seq_no}]"
            raise EsError(
                409,
                "version_conflict_engine_exception",
                f"[{doc_id}]: version conflict, required seqNo [{if_seq_no}], {current}",
                index=self.name,
            )
        if old is None:
            return None
        self.seq_no += 1
        del self.live[doc_id]
        self.bytes -= old.size
        self.pending[doc_id] = None
        return old

    def _map_document(self, doc_id: str, source: dict[str, Any]) -> None:
        """Check a document against the mapping, adding dynamic fields like ES does."""
        dynamic = str(self.mappings.get("dynamic", "true")).lower()
        changed = self._map_object(doc_id, source, self.mappings.setdefault("properties", {}), "", dynamic)
        if changed:
            self._fields = None

    def _map_object(self, doc_id: str, obj: dict[str, Any], props: dict[str, Any], prefix: str, dynamic: str) -> bool:
        changed = False
        for key, value in obj.items():
            if "." in key:
                head, _, rest = key.partition(".")
                changed |= self._map_object(doc_id, {head: {rest: value}}, props, prefix, dynamic)
                continue
            path = prefix + key
            spec = props.get(key)
            values = value if isinstance(value, list) else [value]
            values = [v for v in values if v is not None]
            if not values:
                continue
            if spec is None:
                if dynamic == "strict":
                    raise EsError(
                        400,
                        "strict_dynamic_mapping_exception",
                        f"[1:2] mapping set to strict, dynamic introduction of [{key}] within [_doc] is not allowed",
                    )
                if dynamic == "false":
                    continue  # kept in _source, not searchable: exactly what ES does
                spec = self._dynamic_spec(values[0])
                props[key] = spec
                changed = True
            ftype = spec.get("type", "object")
            for item in values:
                if ftype == "object":
                    if not isinstance(item, dict):
                        raise EsError(
                            400,
                            "document_parsing_exception",
                            f"[1:2] object mapping for [{path}] tried to parse field [{key}] as object, "
                            "but found a concrete value",
                        )
                    sub_dynamic = str(spec.get("dynamic", dynamic)).lower()
                    changed |= self._map_object(
                        doc_id, item, spec.setdefault("properties", {}), path + ".", sub_dynamic
                    )
                else:
                    self._check_value(doc_id, path, ftype, spec, item)
        return changed

    @staticmethod
    def _dynamic_spec(value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return {"properties": {}}
        if isinstance(value, bool):
            return {"type": "boolean"}
        if isinstance(value, int):
            return {"type": "long"}
        if isinstance(value, float):
            return {"type": "float"}
        if isinstance(value, str) and _DETECT_DATE.match(value):
            try:
                parse_date(value)
                return {"type": "date"}
            except (ValueError, EsError):
                pass
        return {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}

    @staticmethod
    def _check_value(doc_id: str, path: str, ftype: str, spec: dict[str, Any], value: Any) -> None:
        def fail() -> EsError:
            preview = json.dumps(value)[:40]
            return EsError(
                400,
                "document_parsing_exception",
                f"[1:2] failed to parse field [{path}] of type [{ftype}] in document with id '{doc_id}'. "
                f"Preview of field's value: '{preview}'",
            )

        if isinstance(value, dict):
            raise fail()
        if ftype in NUMERIC_TYPES:
            try:
                _number(value)
            except (TypeError, ValueError):
                raise fail() from None
        elif ftype == "date":
            try:
                parse_date(value)
            except (ValueError, EsError):
                raise fail() from None
        elif ftype == "boolean":
            if value not in (True, False, "true", "false", ""):
                raise fail()


def _flatten_settings(raw: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if not isinstance(raw, dict):
        raise bad_request("settings must be an object", "parse_exception")
    for key, value in raw.items():
        if isinstance(value, dict):
            out.update(_flatten_settings(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = "true" if value is True else "false" if value is False else str(value)
    return {k if k.startswith("index.") else f"index.{k}": v for k, v in out.items()}


SETTABLE = {
    "index.number_of_shards",
    "index.number_of_replicas",
    "index.creation_date",
    "index.refresh_interval",
    "index.max_result_window",
    "index.hidden",
}


def validate_index_name(name: str) -> None:
    def invalid(why: str) -> EsError:
        return EsError(
            400,
            "invalid_index_name_exception",
            f"Invalid index name [{name}], {why}",
            index=name,
            **{"index_uuid": "_na_"},
        )

    if name != name.lower():
        raise invalid("must be lowercase")
    bad = [c for c in '\\/*?"<>| ,#:' if c in name]
    if bad:
        raise invalid(f"must not contain the following characters [{' '.join(bad)}]")
    if name[:1] in ("-", "_", "+"):
        raise invalid("must not start with '_', '-', or '+'")
    if name in (".", ".."):
        raise invalid("must not be '.' or '..'")
    if len(name.encode()) > 255:
        raise invalid("index name is too long, (" + str(len(name.encode())) + " > 255)")


# --------------------------------------------------------------------------- queries

Predicate = Callable[[Doc], bool]
TERM_LEVEL_QUERIES = {"term", "terms", "range", "exists", "ids"}
KNOWN_ES_QUERIES = {
    "match",
    "match_phrase",
    "match_phrase_prefix",
    "multi_match",
    "query_string",
    "simple_query_string",
    "prefix",
    "wildcard",
    "regexp",
    "fuzzy",
    "nested",
    "has_child",
    "has_parent",
    "geo_distance",
    "geo_bounding_box",
    "script",
    "script_score",
    "function_score",
    "dis_max",
    "constant_score",
    "boosting",
    "more_like_this",
    "terms_set",
    "intervals",
    "combined_fields",
    "knn",
    "percolate",
    "span_term",
}


def compile_query(query: Any, index: Index) -> Predicate:
    """Turn an ES query into a predicate over ``_source`` for one index (its mapping decides types)."""
    if not isinstance(query, dict) or len(query) != 1:
        raise bad_request(
            "query malformed, must start with start_object"
            if not isinstance(query, dict)
            else "[_na] query malformed, no start_object after query name",
            "parsing_exception",
        )
    ((kind, body),) = query.items()
    if kind == "match_all":
        _only(body, {"boost", "_name"}, kind)
        return lambda doc: True
    if kind == "match_none":
        return lambda doc: False
    if kind == "bool":
        return _compile_bool(body, index)
    if kind in ("term", "terms", "range", "exists"):
        return _compile_field_query(kind, body, index)
    if kind == "ids":
        _only(body, {"values", "boost", "_name"}, kind)
        ids = {str(v) for v in body.get("values", [])}
        return lambda doc: doc.id in ids
    if kind in KNOWN_ES_QUERIES:
        raise unsupported(
            f"the [{kind}] query (supported: match_all, match_none, bool, term, terms, range, exists, ids)"
        )
    raise bad_request(f"unknown query [{kind}]", "parsing_exception")


def _only(body: Any, allowed: set[str], kind: str) -> None:
    if not isinstance(body, dict):
        raise bad_request(f"[{kind}] query malformed, no start_object after query name", "parsing_exception")
    extra = set(body) - allowed
    if extra:
        raise bad_request(f"[{kind}] query does not support [{sorted(extra)[0]}]", "parsing_exception")


def _clauses(body: dict[str, Any], key: str) -> list[Any]:
    value = body.get(key, [])
    return value if isinstance(value, list) else [value]


def _compile_bool(body: Any, index: Index) -> Predicate:
    _only(body, {"must", "filter", "should", "must_not", "minimum_should_match", "boost", "_name"}, "bool")
    must = [compile_query(q, index) for q in _clauses(body, "must") + _clauses(body, "filter")]
    must_not = [compile_query(q, index) for q in _clauses(body, "must_not")]
    should = [compile_query(q, index) for q in _clauses(body, "should")]
    msm_raw = body.get("minimum_should_match")
    if msm_raw is None:
        msm = 0 if must else (1 if should else 0)
    elif isinstance(msm_raw, int) or (isinstance(msm_raw, str) and re.fullmatch(r"-?\d+", msm_raw)):
        msm = int(msm_raw)
        if msm < 0:
            msm = max(0, len(should) + msm)
    else:
        raise unsupported(f"minimum_should_match [{msm_raw}] (only whole numbers)")

    if not must_not and not msm:

        def conjunction(doc: Doc) -> bool:
            for p in must:
                if not p(doc):
                    return False
            return True

        return conjunction

    def predicate(doc: Doc) -> bool:
        if not all(p(doc) for p in must):
            return False
        if any(p(doc) for p in must_not):
            return False
        if msm:
            return sum(1 for p in should if p(doc)) >= msm
        return True

    return predicate


def _compile_field_query(kind: str, body: Any, index: Index) -> Predicate:
    if kind == "exists":
        _only(body, {"field", "boost", "_name"}, kind)
        name = body.get("field")
        spec = index.fields.get(str(name))
        if spec is None:
            return lambda doc: False
        parts = tuple(spec.source_path.split("."))
        return lambda doc: any(True for _ in extract(doc.source, parts))
    if not isinstance(body, dict):
        raise bad_request(f"[{kind}] query malformed", "parsing_exception")
    names = [k for k in body if k not in ("boost", "_name")]
    if len(names) != 1:
        raise bad_request(
            f"[{kind}] query doesn't support multiple fields, found [{', '.join(names)}]", "parsing_exception"
        )
    name = names[0]
    arg = body[name]
    spec = index.fields.get(name)
    if spec is None:
        return lambda doc: False  # an unmapped field matches nothing, as in ES
    if spec.type == "text":
        raise unsupported(
            f"{kind} queries on text field [{name}]: the stand-in does not analyze text, and a term-level query "
            f"on an analyzed field would miss values in Elasticsearch too; query a keyword field"
        )
    parts = tuple(spec.source_path.split("."))
    conv = _converter(spec)

    def values(doc: Doc) -> Iterator[Any]:
        if len(parts) == 1:  # the common case, without the generic walk
            raw_value = doc.source.get(parts[0])
            raws: Iterable[Any] = (
                raw_value
                if isinstance(raw_value, list)
                else ()
                if raw_value is None or isinstance(raw_value, dict)
                else (raw_value,)
            )
        else:
            raws = extract(doc.source, parts)
        for raw in raws:
            if raw is None or isinstance(raw, (dict, list)):
                continue
            try:
                converted = conv(raw)
            except (ValueError, TypeError, EsError):
                continue
            if converted is not None:
                yield converted

    if kind == "term":
        if isinstance(arg, dict):
            _only(arg, {"value", "boost", "case_insensitive", "_name"}, "term")
            if "value" not in arg:
                raise bad_request("[term] query requires a value", "parsing_exception")
            insensitive = bool(arg.get("case_insensitive", False))
            arg = arg["value"]
        else:
            insensitive = False
        wanted = _convert_query_value(conv, arg, name)
        if spec.type in KEYWORD_TYPES and len(parts) == 1 and not insensitive:
            key = parts[0]

            def keyword_term(doc: Doc) -> bool:  # the hot path of delete-by-query: one plain string
                value = doc.source.get(key)
                if value.__class__ is str:
                    return value == wanted
                return any(v == wanted for v in values(doc))

            return keyword_term
        if insensitive and isinstance(wanted, str):
            wanted_cf = wanted.casefold()
            return lambda doc: any(isinstance(v, str) and v.casefold() == wanted_cf for v in values(doc))
        return lambda doc: any(v == wanted for v in values(doc))
    if kind == "terms":
        if not isinstance(arg, list):
            raise unsupported("terms lookup (give a list of values)")
        wanted_set = {_convert_query_value(conv, v, name) for v in arg}
        return lambda doc: any(v in wanted_set for v in values(doc))
    # range
    if not isinstance(arg, dict):
        raise bad_request("[range] query malformed, no start_object after field name", "parsing_exception")
    _only(arg, {"gt", "gte", "lt", "lte", "format", "time_zone", "boost", "relation", "_name"}, "range")
    if arg.get("format") not in (None, *DATE_FORMATS):
        raise unsupported(f"range format [{arg['format']}]")
    if arg.get("relation") not in (None, "intersects", "INTERSECTS"):
        raise unsupported(f"range relation [{arg['relation']}]")
    tz: Any = timezone.utc
    if arg.get("time_zone"):
        try:
            tz = _zone(str(arg["time_zone"]))
        except ValueError:
            raise bad_request(f"unknown time zone [{arg['time_zone']}]") from None
    range_conv = (lambda v: parse_date(v, tz)) if spec.type == "date" else conv
    bounds = [
        (op, _convert_query_value(range_conv, arg[op], name))
        for op in ("gt", "gte", "lt", "lte")
        if arg.get(op) is not None
    ]
    ops = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}
    checks = [(ops[op], bound) for op, bound in bounds]
    return lambda doc: any(all(check(v, bound) for check, bound in checks) for v in values(doc))


def _zone(name: str) -> Any:
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", name)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(name) from None


def _converter(spec: FieldSpec) -> Callable[[Any], Any]:
    if spec.type in KEYWORD_TYPES:
        limit = spec.ignore_above

        def keyword(v: Any) -> str | None:
            s = keyword_of(v)
            return None if limit is not None and len(s) > limit else s

        return keyword
    if spec.type in INTEGER_TYPES:
        return lambda v: int(_number(v))
    if spec.type in NUMERIC_TYPES:
        return _number
    if spec.type == "date":
        return parse_date
    if spec.type == "boolean":
        return lambda v: v in (True, "true")
    raise unsupported(f"queries on field type [{spec.type}]")


def _convert_query_value(conv: Callable[[Any], Any], value: Any, name: str) -> Any:
    if isinstance(value, (dict, list)):
        raise bad_request(
            f"[term] query does not support array or object values for field [{name}]", "parsing_exception"
        )
    try:
        return conv(value)
    except EsError:
        raise
    except (ValueError, TypeError):
        raise bad_request(f'failed to create query: For input string: "{value}"', "query_shard_exception") from None


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
                    if regex.match(name)
                    and (("closed" in expand) if ix.closed else ("open" in expand))
                    and (not ix.hidden or "hidden" in expand or pattern.startswith("."))
                ]
                for ix in matches:
                    if exclude:
                        chosen.pop(ix.name, None)
                    else:
                        chosen[ix.name] = ix
                continue
            ix = self.indices.get(pattern)
            if ix is None:
                if exclude:
                    continue
                if ignore_unavailable:
                    continue
                raise index_not_found(pattern)
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
        if body.get("aliases"):
            raise unsupported("aliases")
        settings = _flatten_settings(body.get("settings") or {})
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
        _check_mapping(mappings.get("properties", {}))
        ix = Index(name=name, settings=settings, mappings=mappings)
        ix.settings["index.uuid"] = ix.uuid
        self.indices[name] = ix
        return ix

    def index_for_write(self, name: str) -> Index:
        """The index a write goes to, created on the fly (``action.auto_create_index`` defaults to true)."""
        ix = self.indices.get(name)
        if ix is None:
            ix = self.create_index(name, {})
        return ix

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
        delay = 0.0
        fault = self.cluster.take_fault("delete_by_query_delay")  # slows the next N batches
        if fault:
            delay = fault.delay
        if self.rps > 0:
            delay = max(delay, len(batch) / self.rps)
        if delay:
            time.sleep(delay)
            self.totals["throttled_millis"] += int(delay * 1000)
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


# --------------------------------------------------------------------------- HTTP


class Request:
    def __init__(self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes) -> None:
        self.method, self.path, self.query, self.headers, self.raw = method, path, query, headers, body
        self.used: set[str] = set()

    def param(self, name: str, default: str | None = None) -> str | None:
        self.used.add(name)
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.param(name)
        if value is None:
            return default
        if value in ("", "true"):
            return True
        if value == "false":
            return False
        raise bad_request(f"Failed to parse value [{value}] as only [true] or [false] are allowed.")

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.param(name)
        if value is None:
            return default
        if not re.fullmatch(r"-?\d+", value):
            raise bad_request(f"Failed to parse int parameter [{name}] with value [{value}]")
        return int(value)

    def check_params(self, also: Iterable[str] = ()) -> None:
        allowed = set(self.used) | set(also) | {"pretty", "human", "error_trace"}
        for name in self.query:
            if name not in allowed:
                if name == "filter_path":
                    raise unsupported("filter_path")
                raise bad_request(f"request [{self.path}] contains unrecognized parameter: [{name}]")

    def json(self, *, required: bool = False) -> Any:
        if not self.raw.strip():
            if required:
                raise bad_request("request body is required", "parse_exception")
            return {}
        try:
            return json.loads(self.raw)
        except ValueError as exc:
            raise bad_request(f"Failed to parse content to map: {exc}", "parse_exception") from None


def _media_types(header: str | None) -> list[tuple[str, dict[str, str]]]:
    out = []
    for part in (header or "").split(","):
        part = part.strip()
        if not part:
            continue
        bits = [b.strip() for b in part.split(";")]
        params = {}
        for b in bits[1:]:
            key, _, value = b.partition("=")
            params[key.strip().lower()] = value.strip()
        out.append((bits[0].lower(), params))
    return out


def check_media_types(headers: Any, has_body: bool) -> str | None:
    """The compatible-with version requested, or None; raise like ES 8 on an unsupported one."""
    accept, content = headers.get("Accept"), headers.get("Content-Type")
    versions = {}
    for header_name, value in (("Accept", accept), ("Content-Type", content)):
        for mime, params in _media_types(value):
            if "compatible-with" in params:
                version = params["compatible-with"]
                if not mime.startswith("application/vnd.elasticsearch+"):
                    raise _media_error(accept, content, f"Invalid media-type value on headers [{header_name}]")
                if version not in SUPPORTED_COMPAT:
                    raise _media_error(
                        accept,
                        content,
                        f"{header_name} version must be either version {' or '.join(reversed(SUPPORTED_COMPAT))}, "
                        f"but found {version}. {header_name}={value}",
                    )
                versions[header_name] = version
    if len(set(versions.values())) > 1:
        raise _media_error(
            accept,
            content,
            "A compatible version is required on both Content-Type and Accept headers "
            "if either one has requested a compatible version and the compatible versions must match.",
        )
    if has_body and content:
        mime = _media_types(content)[0][0] if _media_types(content) else ""
        if mime.replace("vnd.elasticsearch+", "") not in ("application/json", "application/x-ndjson"):
            raise EsError(406, "media_type_header_exception", f"Content-Type header [{content}] is not supported")
    return next(iter(versions.values()), None)


def _media_error(accept: str | None, content: str | None, cause: str) -> EsError:
    err = EsError(400, "media_type_header_exception", "Invalid media-type value on headers [Accept, Content-Type]")
    err.extra["caused_by"] = {"type": "status_exception", "reason": cause}
    return err


Response = tuple[int, Any, dict[str, str]]


class Router:
    def __init__(self) -> None:
        self.routes: list[tuple[set[str], re.Pattern[str], Callable[..., Response]]] = []

    def add(self, methods: str, pattern: str, fn: Callable[..., Response]) -> None:
        # An index expression never starts with '_' (except _all), so /_bulk is never an index.
        regex = "^" + pattern.replace("{index}", r"(?P<index>_all|[^/_][^/]*)")
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex) + "$"
        self.routes.append((set(methods.split("|")), re.compile(regex), fn))

    def dispatch(self, req: Request) -> Response:
        for methods, regex, fn in self.routes:
            m = regex.match(req.path)
            if m and req.method in methods:
                return fn(req, **{k: unquote(v) for k, v in m.groupdict().items()})
        # Elasticsearch may well serve it; the stand-in does not, and says so.
        raise unsupported(f"[{req.method} {req.path}] (see devservers/es_standin_server.py for what it serves)")


ROUTER = Router()


def route(methods: str, pattern: str) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    def register(fn: Callable[..., Response]) -> Callable[..., Response]:
        ROUTER.add(methods, pattern, fn)
        return fn

    return register


def ok(body: Any, status: int = 200, **headers: str) -> Response:
    return status, body, headers


# -- root, cluster


@route("GET|HEAD", "/")
def info(req: Request) -> Response:
    req.check_params()
    return ok(
        {
            "name": "es-standin",
            "cluster_name": CLUSTER_NAME,
            "cluster_uuid": CLUSTER.cluster_uuid,
            "version": {
                "number": ES_VERSION,
                "build_flavor": "default",
                "build_type": "standin",
                "build_hash": SOURCE_SHA256[:40],
                "build_date": "2026-01-01T00:00:00.000Z",
                "build_snapshot": False,
                "lucene_version": LUCENE_VERSION,
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            },
            "tagline": "You Know, for Search",
        }
    )


@route("GET", "/_cluster/health")
def cluster_health(req: Request) -> Response:
    req.check_params(also={"timeout", "master_timeout", "wait_for_status", "local"})
    with CLUSTER.lock:
        indices = list(CLUSTER.indices.values())
    yellow = any(ix.health == "yellow" for ix in indices)
    shards = sum(ix.shards for ix in indices)
    return ok(
        {
            "cluster_name": CLUSTER_NAME,
            "status": "yellow" if yellow else "green",
            "timed_out": False,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
            "active_primary_shards": shards,
            "active_shards": shards,
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": sum(ix.shards * ix.replicas for ix in indices),
            "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0,
        }
    )


# -- indices


def _index_options(req: Request, *, expand_default: str = "open") -> dict[str, Any]:
    return {
        "ignore_unavailable": req.flag("ignore_unavailable"),
        "allow_no_indices": req.flag("allow_no_indices", True),
        "expand_wildcards": req.param("expand_wildcards", expand_default) or expand_default,
    }


@route("PUT", "/{index}")
def create_index(req: Request, index: str) -> Response:
    req.param("timeout")
    req.param("master_timeout")
    req.param("wait_for_active_shards")
    req.check_params()
    body = req.json()
    with CLUSTER.lock:
        ix = CLUSTER.create_index(index, body)
    return ok({"acknowledged": True, "shards_acknowledged": True, "index": ix.name})


@route("HEAD", "/{index}")
def index_exists(req: Request, index: str) -> Response:
    opts = _index_options(req)
    req.param("local")
    req.param("include_defaults")
    req.param("flat_settings")
    req.check_params()
    with CLUSTER.lock:
        try:
            found = CLUSTER.resolve(index, **opts)
        except EsError:
            found = []
    return ok(None, 200 if found else 404)


@route("GET", "/{index}")
def get_index(req: Request, index: str) -> Response:
    opts = _index_options(req)
    flat = req.flag("flat_settings")
    req.check_params(also={"master_timeout", "include_defaults", "local"})
    with CLUSTER.lock:
        return ok(
            {
                ix.name: {"aliases": {}, "mappings": copy.deepcopy(ix.mappings), "settings": _settings_view(ix, flat)}
                for ix in CLUSTER.resolve(index, **opts)
            }
        )


@route("DELETE", "/{index}")
def delete_index(req: Request, index: str) -> Response:
    ignore_unavailable = req.flag("ignore_unavailable")
    req.flag("allow_no_indices", True)
    expand = req.param("expand_wildcards")
    req.param("timeout")
    req.param("master_timeout")
    req.check_params()
    names = [n for n in index.split(",") if n]
    # action.destructive_requires_name=true (the ES 8 default): explicit names only.
    if (
        any("*" in n or n == "_all" or n.startswith("-") for n in names)
        or not names
        or expand not in (None, "open", "closed", "open,closed")
    ):
        raise bad_request("Wildcard expressions or all indices are not allowed")
    with CLUSTER.lock:
        missing = [n for n in names if n not in CLUSTER.indices]
        if missing and not ignore_unavailable:
            raise index_not_found(missing[0])
        for name in names:
            CLUSTER.indices.pop(name, None)
    return ok({"acknowledged": True})


def _settings_view(ix: Index, flat: bool) -> dict[str, Any]:
    settings = {**ix.settings, "index.version.created": "8521000"}
    if flat:
        return dict(sorted(settings.items()))
    nested: dict[str, Any] = {}
    for key, value in sorted(settings.items()):
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


@route("GET", "/{index}/_settings")
def get_settings(req: Request, index: str) -> Response:
    opts = _index_options(req, expand_default="open,closed")
    flat = req.flag("flat_settings")
    req.param("local")
    req.param("master_timeout")
    if req.param("include_defaults") not in (None, "false"):
        raise unsupported("include_defaults")
    req.check_params()
    with CLUSTER.lock:
        return ok({ix.name: {"settings": _settings_view(ix, flat)} for ix in CLUSTER.resolve(index, **opts)})


@route("GET", "/{index}/_mapping")
def get_mapping(req: Request, index: str) -> Response:
    opts = _index_options(req, expand_default="open")
    req.param("local")
    req.param("master_timeout")
    req.check_params()
    with CLUSTER.lock:
        return ok({ix.name: {"mappings": copy.deepcopy(ix.mappings)} for ix in CLUSTER.resolve(index, **opts)})


@route("POST", "/{index}/_close")
def close_index(req: Request, index: str) -> Response:
    req.check_params(also={"timeout", "master_timeout", "wait_for_active_shards"})
    if "*" in index or index == "_all":
        raise bad_request("Wildcard expressions or all indices are not allowed")
    with CLUSTER.lock:
        found = CLUSTER.resolve(index)
        for ix in found:
            ix.refresh()
            ix.closed = True
    return ok(
        {"acknowledged": True, "shards_acknowledged": True, "indices": {ix.name: {"closed": True} for ix in found}}
    )


@route("POST", "/{index}/_open")
def open_index(req: Request, index: str) -> Response:
    req.check_params(also={"timeout", "master_timeout", "wait_for_active_shards"})
    with CLUSTER.lock:
        for ix in CLUSTER.resolve(index, expand_wildcards="closed"):
            ix.closed = False
    return ok({"acknowledged": True, "shards_acknowledged": True})


@route("POST|GET", "/_refresh")
@route("POST|GET", "/{index}/_refresh")
def refresh(req: Request, index: str | None = None) -> Response:
    opts = _index_options(req)
    req.check_params()
    with CLUSTER.lock:
        found = CLUSTER.resolve(index, **opts, skip_closed=True)
        for ix in found:
            ix.refresh()
        shards = sum(ix.shards * (1 + ix.replicas) for ix in found)
        ok_shards = sum(ix.shards for ix in found)
    return ok({"_shards": {"total": shards, "successful": ok_shards, "failed": 0}})


# -- _cat


CAT_COLUMNS = {
    "health": ("h",),
    "status": ("s",),
    "index": ("i", "idx"),
    "uuid": ("id", "uuid"),
    "pri": ("p", "shards.primary"),
    "rep": ("r", "shards.replica"),
    "docs.count": ("dc", "docsCount"),
    "docs.deleted": ("dd", "docsDeleted"),
    "creation.date": ("cd",),
    "creation.date.string": ("cds",),
    "store.size": ("ss", "storeSize"),
    "pri.store.size": (),
    "dataset.size": (),
}
CAT_DEFAULT = [
    "health",
    "status",
    "index",
    "uuid",
    "pri",
    "rep",
    "docs.count",
    "docs.deleted",
    "store.size",
    "pri.store.size",
    "dataset.size",
]
CAT_ALIASES = {alias: name for name, aliases in CAT_COLUMNS.items() for alias in aliases}


def _cat_row(ix: Index, bytes_unit: str | None) -> dict[str, Any]:
    ix.maybe_refresh()

    def size(n: int) -> str:
        if bytes_unit is None:
            return human_bytes(n)
        return str(n // {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}[bytes_unit])

    return {
        "health": ix.health,
        "status": "close" if ix.closed else "open",
        "index": ix.name,
        "uuid": ix.uuid,
        "pri": str(ix.shards),
        "rep": str(ix.replicas),
        "docs.count": None if ix.closed else str(len(ix.searchable)),
        "docs.deleted": None if ix.closed else str(ix.deleted_docs),
        "creation.date": str(ix.creation_date),
        "creation.date.string": iso_millis(ix.creation_date),
        # The size of the JSON sources: the stand-in has no Lucene segments to measure.
        "store.size": None if ix.closed else size(ix.bytes),
        "pri.store.size": None if ix.closed else size(ix.bytes),
        "dataset.size": None if ix.closed else size(ix.bytes),
    }


@route("GET", "/_cat/indices")
@route("GET", "/_cat/indices/{index}")
def cat_indices(req: Request, index: str | None = None) -> Response:
    fmt = req.param("format", "txt")
    if fmt not in ("json", "txt", "text"):
        raise unsupported(f"_cat format [{fmt}]")
    columns_raw = req.param("h")
    sort_raw = req.param("s")
    verbose = req.flag("v")
    bytes_unit = req.param("bytes")
    if bytes_unit not in (None, "b", "kb", "mb", "gb"):
        raise unsupported(f"bytes=[{bytes_unit}]")
    health = req.param("health")
    req.param("pri")
    req.param("local")
    req.param("master_timeout")
    req.param("time")
    req.param("include_unloaded_segments")
    expand = req.param("expand_wildcards", "all") or "all"
    req.check_params()
    columns = CAT_DEFAULT
    if columns_raw:
        columns = []
        for col in columns_raw.split(","):
            name = CAT_ALIASES.get(col, col)
            if name not in CAT_COLUMNS:
                raise unsupported(f"the _cat/indices column [{col}]")
            columns.append(name)
    with CLUSTER.lock:
        rows = [_cat_row(ix, bytes_unit) for ix in CLUSTER.resolve(index, expand_wildcards=expand)]
    if health:
        rows = [r for r in rows if r["health"] == health]
    if sort_raw:
        for spec in reversed(sort_raw.split(",")):
            col, _, order = spec.partition(":")
            col = CAT_ALIASES.get(col, col)
            if col not in CAT_COLUMNS:
                raise unsupported(f"sorting _cat/indices by [{col}]")
            numeric = col in ("docs.count", "docs.deleted", "creation.date", "pri", "rep")
            rows.sort(
                key=lambda r: (r[col] is None, int(r[col]) if numeric and r[col] is not None else (r[col] or "")),
                reverse=order == "desc",
            )
    rows = [{c: r[c] for c in columns} for r in rows]
    if fmt == "json":
        return ok(rows)
    table = ([columns] if verbose else []) + [[("" if r[c] is None else str(r[c])) for c in columns] for r in rows]
    widths = [max((len(line[i]) for line in table), default=0) for i in range(len(columns))]
    text = "".join(" ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() + "\n" for line in table)
    return 200, text, {"Content-Type": "text/plain; charset=UTF-8"}


# -- documents


def _refresh_param(req: Request) -> bool:
    value = req.param("refresh")
    if value is None or value == "false":
        return False
    if value in ("", "true", "wait_for"):
        return True  # wait_for: visible on return, which a refresh gives too
    raise bad_request(f"Unknown value for refresh: [{value}].")


def _write_response(ix: Index, doc: Doc, result: str, forced_refresh: bool) -> dict[str, Any]:
    body = {
        "_index": ix.name,
        "_id": doc.id,
        "_version": doc.version,
        "result": result,
        "_shards": {"total": 1 + ix.replicas, "successful": 1, "failed": 0},
        "_seq_no": doc.seq_no,
        "_primary_term": 1,
    }
    if forced_refresh:
        body["forced_refresh"] = True
    return body


def _new_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes[:15]).decode()


@route("PUT|POST", "/{index}/_doc/{doc_id}")
@route("POST", "/{index}/_doc")
@route("PUT|POST", "/{index}/_create/{doc_id}")
def index_doc(req: Request, index: str, doc_id: str | None = None) -> Response:
    op_type = req.param("op_type", "create" if "/_create/" in req.path else "index")
    if op_type not in ("index", "create"):
        raise bad_request(f"opType must be 'create' or 'index', found: [{op_type}]")
    refresh_now = _refresh_param(req)
    for unsupported_param in ("if_seq_no", "if_primary_term", "version", "version_type", "pipeline"):
        if req.param(unsupported_param) is not None:
            raise unsupported(f"the [{unsupported_param}] parameter")
    req.param("routing")  # one shard: routing changes nothing
    req.param("timeout")
    req.param("wait_for_active_shards")
    req.param("require_alias")
    req.check_params()
    source = req.json(required=True)
    if not isinstance(source, dict):
        raise bad_request("failed to parse, document is empty", "document_parsing_exception")
    with CLUSTER.lock:
        ix = CLUSTER.index_for_write(index)
        doc, result = ix.put(doc_id or _new_id(), source, op_type=op_type)
        if refresh_now:
            ix.refresh()
    return ok(_write_response(ix, doc, result, refresh_now), 201 if result == "created" else 200)


@route("GET|HEAD", "/{index}/_doc/{doc_id}")
def get_doc(req: Request, index: str, doc_id: str) -> Response:
    req.param("realtime")
    req.param("routing")
    req.param("preference")
    if req.param("_source_includes") or req.param("_source_excludes") or req.param("stored_fields"):
        raise unsupported("source filtering on GET")
    req.check_params()
    with CLUSTER.lock:
        ix = CLUSTER.indices.get(index)
        if ix is None:
            raise index_not_found(index)
        doc = ix.live.get(doc_id)
        if doc is None:
            return ok({"_index": index, "_id": doc_id, "found": False}, 404)
        return ok(
            {
                "_index": index,
                "_id": doc_id,
                "_version": doc.version,
                "_seq_no": doc.seq_no,
                "_primary_term": 1,
                "found": True,
                "_source": copy.deepcopy(doc.source),
            }
        )


@route("DELETE", "/{index}/_doc/{doc_id}")
def delete_doc(req: Request, index: str, doc_id: str) -> Response:
    refresh_now = _refresh_param(req)
    if_seq_no = req.integer("if_seq_no")
    req.param("if_primary_term")
    req.param("routing")
    req.param("timeout")
    req.param("wait_for_active_shards")
    req.check_params()
    with CLUSTER.lock:
        ix = CLUSTER.indices.get(index)
        if ix is None:
            raise index_not_found(index)
        old = ix.delete(doc_id, if_seq_no=if_seq_no)
        if refresh_now:
            ix.refresh()
    result = "deleted" if old else "not_found"
    body = {
        "_index": index,
        "_id": doc_id,
        "_version": (old.version + 1) if old else 1,
        "result": result,
        "_shards": {"total": 1 + ix.replicas, "successful": 1, "failed": 0},
        "_seq_no": ix.seq_no,
        "_primary_term": 1,
    }
    return ok(body, 200 if old else 404)


@route("POST|PUT", "/_bulk")
@route("POST|PUT", "/{index}/_bulk")
def bulk(req: Request, index: str | None = None) -> Response:
    refresh_now = _refresh_param(req)
    req.param("routing")
    req.param("timeout")
    req.param("wait_for_active_shards")
    req.param("require_alias")
    if req.param("pipeline") is not None:
        raise unsupported("ingest pipelines")
    req.check_params()
    started = time.monotonic()
    lines = req.raw.split(b"\n")
    items: list[dict[str, Any]] = []
    touched: dict[str, Index] = {}
    errors = False
    i = 0
    with CLUSTER.lock:
        while i < len(lines):
            line = lines[i].strip()
            i += 1
            if not line:
                continue
            try:
                action_doc = json.loads(line)
            except ValueError:
                raise bad_request(
                    f"Malformed action/metadata line [{i}], expected START_OBJECT", "parse_exception"
                ) from None
            if not isinstance(action_doc, dict) or len(action_doc) != 1:
                raise bad_request(f"Malformed action/metadata line [{i}], expected a simple value for field [_index]")
            ((action, meta),) = action_doc.items()
            if action not in ("index", "create", "delete", "update"):
                raise bad_request(
                    f"Malformed action/metadata line [{i}], expected field [create], [delete], [index] "
                    f"or [update] but found [{action}]"
                )
            source = None
            if action != "delete":
                if i >= len(lines) or not lines[i].strip():
                    raise bad_request("The bulk request must be terminated by a newline [\\n]")
                try:
                    source = json.loads(lines[i])
                except ValueError:
                    raise bad_request(f"failed to parse document on line [{i + 1}]", "parse_exception") from None
                i += 1
            name = meta.get("_index") or index
            doc_id = meta.get("_id")
            item: dict[str, Any] = {"_index": name, "_id": doc_id}
            try:
                unknown = set(meta) - {"_index", "_id", "routing"}
                if unknown:
                    raise unsupported(f"bulk metadata {sorted(unknown)}")
                if action == "update":
                    raise unsupported("bulk update actions")
                if not name:
                    raise bad_request("index is missing", "action_request_validation_exception")
                if action == "delete":
                    if doc_id is None:
                        raise bad_request("id is missing", "action_request_validation_exception")
                    ix = CLUSTER.indices.get(name)
                    if ix is None:
                        raise index_not_found(name)
                    old = ix.delete(str(doc_id))
                    item.update(
                        {
                            "_version": (old.version + 1) if old else 1,
                            "result": "deleted" if old else "not_found",
                            "_shards": {"total": 1 + ix.replicas, "successful": 1, "failed": 0},
                            "_seq_no": ix.seq_no,
                            "_primary_term": 1,
                            "status": 200 if old else 404,
                        }
                    )
                else:
                    if not isinstance(source, dict):
                        raise bad_request("failed to parse", "document_parsing_exception")
                    ix = CLUSTER.index_for_write(name)
                    doc, result = ix.put(str(doc_id) if doc_id is not None else _new_id(), source, op_type=action)
                    item = _write_response(ix, doc, result, False)
                    item["status"] = 201 if result == "created" else 200
                touched[ix.name] = ix
            except EsError as exc:
                errors = True
                item["status"] = exc.status
                item["error"] = {"type": exc.type, "reason": exc.reason, **exc.extra}
            items.append({action: item})
        if refresh_now:
            for ix in touched.values():
                ix.refresh()
    return ok({"errors": errors, "took": int((time.monotonic() - started) * 1000), "items": items})


# -- search, count, delete by query


def _predicates(indices: list[Index], query: Any) -> dict[str, Predicate]:
    return {ix.name: compile_query(query, ix) for ix in indices}


def _search_indices(req: Request, index: str | None) -> list[Index]:
    opts = _index_options(req)
    return CLUSTER.resolve(index, **opts, skip_closed=True)


def _shards(indices: list[Index]) -> dict[str, int]:
    total = sum(ix.shards for ix in indices)
    return {"total": total, "successful": total, "skipped": 0, "failed": 0}


@route("POST|GET", "/_count")
@route("POST|GET", "/{index}/_count")
def count(req: Request, index: str | None = None) -> Response:
    if req.param("q") is not None:
        raise unsupported("the q= query-string parameter")
    req.param("routing")
    req.param("preference")
    req.param("ignore_throttled")
    req.param("min_score")
    body = req.json()
    extra = set(body) - {"query"}
    if extra:
        raise bad_request(f"request does not support [{sorted(extra)[0]}]", "parsing_exception")
    query = body.get("query", {"match_all": {}})
    with CLUSTER.lock:
        indices = _search_indices(req, index)
        req.check_params()
        predicates = _predicates(indices, query)
        n = 0
        for ix in indices:
            ix.maybe_refresh()
            predicate = predicates[ix.name]
            n += sum(1 for doc in ix.searchable.values() if predicate(doc))
    return ok({"count": n, "_shards": _shards(indices)})


def _sorted(matched: list[tuple[Index, Doc]], specs: list[Any], indices: list[Index]) -> list[tuple[Index, Doc]]:
    """Sort hits by field values (stable, last key first); documents without a value go last."""
    for spec in reversed(specs):
        name, desc = _sort_key(spec, indices)
        if name in ("_doc", "_score"):
            continue  # every hit scores 1.0, and _doc is the stored order
        field_of = {ix.name: ix.fields.get(name) for ix in indices}
        if any(f is not None and f.type == "text" for f in field_of.values()):
            raise bad_request(
                "Text fields are not optimised for operations that require per-document field data "
                "like aggregations and sorting, so these operations are disabled by default. Please use "
                f"a keyword field instead. [{name}]"
            )
        keyed: list[tuple[Any, tuple[Index, Doc]]] = []
        missing: list[tuple[Index, Doc]] = []
        for hit in matched:
            fspec = field_of[hit[0].name]
            values = []
            if fspec is not None:
                conv = _converter(fspec)
                raws = extract(hit[1].source, tuple(fspec.source_path.split(".")))
                values = [v for v in (_safe(conv, raw) for raw in raws) if v is not None]
            if values:
                keyed.append((max(values) if desc else min(values), hit))
            else:
                missing.append(hit)
        keyed.sort(key=lambda pair: pair[0], reverse=desc)
        matched = [hit for _, hit in keyed] + missing
    return matched


def _sort_key(spec: Any, indices: list[Index]) -> tuple[str, bool]:
    if isinstance(spec, str):
        return spec, False
    if isinstance(spec, dict) and len(spec) == 1:
        ((name, opts),) = spec.items()
        order = opts if isinstance(opts, str) else (opts or {}).get("order", "asc")
        return name, order == "desc"
    raise bad_request("malformed sort", "parsing_exception")


@route("POST|GET", "/_search")
@route("POST|GET", "/{index}/_search")
def search(req: Request, index: str | None = None) -> Response:
    if req.param("q") is not None:
        raise unsupported("the q= query-string parameter")
    if req.param("scroll") is not None:
        raise unsupported("scroll searches")
    req.param("routing")
    req.param("preference")
    if req.param("rest_total_hits_as_int") not in (None, "false"):
        raise unsupported("rest_total_hits_as_int")
    req.param("typed_keys")
    req.param("ignore_throttled")
    body = req.json()
    for key in ("size", "from", "track_total_hits", "sort", "_source"):
        value = req.param(key)
        if value is None:
            continue
        if key in ("size", "from"):
            body[key] = int(value)
        elif key == "sort":  # ?sort=field:desc,other
            body[key] = [{f: {"order": o or "asc"}} for f, _, o in (part.partition(":") for part in value.split(","))]
        else:
            body[key] = value
    allowed = {"query", "size", "from", "track_total_hits", "sort", "_source", "seq_no_primary_term", "version"}
    extra = set(body) - allowed
    if extra:
        raise unsupported(f"search option [{sorted(extra)[0]}] (supported: {', '.join(sorted(allowed))})")
    size, offset = int(body.get("size", 10)), int(body.get("from", 0))
    if size < 0 or offset < 0:
        raise bad_request(
            "[from] parameter cannot be negative" if offset < 0 else "[size] parameter cannot be negative"
        )
    query = body.get("query", {"match_all": {}})
    started = time.monotonic()
    with CLUSTER.lock:
        indices = _search_indices(req, index)
        req.check_params()
        window = min(
            (int(ix.settings.get("index.max_result_window", MAX_RESULT_WINDOW)) for ix in indices),
            default=MAX_RESULT_WINDOW,
        )
        if offset + size > window:
            raise bad_request(
                f"Result window is too large, from + size must be less than or equal to: [{window}] "
                f"but was [{offset + size}].",
                "illegal_argument_exception",
            )
        predicates = _predicates(indices, query)
        matched: list[tuple[Index, Doc]] = []
        for ix in indices:
            ix.maybe_refresh()
            predicate = predicates[ix.name]
            matched.extend((ix, doc) for doc in ix.searchable.values() if predicate(doc))
        sort = body.get("sort")
        if sort:
            matched = _sorted(matched, sort if isinstance(sort, list) else [sort], indices)
        hits = []
        for ix, doc in matched[offset : offset + size]:
            hit: dict[str, Any] = {"_index": ix.name, "_id": doc.id, "_score": None if sort else 1.0}
            src = body.get("_source", True)
            if src in (True, "true"):
                hit["_source"] = copy.deepcopy(doc.source)
            elif src not in (False, "false"):
                if isinstance(src, dict):
                    if set(src) - {"includes"}:
                        raise unsupported("_source excludes")
                    src = src["includes"]
                hit["_source"] = _filter_source(doc.source, src if isinstance(src, list) else str(src).split(","))
            if body.get("seq_no_primary_term"):
                hit["_seq_no"], hit["_primary_term"] = doc.seq_no, 1
            if body.get("version"):
                hit["_version"] = doc.version
            hits.append(hit)
    total = len(matched)
    tth = body.get("track_total_hits", MAX_RESULT_WINDOW)
    hits_obj: dict[str, Any] = {}
    if tth in (True, "true"):
        hits_obj["total"] = {"value": total, "relation": "eq"}
    elif tth not in (False, "false"):
        cap = int(tth)
        hits_obj["total"] = {"value": min(total, cap), "relation": "eq" if total <= cap else "gte"}
    hits_obj["max_score"] = None if sort or not hits else 1.0
    hits_obj["hits"] = hits
    return ok(
        {
            "took": int((time.monotonic() - started) * 1000),
            "timed_out": False,
            "_shards": _shards(indices),
            "hits": hits_obj,
        }
    )


def _filter_source(source: dict[str, Any], paths: list[Any]) -> dict[str, Any]:
    """The parts of ``_source`` under the given field paths (dotted paths; no wildcards)."""
    out: dict[str, Any] = {}
    for path in paths:
        if not isinstance(path, str) or "*" in path:
            raise unsupported(f"_source filtering by [{path}] (give plain field paths)")
        node: Any = source
        parts = path.split(".")
        for part in parts:
            if not isinstance(node, dict) or part not in node:
                node = None
                break
            node = node[part]
        if node is None:
            continue
        dest = out
        for part in parts[:-1]:
            dest = dest.setdefault(part, {})
        dest[parts[-1]] = copy.deepcopy(node)
    return out


def _safe(conv: Callable[[Any], Any], raw: Any) -> Any:
    try:
        return conv(raw)
    except (ValueError, TypeError, EsError):
        return None


@route("POST", "/{index}/_delete_by_query")
def delete_by_query(req: Request, index: str) -> Response:
    conflicts = req.param("conflicts", "abort")
    if conflicts not in ("abort", "proceed"):
        raise bad_request(f'conflicts may only be "proceed" or "abort" but was [{conflicts}]')
    slices_raw = req.param("slices", "1")
    refresh_after = req.flag("refresh")
    wait = req.flag("wait_for_completion", True)
    scroll_size = req.integer("scroll_size", 1000) or 1000
    max_docs_param = req.integer("max_docs")
    rps_raw = req.param("requests_per_second", "-1")
    req.param("scroll")
    req.param("timeout")
    req.param("wait_for_active_shards")
    req.param("routing")
    req.param("preference")
    for unsupported_param in ("q", "df", "analyzer", "sort", "search_type", "stats", "terminate_after", "from"):
        if req.param(unsupported_param) is not None:
            raise unsupported(f"delete-by-query parameter [{unsupported_param}]")
    if slices_raw == "auto":
        slices = None
    elif slices_raw and re.fullmatch(r"\d+", slices_raw) and int(slices_raw) >= 1:
        slices = int(slices_raw)
    else:
        raise bad_request(f'[slices] must be a positive integer or the string "auto", but was [{slices_raw}]')
    try:
        rps = float(rps_raw or "-1")
    except ValueError:
        raise bad_request(
            "[requests_per_second] must be a float greater than 0. Use -1 to disable throttling."
        ) from None
    if rps == 0 or (rps < 0 and rps != -1):
        raise bad_request("[requests_per_second] must be a float greater than 0. Use -1 to disable throttling.")
    if not 1 <= scroll_size <= 10_000:
        raise bad_request(f"[scroll_size] must be between 1 and 10000, got [{scroll_size}]")
    body = req.json(required=True)
    extra = set(body) - {"query", "max_docs"}
    if extra:
        raise unsupported(f"delete-by-query body field [{sorted(extra)[0]}] (supported: query, max_docs)")
    if "query" not in body:
        raise bad_request("Validation Failed: 1: query is missing;", "action_request_validation_exception")
    max_docs = body.get("max_docs", max_docs_param)
    with CLUSTER.lock:
        indices = _search_indices(req, index)
        req.check_params()
        predicates = _predicates(indices, body["query"])
        if slices is None:  # auto: one slice per shard, the smallest shard count among the indices
            slices = min((ix.shards for ix in indices), default=1)
        task = None
        if not wait:
            now = time.time()
            task = Task(
                id=next(CLUSTER.task_ids),
                description=f"delete-by-query [{', '.join(ix.name for ix in indices)}]",
                start_ms=int(now * 1000),
                start_ns=time.monotonic_ns(),
                status={},
            )
            CLUSTER.tasks[task.id] = task
    job = DeleteByQuery(
        CLUSTER,
        indices,
        predicates,
        abort_on_conflict=conflicts == "abort",
        scroll_size=scroll_size,
        slices=slices,
        refresh=refresh_after,
        max_docs=max_docs,
        requests_per_second=rps,
        task=task,
    )
    if task is not None:
        task.status = job.status()
        threading.Thread(target=_run_task, args=(task, job), name=f"task-{task.id}", daemon=True).start()
        return ok({"task": f"{CLUSTER.node_id}:{task.id}"})
    result = job.run()
    conflicted = any(f.get("status") == 409 for f in result["failures"])
    return ok(result, 409 if conflicted else 200)


def _run_task(task: Task, job: DeleteByQuery) -> None:
    try:
        task.response = job.run()
    except EsError as exc:
        task.error = {"type": exc.type, "reason": exc.reason, **exc.extra}
    except Exception as exc:  # noqa: BLE001 - a task records any failure rather than vanishing
        task.error = {"type": "exception", "reason": f"{type(exc).__name__}: {exc}"}
    task.status = job.status()
    task.end_ns = time.monotonic_ns()
    task.completed = True
    # Like ES: the result of a wait_for_completion=false task is stored as a document in .tasks,
    # where it stays until someone deletes it.
    with CLUSTER.lock:
        tasks_index = CLUSTER.indices.get(".tasks") or CLUSTER.create_index(
            ".tasks", {"settings": {"index": {"hidden": True, "number_of_replicas": 0}}}
        )
        doc = {"completed": True, "task": _task_info(task)}
        if task.response is not None:
            doc["response"] = task.response
        if task.error is not None:
            doc["error"] = task.error
        tasks_index.put(f"{CLUSTER.node_id}:{task.id}", doc)
        tasks_index.refresh()
        CLUSTER.tasks.pop(task.id, None)
    task.done.set()


def _task_info(task: Task) -> dict[str, Any]:
    return {
        "node": CLUSTER.node_id,
        "id": task.id,
        "type": "transport",
        "action": "indices:data/write/delete/byquery",
        "status": copy.deepcopy(task.status),
        "description": task.description,
        "start_time_in_millis": task.start_ms,
        "running_time_in_nanos": (task.end_ns or time.monotonic_ns()) - task.start_ns,
        "cancellable": True,
        "cancelled": False,
        "headers": {},
    }


@route("GET", "/_tasks/{task_id}")
def get_task(req: Request, task_id: str) -> Response:
    wait = req.flag("wait_for_completion")
    timeout = parse_time_value(req.param("timeout", "30s") or "30s", "timeout")
    req.check_params()
    node, _, raw_id = task_id.partition(":")
    if not raw_id.isdigit():
        raise bad_request(f"malformed task id {task_id}")
    with CLUSTER.lock:
        task = CLUSTER.tasks.get(int(raw_id)) if node == CLUSTER.node_id else None
    if task is not None and wait:
        if not task.done.wait(timeout):
            raise EsError(408, "timeout_exception", f"Timed out waiting for completion of task [{task_id}]")
    with CLUSTER.lock:
        task = CLUSTER.tasks.get(int(raw_id)) if node == CLUSTER.node_id else None
        if task is not None:
            return ok({"completed": False, "task": _task_info(task)})
        stored = CLUSTER.indices.get(".tasks")
        doc = stored.live.get(task_id) if stored else None
        if doc is None:
            raise EsError(
                404, "resource_not_found_exception", f"task [{task_id}] isn't running and hasn't stored its results"
            )
        return ok(copy.deepcopy(doc.source))


# -- the test hooks


@route("POST", "/_standin/faults")
def add_fault(req: Request) -> Response:
    req.check_params()
    body = req.json(required=True)
    extra = set(body) - {"status", "count", "paths", "methods", "stage", "delay"}
    if extra:
        raise bad_request(f"unknown fault option [{sorted(extra)[0]}]")
    stage = body.get("stage", "http")
    if stage not in ("http", "delete_by_query"):
        raise bad_request("stage must be http or delete_by_query")
    count_ = body.get("count", 1)
    if not isinstance(count_, int) or count_ < 1:
        raise bad_request("count must be a positive integer")
    delay = float(body.get("delay", 0))
    status = body.get("status")
    if stage == "delete_by_query" and delay:
        if status is not None:
            raise bad_request("a delete_by_query fault has either a status or a delay")
        fault = Fault(status=0, count=count_, stage="delete_by_query_delay", delay=delay)
    else:
        if status not in FAULT_BODIES:
            raise bad_request(f"status must be one of {sorted(FAULT_BODIES)}")
        methods = body.get("methods") or []
        fault = Fault(
            status=status, count=count_, paths=body.get("paths"), methods=tuple(m.upper() for m in methods), stage=stage
        )
    with CLUSTER.lock:
        CLUSTER.faults.append(fault)
    return ok({"acknowledged": True, "fault": fault.as_dict()})


@route("DELETE", "/_standin/faults")
def clear_faults(req: Request) -> Response:
    req.check_params()
    with CLUSTER.lock:
        cleared = len(CLUSTER.faults)
        CLUSTER.faults = []
    return ok({"acknowledged": True, "cleared": cleared})


@route("GET", "/_standin/faults")
def list_faults(req: Request) -> Response:
    req.check_params()
    with CLUSTER.lock:
        return ok({"faults": [f.as_dict() for f in CLUSTER.faults]})


@route("GET", "/_standin/requests")
def request_log(req: Request) -> Response:
    since = req.integer("since", 0) or 0
    req.check_params()
    with CLUSTER.lock:
        entries = [dict(e) for e in CLUSTER.requests if e["seq"] > since]
        last = CLUSTER.requests[-1]["seq"] if CLUSTER.requests else 0
    return ok({"last": last, "requests": entries})


@route("GET", "/_standin/info")
def standin_info(req: Request) -> Response:
    req.check_params()
    with CLUSTER.lock:
        n_indices = len(CLUSTER.indices)
        n_docs = sum(len(ix.live) for ix in CLUSTER.indices.values())
    return ok(
        {
            "standin": True,
            "version": ES_VERSION,
            "pid": os.getpid(),
            "source_sha256": SOURCE_SHA256,
            "indices": n_indices,
            "documents": n_docs,
        }
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms Nagle + delayed-ACK stalls between small writes
    wbufsize = 1 << 16  # headers and body leave in one write (handle_one_request flushes)
    server_version = "es-standin"
    sys_version = ""

    #: "user:password" to require HTTP basic auth (``--user``), as a secured cluster does.
    basic_auth: str | None = None

    def _authenticate(self, path: str) -> None:
        expected = "Basic " + base64.b64encode((self.basic_auth or "").encode()).decode()
        given = self.headers.get("Authorization")
        if given == expected:
            return
        reason = (
            f"missing authentication credentials for REST request [{path}]"
            if not given
            else f"unable to authenticate user for REST request [{path}]"
        )
        raise EsError(
            401, "security_exception", reason, header={"WWW-Authenticate": ['Basic realm="security" charset="UTF-8"']}
        )

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(chunks)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        return body

    def _handle(self) -> None:
        body = self._read_body()
        split = urlsplit(self.path)
        path = split.path.rstrip("/") or "/"
        req = Request(self.command, path, parse_qs(split.query, keep_blank_values=True), self.headers, body)
        compat: str | None = None
        headers: dict[str, str] = {}
        try:
            if self.basic_auth and not path.startswith("/_standin/"):
                self._authenticate(path)
            compat = check_media_types(self.headers, bool(body))
            if not path.startswith("/_standin/"):
                fault = CLUSTER.take_fault("http", self.command, path)
                if fault:
                    kind, reason = FAULT_BODIES[fault.status]
                    raise EsError(fault.status, kind, reason)
            status, payload, headers = ROUTER.dispatch(req)
        except EsError as exc:
            status, payload = exc.status, exc.body()
            if status == 401:
                headers = {"WWW-Authenticate": 'Basic realm="security" charset="UTF-8"'}
        except Exception as exc:  # noqa: BLE001 - answer like ES would, and keep serving
            status, payload = 500, EsError(500, "exception", f"{type(exc).__name__}: {exc}").body()
        if any(p.startswith(".tasks") for p in path.split("/")[1:2]):
            headers = {
                **headers,
                "Warning": f'299 Elasticsearch-{ES_VERSION} "this request accesses system indices: '
                "[.tasks], but in a future major version, direct access to system indices "
                'will be prevented by default"',
            }
        CLUSTER.log_request(self.command, self.path, status)
        self._send(status, payload, headers, compat)

    def _send(self, status: int, payload: Any, headers: dict[str, str], compat: str | None) -> None:
        if isinstance(payload, str):
            data = payload.encode()
            content_type = headers.pop("Content-Type", "text/plain; charset=UTF-8")
        elif payload is None:
            data = b""
            content_type = "application/json"
        else:
            pretty = "pretty" in parse_qs(urlsplit(self.path).query, keep_blank_values=True)
            data = json.dumps(payload, indent=2 if pretty else None, separators=None if pretty else (",", ":")).encode()
            content_type = (
                f"application/vnd.elasticsearch+json;compatible-with={compat}" if compat else "application/json"
            )
        self.send_response(status)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Type", content_type)
        for key, value in headers.items():
            self.send_header(key, value)
        if self.command == "HEAD":
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # the request log is at GET /_standin/requests


def serve(host: str, port: int, basic_auth: str | None = None) -> None:
    handler = type("Handler", (Handler,), {"basic_auth": basic_auth}) if basic_auth else Handler
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    print(f"es-standin {ES_VERSION} listening on http://{host}:{port} (pid {os.getpid()})", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="es_standin_server", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("RETENTION_ES_PORT", "19200")))
    parser.add_argument("--user", help="require HTTP basic auth as user:password")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.user)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
