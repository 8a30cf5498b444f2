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
pretending. Queries: match_all, match_none, term, terms, range, exists, ids, bool, and match on
fields that are not analyzed. Aliases (``es_standin_aliases``): reads and delete-by-query go through
them, writes reach their one or write index, ``DELETE /{alias}`` is refused as in ES 8. A ``_bulk``
body is parsed and validated whole before anything is written (``es_standin_bulk``).
Data streams from ``data_stream`` index templates, with rollover (``es_standin_datastreams``); date
math and custom formats in range queries and date math in index names (``es_standin_dates``).
Snapshot repositories, SLM policies (no snapshot is taken) and ``_forcemerge`` (``es_standin_slm``).

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
import gzip
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devservers import (
    es_standin_aliases,
    es_standin_datastreams,
    es_standin_documents,
    es_standin_indices,
    es_standin_search,
    es_standin_slm,
)
from devservers.es_standin_base import (
    CLUSTER_NAME,
    ES_VERSION,
    FAULT_BODIES,
    LUCENE_VERSION,
    SOURCE_SHA256,
    EsError,
    bad_request,
)
from devservers.es_standin_cluster import CLUSTER, Fault
from devservers.es_standin_http import ROUTER, Request, Response, check_media_types, ok, route

# Each module registers its routes when imported; the order is the order they are tried in.
ROUTE_MODULES = (
    es_standin_indices,
    es_standin_aliases,
    es_standin_datastreams,
    es_standin_documents,
    es_standin_search,
    es_standin_slm,
)


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
