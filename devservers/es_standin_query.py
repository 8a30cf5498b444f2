"""The stand-in's query DSL: each query compiled to a predicate over ``_source`` for one index."""

from __future__ import annotations

import re
from datetime import timedelta, timezone
from typing import Any, Callable, Iterable, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from devservers.es_standin_base import EsError, bad_request, parse_date, unsupported
from devservers.es_standin_dates import parse_bound
from devservers.es_standin_index import (
    DATE_FORMATS,
    INTEGER_TYPES,
    KEYWORD_TYPES,
    NUMERIC_TYPES,
    Doc,
    FieldSpec,
    Index,
    as_number,
    extract,
    keyword_of,
)

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
    if kind == "match":
        return _compile_field_query("term", _match_as_term(body, index), index)
    if kind == "ids":
        _only(body, {"values", "boost", "_name"}, kind)
        ids = {str(v) for v in body.get("values", [])}
        return lambda doc: doc.id in ids
    if kind in KNOWN_ES_QUERIES:
        raise unsupported(
            f"the [{kind}] query (supported: match_all, match_none, bool, term, terms, range, exists, ids, "
            "match on non-text fields)"
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
    conv = converter(spec)

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
    if spec.type != "date" and arg.get("format") not in (None, *DATE_FORMATS):
        raise unsupported(f"range format [{arg['format']}]")
    if arg.get("relation") not in (None, "intersects", "INTERSECTS"):
        raise unsupported(f"range relation [{arg['relation']}]")
    tz: Any = timezone.utc
    if arg.get("time_zone"):
        try:
            tz = _zone(str(arg["time_zone"]))
        except ValueError:
            raise bad_request(f"unknown time zone [{arg['time_zone']}]") from None
    def bound(op: str) -> Any:
        if spec.type != "date":
            return _convert_query_value(conv, arg[op], name)
        # gt and lte round up (date math and missing time components), gte and lt round down.
        round_up = op in ("gt", "lte")
        return _convert_query_value(
            lambda v: parse_bound(v, fmt=arg.get("format"), tz=tz, round_up=round_up), arg[op], name
        )

    bounds = [(op, bound(op)) for op in ("gt", "gte", "lt", "lte") if arg.get(op) is not None]
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


def converter(spec: FieldSpec) -> Callable[[Any], Any]:
    if spec.type in KEYWORD_TYPES:
        limit = spec.ignore_above

        def keyword(v: Any) -> str | None:
            s = keyword_of(v)
            return None if limit is not None and len(s) > limit else s

        return keyword
    if spec.type in INTEGER_TYPES:
        return lambda v: int(as_number(v))
    if spec.type in NUMERIC_TYPES:
        return as_number
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




def _match_as_term(body: Any, index: Index) -> dict[str, Any]:
    """The ``term`` body for a ``match`` on a field that is not analyzed: the whole value, as in ES: a
    keyword (without a normalizer), number, date or boolean field yields one token. On a ``text``
    field the stand-in would have to analyze, so that stays refused."""
    if not isinstance(body, dict):
        raise bad_request("[match] query malformed, no start_object after query name", "parsing_exception")
    names = [k for k in body if k not in ("boost", "_name")]
    if len(names) != 1:
        raise bad_request(
            f"[match] query doesn't support multiple fields, found [{', '.join(names)}]", "parsing_exception"
        )
    (name,) = names
    arg = body[name]
    if isinstance(arg, dict):
        _only(arg, {"query", "operator", "boost", "_name"}, "match")
        if "query" not in arg:
            raise bad_request("No text specified for text query", "parsing_exception")
        if str(arg.get("operator", "or")).lower() not in ("or", "and"):
            raise bad_request(f"Unknown operator [{arg['operator']}]", "parsing_exception")
        arg = arg["query"]
    spec = index.fields.get(name)
    if spec is not None and spec.type == "text":
        raise unsupported(f"the [match] query on text field [{name}]: the stand-in does not analyze text")
    return {name: arg}
