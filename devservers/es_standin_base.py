"""The Elasticsearch stand-in's base layer: errors answered as Elasticsearch answers them, and
the values it parses (dates, time values, sizes)."""

from __future__ import annotations

import hashlib
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ES_VERSION = "8.19.0"
LUCENE_VERSION = "9.12.2"
CLUSTER_NAME = "retention-es-standin"
SUPPORTED_COMPAT = ("7", "8")
MAX_RESULT_WINDOW = 10_000
REQUEST_LOG_SIZE = 20_000
#: Every module of the stand-in, so that ``ensure()`` restarts a server started from older code.
SOURCE_FILES = tuple(sorted(Path(__file__).parent.glob("es_standin_*.py")))


def source_sha256() -> str:
    """The sha256 of the stand-in's source (all its modules, in name order)."""
    digest = hashlib.sha256()
    for path in SOURCE_FILES:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


SOURCE_SHA256 = source_sha256()
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


ISO_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2})(?:T(?P<h>\d{2})(?::(?P<mi>\d{2})(?::(?P<s>\d{2})"
    r"(?:[.,](?P<f>\d{1,9}))?)?)?(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?)?)?)?$"
)
DETECT_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(T.*)?$|^\d{4}/\d{2}/\d{2}( \d{2}:\d{2}:\d{2})?( [+-]\d{4})?$")


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
    m = ISO_DATE.match(text)
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


