"""Start, find and stop the processes the dev servers run as, by pid file under ``.run/``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = Path(os.environ.get("RETENTION_RUN_DIR", PROJECT_ROOT / ".run"))
PID_DIR = RUN_DIR / "pids"
ENDPOINTS_FILE = RUN_DIR / "endpoints.json"


@dataclass
class Endpoint:
    """Where one server listens and how to log in. ``owned``: started by these scripts."""

    name: str
    host: str
    port: int
    owned: bool
    login: str = ""
    password: str = ""
    extra: dict[str, object] = field(default_factory=dict)


def say(message: str) -> None:
    print(f"[devservers] {message}", file=sys.stderr, flush=True)


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing listens on ``port`` (a bind succeeds)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            return True
        except OSError:
            return False


def spare_port() -> int:
    """A port the kernel has just handed out as free."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, seconds: float, what: str, host: str = "127.0.0.1", log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(port, host):
            return
        time.sleep(0.1)
    tail = ""
    if log and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    raise RuntimeError(f"{what} did not listen on {host}:{port} within {seconds:.0f}s{tail}")


def start(name: str, argv: list[str], *, log: Path, cwd: Path | None = None, env: dict[str, str] | None = None,
          pid_dir: Path | None = None) -> int:
    """Start ``argv`` in its own session (so its children stop with it) and record its pid
    (in ``pid_dir``, default ``.run/pids``)."""
    pid_dir = pid_dir or PID_DIR
    pid_dir.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    (pid_dir / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def owned_pid(name: str, *, pid_dir: Path | None = None) -> int | None:
    path = (pid_dir or PID_DIR) / f"{name}.pid"
    if not path.exists():
        return None
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (ValueError, ProcessLookupError, PermissionError):
        path.unlink(missing_ok=True)
        return None


def stop(name: str, *, grace: float = 15.0) -> bool:
    """Stop the process group we started under ``name``: TERM, then KILL after ``grace``."""
    pid = owned_pid(name)
    if pid is None:
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        # reap if it is our child
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    (PID_DIR / f"{name}.pid").unlink(missing_ok=True)
    return True


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...), from ``/proc``.

    An Airflow worker runs each task in a process group of its own (``setpgid``), so killing
    the worker's group alone leaves its running tasks behind."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo += children.get(child, [])
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid``'s process group and every process group below it, as a lost host would."""
    groups = set()
    for proc in (pid, *descendants(pid)):
        try:
            groups.add(os.getpgid(proc))
        except ProcessLookupError:
            pass
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass


def apt_install(packages: list[str]) -> None:
    """Install Debian packages when running as root with apt; else say exactly what to install."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(f"missing packages; install them with: sudo apt-get install -y {' '.join(packages)}")
    say(f"installing {' '.join(packages)} from Debian packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lists = Path("/var/lib/apt/lists")
    if not any(lists.glob("*Packages*")):
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    result = subprocess.run(["apt-get", "install", "-y", "-qq", *packages], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env)


def save_endpoints(endpoints: dict[str, Endpoint]) -> None:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    ENDPOINTS_FILE.write_text(json.dumps({k: asdict(v) for k, v in endpoints.items()}, indent=2))


def load_endpoints() -> dict[str, Endpoint]:
    if not ENDPOINTS_FILE.exists():
        return {}
    return {k: Endpoint(**v) for k, v in json.loads(ENDPOINTS_FILE.read_text()).items()}
