"""The stand-in's HTTP plumbing: requests, media types as ES 8 checks them, the router."""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterable
from urllib.parse import unquote

from devservers.es_standin_base import SUPPORTED_COMPAT, EsError, bad_request, unsupported
from devservers.es_standin_dates import resolve_index_name

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
                args = {k: unquote(v) for k, v in m.groupdict().items()}
                if args.get("index") and "<" in args["index"]:  # date math in index names, for every API
                    args["index"] = ",".join(resolve_index_name(part) for part in args["index"].split(","))
                return fn(req, **args)
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


