"""An S3 store for the demo and the tests: OpenStack Swift 2.30 with its ``s3api`` middleware.

Swift is what Tencent COS most resembles among the S3 servers that install from Debian: a
real object store behind an S3 gateway that insists on ``Content-MD5`` for DeleteObjects.
It runs as one node, configured under ``.run/swift`` (configs written here; rings built with
Swift's ``RingBuilder``, the class behind ``swift-ring-builder``, in one process; one device
on a directory, on tmpfs where there is one: see ``_devices_dir``), as processes we own:
the proxy with ``s3api`` + ``tempauth`` (user ``test:tester``, key ``testing``) on
127.0.0.1:18080 (``RETENTION_S3_PORT`` overrides; Swift's own default, 8080, is Airflow's),
the account, container and object servers on free local ports, all ``workers = 0``, and a
memcached for tempauth and Swift's info cache (Debian ``memcached``; without it the node still
runs). Object versioning (``versioned_writes`` with ``allow_object_versioning`` + ``symlink``)
is on, so s3api's bucket versioning works and a versioned bucket can be tested.

Only where Swift cannot be installed or started does ``ensure()`` fall back to ``moto_server``
on the same port, and says so: a WARNING line, and the Endpoint's ``extra["kind"]`` reads
``"moto (fallback: Swift unavailable)"``.

``SwiftNode`` is the same node with another home and port, for tests and benchmarks that need
a private server they can stop or damage (a failure half-way through a purge).
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from devservers.procs import (
    RUN_DIR,
    Endpoint,
    apt_install,
    owned_pid,
    port_free,
    port_open,
    say,
    spare_port,
    start,
    stop,
    wait_for_port,
)

PORT = int(os.environ.get("RETENTION_S3_PORT", "18080"))
LOGIN = "test:tester"
PASSWORD = "testing"
KIND_SWIFT = "swift-s3api"
KIND_MOTO = "moto (fallback: Swift unavailable)"
SWIFT_PACKAGES = ["swift", "swift-proxy", "swift-account", "swift-container", "swift-object"]
SWIFT_PYTHON = "/usr/bin/python3"  # Debian's swift is installed for the system interpreter
SERVERS = ("proxy", "account", "container", "object")
RING_SERVERS = ("account", "container", "object")
HASH_PATH_PREFIX = HASH_PATH_SUFFIX = "retention-dev"  # swift.conf [swift-hash]; dev only
ACCOUNT = "AUTH_test"  # tempauth's account for LOGIN
PART_POWER = 6  # 64 partitions: plenty for one device
# Keys of one DeleteObjects that s3api deletes at once (its default is 2). Each key is a HEAD
# and a DELETE through the object and container servers; with 2 in flight those processes
# mostly wait on each other. Tencent COS runs a batch delete in parallel on its side too.
MULTI_DELETE_CONCURRENCY = int(os.environ.get("RETENTION_SWIFT_MULTI_DELETE_CONCURRENCY", "8"))
MOTO_NAME = "s3-moto"
MEMCACHED = "memcached"  # Swift's tempauth and container-info cache; the node runs without it if absent

# Eventlet's green DNS imports dnspython and httpx: 0.6 s of every Swift process's start-up,
# for a node that only ever talks to 127.0.0.1.
_SWIFT_ENV = {"EVENTLET_NO_GREENDNS": "yes"}

_RING_BUILDER = """\
import json, sys
from swift.common.ring import RingBuilder
etc, ports, part_power = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
for server, port in ports.items():
    builder = RingBuilder(part_power, 1, 1)
    builder.add_dev({"region": 1, "zone": 1, "ip": "127.0.0.1", "port": port, "device": "d1",
                     "weight": 1, "meta": ""})
    builder.rebalance()
    builder.save(f"{etc}/{server}.builder")
    builder.get_ring().save(f"{etc}/{server}.ring.gz")
"""

# Runs one Swift server from our own directory: ``set_swift_dir`` makes Swift read our
# swift.conf (hash prefix, storage policy) instead of /etc/swift/swift.conf.
# Monkey-patching first is what eventlet recommends, and it is where most of a Swift
# process's start-up went: eventlet 0.33 swaps each RLock that exists when it patches, one
# full gc.collect() and one gc.get_referrers() per lock (18 locks: 0.5 s idle, 2.7 s on a
# busy machine, per process). The launcher does the same swap in one pass (one
# get_referrers for all locks, no collections), then lets eventlet patch the modules.
# Swift's run_wsgi patches the same modules again, which is then a no-op.
_LAUNCHER = """\
import gc, sys, threading
import eventlet.patcher

def _green_existing_locks_once():
    rlock_type = type(threading.RLock())
    olds = [o for o in gc.get_objects() if isinstance(o, rlock_type) and not isinstance(o, threading._PyRLock)]
    swap = {}
    for old in olds:
        new = threading._PyRLock()
        while old._is_owned():
            old.release()
            new.acquire()
        swap[id(old)] = (old, new)
    for ref in gc.get_referrers(*olds):
        try:
            ref_vars = vars(ref)
        except TypeError:
            continue
        for name, value in list(ref_vars.items()):
            pair = swap.get(id(value))
            if pair is not None and pair[0] is value:
                setattr(ref, name, pair[1])

_green_existing_locks_once()
eventlet.patcher._green_existing_locks = lambda: None
eventlet.patcher.monkey_patch(all=False, socket=True, select=True, thread=True)
from swift.common import utils
utils.set_swift_dir(sys.argv[1])
from swift.common.storage_policy import reload_storage_policies
reload_storage_policies()
from swift.common.wsgi import run_wsgi
sys.exit(run_wsgi(sys.argv[2], sys.argv[3], verbose=True))
"""


def s3_client(endpoint: Endpoint, **config: object):  # type: ignore[no-untyped-def]
    """A plain boto3 S3 client for ``endpoint`` (no Content-MD5 fix: see the COS store)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=f"http://{endpoint.host}:{endpoint.port}",
        aws_access_key_id=endpoint.login or LOGIN,
        aws_secret_access_key=endpoint.password or PASSWORD,
        region_name="us-east-1",
        config=Config(**{  # type: ignore[arg-type]
            "s3": {"addressing_style": "path"},
            "retries": {"max_attempts": 1, "mode": "standard"},
            "connect_timeout": 2,
            "read_timeout": 10,
            **config,
        }),
    )


_PROBES: dict[int, object] = {}  # one probe client per port: creating a boto3 client costs 0.2-0.5 s here


def _answers_s3(port: int, login: str = LOGIN, password: str = PASSWORD) -> bool:
    """Whether an S3 ListBuckets with our credentials succeeds on ``port``."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = _PROBES.get(port)
    if client is None:
        client = _PROBES[port] = s3_client(Endpoint("s3", "127.0.0.1", port, owned=False, login=login,
                                                    password=password))
    try:
        client.list_buckets()  # type: ignore[attr-defined]
        return True
    except (BotoCoreError, ClientError):
        return False


def _devices_dir(home: Path) -> Path:
    """Where the node's one device lives: on tmpfs when the machine has one.

    Swift fsyncs two or three times per object written or deleted, and an fsync on this
    kind of VM's disk costs about 6 ms: on disk the node manages ~85 PUTs/s and a
    1,000-key DeleteObjects takes over 10 s, which measures the disk, not the S3 API.
    The data is throwaway (tests, demo seeds); ``RETENTION_SWIFT_ON_DISK=1`` keeps it
    under ``home`` instead.
    """
    shm = Path("/dev/shm")
    if os.environ.get("RETENTION_SWIFT_ON_DISK") != "1" and shm.is_dir() and os.access(shm, os.W_OK):
        tag = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12]
        return shm / f"retention-swift-{tag}"
    return home / "srv"


def swift_installed() -> bool:
    return all(Path(f"/usr/bin/swift-{name}-server").exists() for name in SERVERS) and bool(
        shutil.which("swift-ring-builder")
    )


class SwiftNode:
    """One single-node Swift with s3api, living under ``home`` and listening on ``port``.

    :param name: prefix of the pid-file names (``<name>-proxy``, ...), so that two nodes
        never stop each other's processes.
    """

    def __init__(self, home: Path, port: int, name: str = "swift") -> None:
        self.home, self.port, self.name = home, port, name
        self.etc = home / "etc"
        self.devices = _devices_dir(home)
        self.logs = home / "log"
        self.state_file = home / "state.json"

    # ------------------------------------------------------------------ state

    def proc_name(self, server: str) -> str:
        return f"{self.name}-{server}"

    def running(self) -> bool:
        return all(owned_pid(self.proc_name(s)) for s in SERVERS)

    def pids(self) -> dict[str, int | None]:
        return {s: owned_pid(self.proc_name(s)) for s in (*SERVERS, MEMCACHED)}

    def endpoint(self) -> Endpoint:
        return Endpoint("s3", "127.0.0.1", self.port, owned=True, login=LOGIN, password=PASSWORD,
                        extra={"kind": KIND_SWIFT})

    def _load_ports(self) -> dict[str, int]:
        try:
            ports = json.loads(self.state_file.read_text())["ports"]
            return {k: int(v) for k, v in ports.items()}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def object_dir(self, bucket: str, key: str) -> Path | None:
        """The on-disk directory of an object (Swift's hash path), for tests that damage one."""
        path = "/" + "/".join([ACCOUNT, bucket, key])
        digest = hashlib.md5((HASH_PATH_PREFIX + path + HASH_PATH_SUFFIX).encode(), usedforsecurity=False).hexdigest()
        found = sorted((self.devices / "d1" / "objects").glob(f"*/{digest[-3:]}/{digest}"))
        return found[0] if found else None

    # ------------------------------------------------------------------ configuration

    def _backend_ports(self) -> tuple[dict[str, int], bool]:
        """Ports of the account/container/object servers; reuse the last ones when free."""
        ports = self._load_ports()
        rings = all((self.etc / f"{s}.ring.gz").exists() for s in RING_SERVERS)
        if rings and set(ports) == set(RING_SERVERS) and all(port_free(p) for p in ports.values()):
            return ports, False
        chosen: dict[str, int] = {}
        for server in RING_SERVERS:
            port = spare_port()
            while port in chosen.values() or port == self.port:
                port = spare_port()
            chosen[server] = port
        return chosen, True

    def _write_configs(self, ports: dict[str, int], memcache_port: int | None) -> None:
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.devices / "d1").mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        user = getpass.getuser()
        (self.etc / "swift.conf").write_text(
            "[swift-hash]\n"
            f"swift_hash_path_prefix = {HASH_PATH_PREFIX}\n"
            f"swift_hash_path_suffix = {HASH_PATH_SUFFIX}\n\n"
            "[storage-policy:0]\nname = Policy-0\ndefault = yes\n\n"
            "[swift-constraints]\n"
        )
        common = (
            "[DEFAULT]\n"
            "bind_ip = 127.0.0.1\n"
            "bind_port = {port}\n"
            "workers = 0\n"
            f"user = {user}\n"
            f"swift_dir = {self.etc}\n"
            f"devices = {self.devices}\n"
            "mount_check = false\n"
            "log_level = WARNING\n"
            "log_name = {server}-server\n"
            "eventlet_debug = false\n\n"
        )
        for server in RING_SERVERS:
            (self.etc / f"{server}-server.conf").write_text(
                common.format(port=ports[server], server=server)
                + f"[pipeline:main]\npipeline = {server}-server\n\n"
                + f"[app:{server}-server]\nuse = egg:swift#{server}\n"
                # the object server's expirer/updater/auditor sections are not needed: no daemons run
            )
        # s3api must come before tempauth (it turns the S3 signature into auth details that
        # tempauth checks); versioned_writes with allow_object_versioning needs symlink.
        pipeline = (
            "catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk "
            "s3api tempauth copy slo dlo versioned_writes symlink proxy-logging proxy-server"
        )
        (self.etc / "proxy-server.conf").write_text(
            common.format(port=self.port, server="proxy")
            + f"[pipeline:main]\npipeline = {pipeline}\n\n"
            "[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\n\n"
            "[filter:tempauth]\nuse = egg:swift#tempauth\n"
            f"user_{LOGIN.replace(':', '_')} = {PASSWORD} .admin\n\n"
            "[filter:s3api]\nuse = egg:swift#s3api\nlocation = us-east-1\n"
            f"multi_delete_concurrency = {MULTI_DELETE_CONCURRENCY}\n\n"
            "[filter:versioned_writes]\nuse = egg:swift#versioned_writes\n"
            "allow_versioned_writes = true\nallow_object_versioning = true\n\n"
            "[filter:symlink]\nuse = egg:swift#symlink\n\n"
            "[filter:cache]\nuse = egg:swift#memcache\n"
            # without memcached the filter still has to be there (tempauth asks for it); it
            # then logs a connection error per request, so point it at our own or say so
            + (f"memcache_servers = 127.0.0.1:{memcache_port}\n\n" if memcache_port else "\n")
            + "[filter:catch_errors]\nuse = egg:swift#catch_errors\n\n"
            "[filter:gatekeeper]\nuse = egg:swift#gatekeeper\n\n"
            "[filter:healthcheck]\nuse = egg:swift#healthcheck\n\n"
            "[filter:proxy-logging]\nuse = egg:swift#proxy_logging\n\n"
            "[filter:listing_formats]\nuse = egg:swift#listing_formats\n\n"
            "[filter:bulk]\nuse = egg:swift#bulk\n\n"
            "[filter:copy]\nuse = egg:swift#copy\n\n"
            "[filter:slo]\nuse = egg:swift#slo\n\n"
            "[filter:dlo]\nuse = egg:swift#dlo\n"
        )

    def _build_rings(self, ports: dict[str, int]) -> None:
        """Build the three one-device rings with Swift's RingBuilder in one process.

        ``swift-ring-builder FILE create|add|rebalance`` is this same class behind a CLI,
        but nine CLI calls cost about 3 s of Python start-up on two cores; one process
        costs 0.6 s, and the session start waits for it.
        """
        result = subprocess.run(
            [SWIFT_PYTHON, "-c", _RING_BUILDER, str(self.etc), json.dumps(ports), str(PART_POWER)],
            capture_output=True, text=True, env={**os.environ, **_SWIFT_ENV},
        )
        if result.returncode:
            raise RuntimeError(f"building the Swift rings failed:\n{result.stdout}{result.stderr}")
        self.state_file.write_text(json.dumps({"ports": ports}))

    # ------------------------------------------------------------------ life cycle

    def start(self, *, timeout: float = 30.0) -> Endpoint:
        """Start the node (configure it first if needed) and wait until S3 answers."""
        if self.running() and port_open(self.port) and _answers_s3(self.port):
            return self.endpoint()
        self.stop()
        ports, rebuild = self._backend_ports()
        memcache_port = self._start_memcached()
        self._write_configs(ports, memcache_port)
        if rebuild:
            self._build_rings(ports)
        for server in ("account", "container", "object", "proxy"):
            self.start_server(server)
        try:
            self._wait_ready({**ports, "proxy": self.port}, timeout)
        except RuntimeError:
            self.stop()
            raise
        return self.endpoint()

    def _wait_ready(self, ports: dict[str, int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for server, port in ports.items():
            wait_for_port(port, seconds=max(1.0, deadline - time.monotonic()), what=f"swift {server}-server",
                          log=self.logs / f"{server}.log")
        while not _answers_s3(self.port):
            if time.monotonic() > deadline:
                tail = (self.logs / "proxy.log").read_text(errors="replace").splitlines()[-20:]
                raise RuntimeError(f"Swift s3api did not answer ListBuckets within {timeout:.0f}s\n" + "\n".join(tail))
            time.sleep(0.1)

    def restart_server(self, server: str, *, timeout: float = 30.0) -> None:
        """Start one stopped server again and wait until S3 answers (tests stop the proxy)."""
        self.start_server(server)
        port = self.port if server == "proxy" else self._load_ports()[server]
        self._wait_ready({server: port}, timeout)

    def _start_memcached(self) -> int | None:
        binary = shutil.which("memcached") or ("/usr/bin/memcached" if Path("/usr/bin/memcached").exists() else None)
        if not binary:
            say("memcached is not installed: Swift runs without its cache (slower; the proxy log "
                "fills with connection errors). apt-get install memcached")
            return None
        port = spare_port()
        start(self.proc_name(MEMCACHED),
              [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64", "-u", getpass.getuser()],
              log=self.logs / "memcached.log")
        return port

    def start_server(self, server: str) -> int:
        """Start one of the four servers (the tests restart the proxy after stopping it)."""
        return start(
            self.proc_name(server),
            [SWIFT_PYTHON, "-c", _LAUNCHER, str(self.etc), str(self.etc / f"{server}-server.conf"),
             f"{server}-server"],
            log=self.logs / f"{server}.log",
            env=_SWIFT_ENV,
        )

    def stop_server(self, server: str) -> bool:
        return stop(self.proc_name(server), grace=5.0)

    def stop(self) -> list[str]:
        order = ("proxy", "object", "container", "account", MEMCACHED)
        return [self.proc_name(s) for s in order if self.stop_server(s)]


DEFAULT_NODE = SwiftNode(RUN_DIR / "swift", PORT)


def _start_moto(reason: str) -> Endpoint:
    binary = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    if not Path(binary).exists():
        raise RuntimeError(f"Swift is unavailable ({reason}) and moto_server is not installed "
                           "(pip install -r requirements-dev.txt)")
    say(f"WARNING: Swift is unavailable ({reason}); FALLING BACK to moto_server on 127.0.0.1:{PORT}. "
        "Tests then run against moto, which is laxer than COS (no Content-MD5 check).")
    log = RUN_DIR / "moto" / "moto.log"
    start(MOTO_NAME, [binary, "-H", "127.0.0.1", "-p", str(PORT)], log=log)
    wait_for_port(PORT, seconds=20, what="moto_server", log=log)
    return Endpoint("s3", "127.0.0.1", PORT, owned=True, login=LOGIN, password=PASSWORD,
                    extra={"kind": KIND_MOTO})


@contextlib.contextmanager
def _start_lock() -> Iterator[None]:
    """One starter at a time: test sessions of several helpers may call ensure() at once."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with open(RUN_DIR / "swift.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure() -> Endpoint:
    """The S3 endpoint: our running Swift (or fallback moto), else a Swift started now."""
    with _start_lock():
        return _ensure()


def _ensure() -> Endpoint:
    if DEFAULT_NODE.running() and port_open(PORT) and _answers_s3(PORT):
        return DEFAULT_NODE.endpoint()
    if owned_pid(MOTO_NAME) and port_open(PORT):
        say(f"WARNING: reusing the fallback moto_server on 127.0.0.1:{PORT} (Swift was unavailable)")
        return Endpoint("s3", "127.0.0.1", PORT, owned=True, login=LOGIN, password=PASSWORD,
                        extra={"kind": KIND_MOTO})
    if port_open(PORT):
        if _answers_s3(PORT):
            say(f"reusing an S3 server on 127.0.0.1:{PORT} that these scripts did not start")
            return Endpoint("s3", "127.0.0.1", PORT, owned=False, login=LOGIN, password=PASSWORD,
                            extra={"kind": "s3 (found running)"})
        raise RuntimeError(f"port {PORT} is taken by something that is not an S3 server accepting "
                           f"{LOGIN}; set RETENTION_S3_PORT to another port")
    try:
        if not shutil.which("memcached"):
            try:
                apt_install(["memcached"])
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                say(f"could not install memcached ({exc}); Swift runs without its cache")
        if not swift_installed():
            apt_install(SWIFT_PACKAGES)
            if not swift_installed():
                raise RuntimeError("swift packages installed but the servers are not in /usr/bin")
        say(f"starting Swift (s3api) on 127.0.0.1:{PORT}")
        return DEFAULT_NODE.start()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        DEFAULT_NODE.stop()
        return _start_moto(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def stop_all() -> list[str]:
    """Stop the Swift processes (or the fallback moto) these scripts started; their names."""
    stopped = DEFAULT_NODE.stop()
    if stop(MOTO_NAME, grace=5.0):
        stopped.append(MOTO_NAME)
    return stopped


if __name__ == "__main__":
    began = time.monotonic()
    ep = ensure()
    print(f"{ep.extra.get('kind')} on {ep.host}:{ep.port} in {time.monotonic() - began:.1f}s")
