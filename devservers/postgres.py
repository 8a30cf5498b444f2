"""PostgreSQL for Airflow's metadata database on a local cluster (``devservers/cluster.py``).

Reuse the server on 127.0.0.1:5432 when one answers (trust or ``RETENTION_PG_ADMIN_URL``);
otherwise start a private one we own on ``RETENTION_PG_PORT`` (15432) from the installed
binaries (``initdb``/``pg_ctl``, run as the ``postgres`` user: PostgreSQL refuses root);
otherwise install Debian's ``postgresql`` first. ``ensure_database`` gives a user its own
database and role, idempotently.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote, urlsplit

from devservers.procs import RUN_DIR, Endpoint, apt_install, owned_pid, port_open, say, wait_for_port

SHARED_PORT = 5432
PRIVATE_PORT = int(os.environ.get("RETENTION_PG_PORT", "15432"))
ADMIN_URL_ENV = "RETENTION_PG_ADMIN_URL"  # a superuser's URL, for a server without trust auth
PRIVATE_ENV = "RETENTION_PG_PRIVATE"  # "1": always our own server, even when 5432 answers
DATA_DIR = RUN_DIR / "postgres"
PID_NAME = "postgres"


def _binaries() -> Path | None:
    """The newest installed server's bin directory (Debian keeps them out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def admin_url(ep: Endpoint) -> str:
    """A superuser connection to the server's ``postgres`` database."""
    if ep.extra.get("admin_url"):
        return str(ep.extra["admin_url"])
    return f"postgresql://postgres@{ep.host}:{ep.port}/postgres"


def _answers(url: str) -> bool:
    import psycopg2

    try:
        psycopg2.connect(url, connect_timeout=3).close()
        return True
    except psycopg2.Error:
        return False


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _start_private() -> Endpoint:
    bin_dir = _binaries()
    if bin_dir is None:
        apt_install(["postgresql"])
        bin_dir = _binaries()
        if bin_dir is None:
            raise RuntimeError("postgresql installed but initdb not found under /usr/lib/postgresql/*/bin")
    DATA_DIR.parent.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        DATA_DIR.mkdir(exist_ok=True)
        shutil.chown(DATA_DIR, "postgres", "postgres")
        DATA_DIR.chmod(0o700)
    if not (DATA_DIR / "PG_VERSION").exists():
        say(f"initialising a private PostgreSQL in {DATA_DIR}")
        subprocess.run(_as_postgres([str(bin_dir / "initdb"), "-D", str(DATA_DIR), "-U", "postgres",
                                     "--auth-local=trust", "--auth-host=trust", "-E", "UTF8", "--locale=C.UTF-8"]),
                       check=True, capture_output=True)
    say(f"starting a private PostgreSQL on 127.0.0.1:{PRIVATE_PORT}")
    log = DATA_DIR / "server.log"
    subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(DATA_DIR), "-l", str(log), "-w", "-t", "60",
                                 "-o", f"-p {PRIVATE_PORT} -k {DATA_DIR} -c listen_addresses=127.0.0.1", "start"]),
                   check=True, capture_output=True)
    wait_for_port(PRIVATE_PORT, seconds=30, what="PostgreSQL", log=log)
    pid = (DATA_DIR / "postmaster.pid").read_text().split()[0]
    (RUN_DIR / "pids").mkdir(parents=True, exist_ok=True)
    (RUN_DIR / "pids" / f"{PID_NAME}.pid").write_text(pid)
    return Endpoint("postgres", "127.0.0.1", PRIVATE_PORT, owned=True, login="postgres")


def ensure() -> Endpoint:
    """The server to use: the shared one on 5432 if it answers, else our private one."""
    configured = os.environ.get(ADMIN_URL_ENV)
    if configured:
        if not _answers(configured):
            raise RuntimeError(f"{ADMIN_URL_ENV} does not answer; check the URL and the server")
        parts = urlsplit(configured)
        return Endpoint("postgres", parts.hostname or "127.0.0.1", parts.port or SHARED_PORT, owned=False,
                        extra={"admin_url": configured})
    shared = Endpoint("postgres", "127.0.0.1", SHARED_PORT, owned=False, login="postgres")
    if os.environ.get(PRIVATE_ENV) != "1" and port_open(SHARED_PORT) and _answers(admin_url(shared)):
        return shared
    private = Endpoint("postgres", "127.0.0.1", PRIVATE_PORT, owned=True, login="postgres")
    if owned_pid(PID_NAME) and port_open(PRIVATE_PORT) and _answers(admin_url(private)):
        return private
    return _start_private()


def ensure_database(ep: Endpoint, database: str, user: str, password: str) -> str:
    """Create (or update) ``user`` with ``password`` and its own ``database``; its URL."""
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(admin_url(ep), connect_timeout=10)
    conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
            verb = "ALTER" if cur.fetchone() else "CREATE"
            cur.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(user)), (password,))
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if not cur.fetchone():
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8'").format(
                    sql.Identifier(database), sql.Identifier(user)))
    finally:
        conn.close()
    return f"postgresql+psycopg2://{quote(user, safe='')}:{quote(password, safe='')}@{ep.host}:{ep.port}/{database}"


def drop_database(ep: Endpoint, database: str) -> None:
    """Drop ``database`` if it exists, ending its sessions first (a fresh cluster's metadata DB)."""
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(admin_url(ep), connect_timeout=10)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
    finally:
        conn.close()


def stop_private() -> bool:
    """Stop the private server if we started it (``pg_ctl stop``)."""
    if owned_pid(PID_NAME) is None:
        return False
    bin_dir = _binaries()
    if bin_dir is not None:
        subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(DATA_DIR), "-m", "fast", "-w", "stop"]),
                       capture_output=True)
    (RUN_DIR / "pids" / f"{PID_NAME}.pid").unlink(missing_ok=True)
    return True
