"""How the Elasticsearch store talks to the cluster: the official client, bounded retries, short URLs.

The client is built once from the Airflow connection through the provider hook; the
transport's own (immediate) retries are off. 429 and 5xx answers and lost connections are
retried here with bounded exponential back-off, then the call fails loudly
(:class:`ElasticsearchUnavailable`). Index names are sent in chunks that keep each URL short,
and only exact names (never a wildcard) reach a request path.
"""

from __future__ import annotations

import base64
import logging
import random
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, TypeVar

from include.retention.policy import ElasticsearchTarget
from include.retention.stores.base import RetentionStore

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_URL_CHARS = 3_000  # index names per request, like Curator's 3 KB chunks

R = TypeVar("R")


class ElasticsearchUnavailable(RuntimeError):
    """The cluster kept refusing a request (429 / 5xx / connection errors) after every retry."""


def chunk_names(names: list[str], max_chars: int, max_names: int) -> Iterator[list[str]]:
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


class ElasticsearchConnection(RetentionStore[ElasticsearchTarget]):
    """The client, retries and request settings of an Elasticsearch store; :class:`ElasticsearchStore`
    documents the settings. No I/O in ``__init__``."""

    def __init__(
        self,
        *,
        elasticsearch_conn_id: str,
        batch_size: int,
        max_retries: int,
        backoff_seconds: float,
        max_backoff_seconds: float,
        task_timeout_seconds: float,
        poll_seconds: float,
        max_url_chars: int,
        request_timeout: float,
    ) -> None:
        super().__init__(batch_size=min(batch_size, 10_000))  # scroll_size is at most 10,000
        if max_retries < 0 or backoff_seconds < 0 or task_timeout_seconds <= 0 or max_url_chars < 300:
            raise ValueError("max_retries and backoff must be >= 0, task_timeout > 0, max_url_chars >= 300")
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.task_timeout_seconds = task_timeout_seconds
        self.poll_seconds = poll_seconds
        self.max_url_chars = max_url_chars
        self.request_timeout = request_timeout
        self._es: Elasticsearch | None = None
        self._auth_headers: dict[str, str] = {}  # for the one request sent through the transport

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

    def _chunked(self, names: Iterable[str]) -> Iterator[list[str]]:
        for chunk in chunk_names(sorted(names), self.max_url_chars, max_names=self.batch_size):
            for name in chunk:
                # Belt and braces: only exact names that parsed reach a request path.
                if not name or any(c in name for c in "*?,") or name.startswith(("-", "_")):
                    raise RuntimeError(f"refusing to address index {name!r}: not an exact index name")
            yield chunk

    def _concrete(self, names: list[str]) -> tuple[list[str], list[str]]:
        """Split names bound for ``DELETE /{index}`` into (concrete indices, names that are not).

        ``GET /{names}/_alias`` resolves each name: a concrete index comes back as itself; an
        alias or a data stream comes back as the indices behind it, which are never deleted
        on its strength (ES 8 refuses a delete through an alias, failing the whole chunk).
        A name that no longer exists comes back as nothing and needs no delete.
        """
        from elasticsearch import NotFoundError

        try:
            resp = self._call("resolve index names", self.client.indices.get_alias, index=names,
                              ignore_unavailable=True)
        except NotFoundError:
            return [], []
        body = getattr(resp, "body", resp)
        aliases = {a for spec in body.values() for a in (spec.get("aliases") or {})}
        concrete = [n for n in names if n in body]
        others = [n for n in names if n not in body and (n in aliases or set(body) - set(names))]
        return concrete, others

    def _refresh(self, names: Iterable[str]) -> None:
        for chunk in self._chunked(names):
            self._call("refresh", self.client.indices.refresh, index=chunk, ignore_unavailable=True)
