"""The stand-in's ``_bulk`` body, parsed and validated whole before any item runs, as Elasticsearch 8 does.

ES parses every action line first (``BulkRequestParser``: a malformed line is a 400
``illegal_argument_exception``) and then validates every item (``BulkRequest.validate``: an item
without an index, a delete without an id, an id over 512 bytes make the whole request a 400
``action_request_validation_exception``). Only then does it execute, so a refused request writes
nothing. Document sources are parsed per item at execution, where a bad one fails only its item.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from devservers.es_standin_base import EsError, bad_request, unsupported

ACTIONS = ("index", "create", "delete", "update")
#: Metadata the stand-in honours (``routing`` changes nothing on one shard).
SUPPORTED_METADATA = {"_index", "_id", "routing"}
#: Metadata ES accepts that the stand-in does not implement: refused, never ignored.
UNSUPPORTED_METADATA = {
    "op_type",
    "version",
    "version_type",
    "if_seq_no",
    "if_primary_term",
    "retry_on_conflict",
    "pipeline",
    "_source",
    "require_alias",
    "require_data_stream",
    "dynamic_templates",
    "list_executed_pipelines",
}
MAX_ID_BYTES = 512


@dataclass(frozen=True)
class BulkItem:
    """One parsed action: what to do, where, and the raw source line (None for a delete)."""

    action: str
    index: str | None
    doc_id: str | None
    source_line: bytes | None
    line: int


def _token(value: Any) -> str:
    """The Jackson token ES names in its parse errors for a JSON value."""
    if isinstance(value, dict):
        return "START_OBJECT"
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, bool):
        return "VALUE_BOOLEAN"
    if isinstance(value, (int, float)):
        return "VALUE_NUMBER"
    if value is None:
        return "VALUE_NULL"
    return "VALUE_STRING"


def _text(value: Any) -> str:
    """A metadata value as ES reads it (``parser.text()``): 7 -> "7", true -> "true"."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _action_line(raw: bytes, line: int) -> tuple[str, dict[str, Any]]:
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise bad_request(
            f"Malformed action/metadata line [{line}], expected START_OBJECT", "parse_exception"
        ) from None
    if not isinstance(parsed, dict):
        raise bad_request(
            f"Malformed action/metadata line [{line}], expected START_OBJECT but found [{_token(parsed)}]"
        )
    if not parsed:
        raise bad_request(f"Malformed action/metadata line [{line}], expected FIELD_NAME but found [END_OBJECT]")
    if len(parsed) > 1:
        raise bad_request(f"Malformed action/metadata line [{line}], expected END_OBJECT but found [FIELD_NAME]")
    ((action, meta),) = parsed.items()
    if action not in ACTIONS:
        raise bad_request(
            f"Malformed action/metadata line [{line}], expected field [create], [delete], [index] "
            f"or [update] but found [{action}]"
        )
    if not isinstance(meta, dict):
        raise bad_request(
            f"Malformed action/metadata line [{line}], expected START_OBJECT or END_OBJECT but found [{_token(meta)}]"
        )
    for key, value in meta.items():
        if isinstance(value, (dict, list)):
            raise bad_request(
                f"Malformed action/metadata line [{line}], expected a simple value for field [{key}] "
                f"but found [{_token(value)}]"
            )
        if key in UNSUPPORTED_METADATA:
            raise unsupported(f"the bulk metadata [{key}]")
        if key not in SUPPORTED_METADATA:
            raise bad_request(f"Action/metadata line [{line}] contains an unknown parameter [{key}]")
    return action, meta


def parse_bulk(raw: bytes, default_index: str | None) -> list[BulkItem]:
    """Every action of a bulk body, or the 400 ES gives the whole request; nothing runs before this."""
    lines = raw.split(b"\n")
    if lines[-1].strip():
        raise bad_request("The bulk request must be terminated by a newline [\\n]")
    items: list[BulkItem] = []
    i = 0
    while i < len(lines) - 1:
        line_no, raw_line = i + 1, lines[i].strip()
        i += 1
        if not raw_line:
            continue
        action, meta = _action_line(raw_line, line_no)
        if action == "update":
            raise unsupported("bulk update actions")
        source_line = None
        if action != "delete":
            if i >= len(lines) - 1:
                raise bad_request("The bulk request must be terminated by a newline [\\n]")
            source_line = lines[i]
            i += 1
        name = meta.get("_index")
        doc_id = meta.get("_id")
        items.append(
            BulkItem(
                action,
                _text(name) if name is not None else default_index,
                _text(doc_id) if doc_id is not None else None,
                source_line,
                line_no,
            )
        )
    _validate(items)
    return items


def doc_id_error(doc_id: str | None) -> str | None:
    """ES's validation message for an index/create id (``DocWriteRequest.validateDocIdLength``), if any."""
    if doc_id is None:
        return None
    size = len(doc_id.encode())
    if size > MAX_ID_BYTES:
        return f"id [{doc_id}] is too long, must be no longer than {MAX_ID_BYTES} bytes but was: {size}"
    return None


def validation_failed(errors: list[str]) -> EsError:
    """ES's ``ActionRequestValidationException``: every problem, numbered, in one 400."""
    listed = "".join(f"{n}: {error};" for n, error in enumerate(errors, start=1))
    return EsError(400, "action_request_validation_exception", f"Validation Failed: {listed}")


def _validate(items: list[BulkItem]) -> None:
    errors: list[str] = [] if items else ["no requests added"]
    for item in items:
        if not item.index:
            errors.append("index is missing")
        if item.action == "delete":
            if not item.doc_id:  # ES's Strings.isEmpty: an empty id is missing too
                errors.append("id is missing")
        else:
            message = doc_id_error(item.doc_id)
            if message:
                errors.append(message)
    if errors:
        raise validation_failed(errors)


def parse_source(item: BulkItem) -> dict[str, Any]:
    """An index/create item's document; a line that is not a JSON object fails that item only."""
    try:
        source = json.loads(item.source_line or b"")
    except ValueError:
        raise EsError(
            400, "document_parsing_exception", f"[1:1] failed to parse document on line [{item.line + 1}]"
        ) from None
    if not isinstance(source, dict):
        raise EsError(400, "document_parsing_exception", "[1:1] failed to parse, document is empty")
    return source
