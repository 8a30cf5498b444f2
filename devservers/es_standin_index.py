"""The stand-in's indices: mappings (explicit and dynamic, as ES maps), documents, refresh."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator

from devservers.es_standin_base import DETECT_DATE, EsError, bad_request, parse_date, parse_time_value, unsupported

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


def check_mapping(props: dict[str, Any], prefix: str = "") -> None:
    for name, spec in props.items():
        if not name.strip():  # ObjectMapper.validateFieldName, wrapped by the mapping parser
            why = "field name cannot be an empty string" if not name else "field name cannot contain only whitespaces"
            raise EsError(
                400,
                "mapper_parsing_exception",
                f"Failed to parse mapping: {why}",
                caused_by={"type": "illegal_argument_exception", "reason": why},
            )
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
            check_mapping(spec["properties"], f"{prefix}{name}.")
        for sub, subspec in spec.get("fields", {}).items():
            check_mapping({sub: subspec}, f"{prefix}{name}.")


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


def as_number(value: Any) -> float:
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
    aliases: dict[str, dict[str, Any]] = field(default_factory=dict)  # alias name -> its properties
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
            if not key.strip():  # DocumentParser refuses it before mapping anything
                why = "Field name cannot be an empty string" if not key else "Field name cannot contain only whitespace"
                raise EsError(
                    400,
                    "document_parsing_exception",
                    f"[1:2] failed to parse: {why}",
                    caused_by={"type": "illegal_argument_exception", "reason": why},
                )
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
        if isinstance(value, str) and DETECT_DATE.match(value):
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
                as_number(value)
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


def flatten_settings(raw: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if not isinstance(raw, dict):
        raise bad_request("settings must be an object", "parse_exception")
    for key, value in raw.items():
        if isinstance(value, dict):
            out.update(flatten_settings(value, f"{prefix}{key}."))
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


