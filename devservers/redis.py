"""Redis: reuse the one on 127.0.0.1:6379, else run a private one we own on 6380."""

from __future__ import annotations

import os
import shutil

from devservers.procs import RUN_DIR, Endpoint, apt_install, owned_pid, port_open, say, start, wait_for_port

SHARED_PORT = 6379
PRIVATE_PORT = int(os.environ.get("RETENTION_REDIS_PORT", "6380"))


def _answers(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def ensure() -> Endpoint:
    if port_open(SHARED_PORT) and _answers(SHARED_PORT):
        return Endpoint("redis", "127.0.0.1", SHARED_PORT, owned=False)
    if owned_pid("redis") and port_open(PRIVATE_PORT):
        return Endpoint("redis", "127.0.0.1", PRIVATE_PORT, owned=True)
    server = shutil.which("redis-server")
    if not server:
        apt_install(["redis-server"])
        server = shutil.which("redis-server")
        if not server:
            raise RuntimeError("redis-server installed but not found on PATH")
    workdir = RUN_DIR / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    say(f"starting a private Redis on 127.0.0.1:{PRIVATE_PORT}")
    log = workdir / "redis.log"
    start(
        "redis",
        [server, "--bind", "127.0.0.1", "--port", str(PRIVATE_PORT), "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        log=log,
    )
    wait_for_port(PRIVATE_PORT, seconds=20, what="Redis", log=log)
    return Endpoint("redis", "127.0.0.1", PRIVATE_PORT, owned=True)


