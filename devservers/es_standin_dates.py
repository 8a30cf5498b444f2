"""Range bounds on date fields as Elasticsearch 8 reads them: date math, custom ``format`` and the
rounding of missing components (REST API reference, "Range query": "Date math and rounding",
"Missing date components"; source: ``JavaDateMathParser``).

- ``now``, ``now-30d/d``, ``2025-01-01||+1M/d``: units ``y M w d h H m s``; arithmetic and
  rounding happen in the query's ``time_zone`` (UTC by default).
- Rounding: ``gt`` and ``lte`` round up (to the last millisecond of the unit), ``gte`` and ``lt``
  round down. A date string with its time left out is rounded the same way: ``lte: 2025-01-02``
  includes the whole day, ``gt: 2025-01-02`` excludes it.
- ``format``: ``||``-separated; named formats ``strict_date_optional_time``, ``date_optional_time``,
  ``epoch_millis``, ``epoch_second``, ``strict_date``/``date`` (yyyy-MM-dd), ``basic_date``, or a
  pattern of ``y M d H m s S`` and literal separators. Anything else is refused with a 400.
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from devservers.es_standin_base import ISO_DATE, EsError, unsupported

NAMED_FORMATS = {
    "strict_date_optional_time": None,  # the ISO parser
    "date_optional_time": None,
    "strict_date": "yyyy-MM-dd",
    "date": "yyyy-MM-dd",
    "basic_date": "yyyyMMdd",
    "strict_date_hour_minute_second": "yyyy-MM-dd'T'HH:mm:ss",
    "date_hour_minute_second": "yyyy-MM-dd'T'HH:mm:ss",
}
_PATTERN_FIELDS = {
    "yyyy": ("y", r"\d{4}"),
    "MM": ("mo", r"\d{2}"),
    "dd": ("d", r"\d{2}"),
    "HH": ("h", r"\d{2}"),
    "mm": ("mi", r"\d{2}"),
    "ss": ("s", r"\d{2}"),
    "SSS": ("f", r"\d{3}"),
}
_MATH = re.compile(r"([+-])(\d+)([yMwdhHms])|/([yMwdhHms])")
_UP = {"h": 23, "mi": 59, "s": 59}


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern[i] == "'":
            end = pattern.index("'", i + 1)
            out += re.escape(pattern[i + 1 : end])
            i = end + 1
            continue
        for token, (group, rx) in _PATTERN_FIELDS.items():
            if pattern.startswith(token, i):
                out += f"(?P<{group}>{rx})"
                i += len(token)
                break
        else:
            if pattern[i].isalpha():
                raise unsupported(f"the date format pattern [{pattern}] (letters supported: yyyy MM dd HH mm ss SSS)")
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def _from_fields(g: dict[str, str | None], tz: Any, round_up: bool, offset: str | None = None) -> int:
    """Epoch millis; missing month/day are 1, missing time fields the end of the unit when rounding up."""

    def part(key: str) -> int:
        value = g.get(key)
        if value is not None:
            return int(value)
        return _UP.get(key, 0) if round_up and key in _UP else 0

    if offset:
        tz = timezone.utc if offset == "Z" else _offset_zone(offset)
    dt = datetime(
        int(g["y"] or 0), int(g.get("mo") or 1), int(g.get("d") or 1), part("h"), part("mi"), part("s"), tzinfo=tz
    )
    frac = g.get("f")
    millis = int((frac or "").ljust(3, "0")[:3]) if frac else (999 if round_up else 0)
    return int(dt.timestamp()) * 1000 + millis


def _offset_zone(raw: str) -> timezone:
    raw = raw.replace(":", "")
    sign = -1 if raw[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(raw[1:3]), minutes=int(raw[3:5] or 0)))


def _parse_one(text: str, fmt: str, tz: Any, round_up: bool) -> int:
    if fmt == "epoch_millis":
        if not re.fullmatch(r"-?\d+(\.\d+)?", text):
            raise ValueError(text)
        return int(float(text))
    if fmt == "epoch_second":
        if not re.fullmatch(r"-?\d+(\.\d+)?", text):
            raise ValueError(text)
        return int(float(text) * 1000)
    if fmt in NAMED_FORMATS and NAMED_FORMATS[fmt] is None:
        m = ISO_DATE.fullmatch(text)
        if not m:
            raise ValueError(text)
        g = m.groupdict()
        return _from_fields(g, tz, round_up, g.get("tz"))
    pattern = NAMED_FORMATS.get(fmt, fmt)
    if re.fullmatch(r"[a-z_]+", pattern):
        raise unsupported(f"the date format [{fmt}]")
    m = _pattern_regex(pattern).fullmatch(text)
    if not m:
        raise ValueError(text)
    return _from_fields(m.groupdict(), tz, round_up)


def parse_bound(value: Any, *, fmt: str | None, tz: Any, round_up: bool, now: int | None = None) -> int:
    """Epoch millis of one range bound, as ES's date math parser gives it."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a date")
    if isinstance(value, (int, float)) and not fmt:
        return int(value)
    text = str(value).strip()
    if text.startswith("now"):
        anchor, math = (now if now is not None else int(time.time() * 1000)), text[3:]
    elif "||" in text:
        head, math = text.split("||", 1)
        anchor = _parse(head, fmt, tz, round_up=False)
    else:
        return _parse(text, fmt, tz, round_up)
    return _apply_math(anchor, math, tz, round_up, text)


def _parse(text: str, fmt: str | None, tz: Any, round_up: bool) -> int:
    formats = (fmt or "strict_date_optional_time||epoch_millis").split("||")
    for one in formats:
        try:
            return _parse_one(text, one, tz, round_up)
        except ValueError:
            continue
    named = fmt or "strict_date_optional_time||epoch_millis"
    raise ValueError(f"failed to parse date field [{text}] with format [{named}]")


def _apply_math(anchor: int, math: str, tz: Any, round_up: bool, text: str) -> int:
    dt = datetime.fromtimestamp(anchor / 1000, tz=tz)
    pos = 0
    while pos < len(math):
        m = _MATH.match(math, pos)
        if not m:
            raise ValueError(f"operator not supported for date math [{text}]")
        pos = m.end()
        if m.group(4):
            dt = _round(dt, m.group(4), round_up)
            continue
        n = int(m.group(2)) * (1 if m.group(1) == "+" else -1)
        dt = _add(dt, m.group(3), n)
    return int(dt.timestamp() * 1000)


def _add(dt: datetime, unit: str, n: int) -> datetime:
    if unit in ("y", "M"):
        months = dt.month - 1 + n * (12 if unit == "y" else 1)
        year, month = dt.year + months // 12, months % 12 + 1
        day = min(dt.day, calendar.monthrange(year, month)[1])
        return dt.replace(year=year, month=month, day=day)
    seconds = {"w": 604800, "d": 86400, "h": 3600, "H": 3600, "m": 60, "s": 1}[unit]
    if unit in ("w", "d"):  # calendar days in the zone, across DST changes
        naive = dt.replace(tzinfo=None) + timedelta(days=n * (7 if unit == "w" else 1))
        return naive.replace(tzinfo=dt.tzinfo)
    return datetime.fromtimestamp(dt.timestamp() + n * seconds, tz=dt.tzinfo)


def _round(dt: datetime, unit: str, round_up: bool) -> datetime:
    naive = dt.replace(tzinfo=None)
    if unit == "y":
        start = naive.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    elif unit == "M":
        start = naive.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    elif unit == "w":
        start = (naive - timedelta(days=naive.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    elif unit == "d":
        start = naive.replace(hour=0, minute=0, second=0, microsecond=0)
    elif unit in ("h", "H"):
        start = naive.replace(minute=0, second=0, microsecond=0)
    elif unit == "m":
        start = naive.replace(second=0, microsecond=0)
    else:
        start = naive.replace(microsecond=0)
    result = start.replace(tzinfo=dt.tzinfo)
    if round_up:  # the last millisecond of the unit
        result = _add(result, unit, 1) - timedelta(milliseconds=1)
    return result


# --------------------------------------------------------------------------- date math in index names

_NAME_FORMAT = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}


def resolve_index_name(expr: str, now: int | None = None) -> str:
    """``<cc-logs-{now/M{yyyy.MM}}>`` -> ``cc-logs-2026.12`` (ES's "Date math support in index and
    index alias names": ``{math{format|time_zone}}``, default format ``yyyy.MM.dd``, UTC); a name
    without the angle brackets is returned as it is."""
    if not (expr.startswith("<") and expr.endswith(">")):
        return expr
    inner, out, i = expr[1:-1], "", 0

    def invalid(why: str) -> EsError:
        return EsError(400, "parse_exception", f"invalid dynamic name expression [{inner}]. {why}")

    while i < len(inner):
        ch = inner[i]
        if ch == "\\" and i + 1 < len(inner):
            out, i = out + inner[i + 1], i + 2
            continue
        if ch == "}":
            raise invalid(f"invalid character in placeholder at position [{i}]")
        if ch != "{":
            out, i = out + ch, i + 1
            continue
        depth, j = 1, i + 1
        while j < len(inner) and depth:
            depth += {"{": 1, "}": -1}.get(inner[j], 0)
            j += 1
        if depth:
            raise invalid("date math placeholder is open ended")
        out += _name_placeholder(inner[i + 1 : j - 1], now, invalid)
        i = j
    return out


def _name_placeholder(body: str, now: int | None, invalid: Any) -> str:
    math, fmt, zone = body, "yyyy.MM.dd", "UTC"
    if "{" in body:
        if not body.endswith("}"):
            raise invalid("missing closing '}' for date math format")
        math, _, spec = body[:-1].partition("{")
        fmt, _, zone = spec.partition("|")
        zone = zone or "UTC"
    if not math.startswith("now"):
        raise unsupported(f"date math [{math}] in an index name (it must start with now)")
    tz: Any = timezone.utc
    if re.fullmatch(r"[+-]\d{2}(:?\d{2})?", zone):
        tz = _offset_zone(zone)
    elif zone != "UTC":
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise invalid(f"unknown time zone [{zone}]") from None
    millis = parse_bound(math, fmt=None, tz=tz, round_up=False, now=now)
    moment = datetime.fromtimestamp(millis / 1000, tz=tz)
    pattern, i = "", 0
    while i < len(fmt):
        token = next((t for t in _NAME_FORMAT if fmt.startswith(t, i)), None)
        if token:
            pattern, i = pattern + _NAME_FORMAT[token], i + len(token)
        elif fmt[i].isalpha():
            raise unsupported(f"the date format [{fmt}] in an index name (letters supported: yyyy MM dd HH mm ss)")
        else:
            pattern, i = pattern + fmt[i].replace("%", "%%"), i + 1
    return moment.strftime(pattern)
