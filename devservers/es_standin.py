"""Elasticsearch: a real cluster from ``ELASTICSEARCH_URL``, else the wire-compatible stand-in.

No Elasticsearch can be installed on this kind of machine, so the tests and the demo run
against ``devservers/es_standin_server.py`` (port ``RETENTION_ES_PORT``, default 19200), which
the official client talks to over HTTP. Set ``ELASTICSEARCH_URL=https://user:pw@host:9200`` to
run against a real cluster instead; nothing is started then.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit

from devservers.es_standin_base import source_sha256
from devservers.procs import PROJECT_ROOT, RUN_DIR, Endpoint, owned_pid, port_open, say, start, stop, wait_for_port

NAME = "elasticsearch"
URL_ENV = "ELASTICSEARCH_URL"
PORT = int(os.environ.get("RETENTION_ES_PORT", "19200"))


def _real_cluster(url: str) -> Endpoint:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{URL_ENV} must look like https://user:password@host:9200, got scheme {parts.scheme!r}")
    return Endpoint(
        NAME,
        parts.hostname,
        parts.port or 9200,
        owned=False,
        login=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        extra={"kind": "real cluster", "scheme": parts.scheme},
    )


def _standin_info(port: int) -> dict[str, object] | None:
    """The stand-in's self-description, or None when whatever listens there is not the stand-in."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_standin/info", timeout=3) as resp:
            if resp.headers.get("X-Elastic-Product") != "Elasticsearch":
                return None
            info = json.loads(resp.read())
            return info if info.get("standin") else None
    except (OSError, ValueError, urllib.error.URLError):
        return None


def _endpoint(owned: bool) -> Endpoint:
    return Endpoint(NAME, "127.0.0.1", PORT, owned=owned, extra={"kind": "stand-in", "scheme": "http"})


def ensure() -> Endpoint:
    """The Elasticsearch to use: ``ELASTICSEARCH_URL``'s cluster, or the stand-in (started if needed)."""
    url = os.environ.get(URL_ENV)
    if url:
        return _real_cluster(url)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    # Several test sessions may call this at once: one starts the server, the others reuse it.
    with open(RUN_DIR / "es-standin.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = source_sha256()  # of all the stand-in's modules, as the server reports it
        pid = owned_pid(NAME)
        if port_open(PORT):
            info = _standin_info(PORT)
            if info is None:
                raise RuntimeError(
                    f"127.0.0.1:{PORT} is taken by something that is not the Elasticsearch stand-in; "
                    f"set RETENTION_ES_PORT to a free port or {URL_ENV} to a real cluster"
                )
            if info.get("source_sha256") == current or pid is None:
                return _endpoint(owned=pid is not None)
            # Ours, but started from an older version of the server module: restart it.
            say("restarting the Elasticsearch stand-in (its code changed)")
            stop(NAME)
        log = RUN_DIR / "es-standin" / "es-standin.log"
        say(f"starting the Elasticsearch stand-in on 127.0.0.1:{PORT}")
        start(
            NAME, [sys.executable, "-m", "devservers.es_standin_server", "--port", str(PORT)], log=log, cwd=PROJECT_ROOT
        )
        wait_for_port(PORT, seconds=20, what="the Elasticsearch stand-in", log=log)
        deadline = time.monotonic() + 10
        while _standin_info(PORT) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Elasticsearch stand-in on port {PORT} does not answer; see {log}")
            time.sleep(0.1)
        return _endpoint(owned=True)


def stop_all() -> list[str]:
    """Stop the stand-in if these scripts started it; never touches a real cluster."""
    return [NAME] if stop(NAME, grace=5.0) else []
