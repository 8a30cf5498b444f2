"""MariaDB: reuse the one on 127.0.0.1:3306, else run a private instance we own on 3307."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

from devservers.procs import RUN_DIR, Endpoint, apt_install, owned_pid, port_open, say, start, wait_for_port

SHARED_PORT = 3306
PRIVATE_PORT = int(os.environ.get("RETENTION_MARIADB_PORT", "3307"))
DATA_DIR = RUN_DIR / "mariadb"


def _binaries() -> tuple[str | None, str | None]:
    server = shutil.which("mariadbd") or ("/usr/sbin/mariadbd" if os.path.exists("/usr/sbin/mariadbd") else None)
    return server, shutil.which("mariadb-install-db")


def _root_login_works(port: int) -> bool:
    import MySQLdb  # local import: only needed once a server answers

    try:
        MySQLdb.connect(host="127.0.0.1", port=port, user="root", passwd="", connect_timeout=3).close()
        return True
    except MySQLdb.Error:
        return False


def ensure() -> Endpoint:
    if port_open(SHARED_PORT) and _root_login_works(SHARED_PORT):
        return Endpoint("mariadb", "127.0.0.1", SHARED_PORT, owned=False, login="root")
    if owned_pid("mariadb") and port_open(PRIVATE_PORT):
        return Endpoint("mariadb", "127.0.0.1", PRIVATE_PORT, owned=True, login="root")
    server, install_db = _binaries()
    if not server or not install_db:
        apt_install(["mariadb-server", "mariadb-client"])
        server, install_db = _binaries()
        if not server or not install_db:
            raise RuntimeError("mariadb-server installed but mariadbd not found")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    datadir = DATA_DIR / "data"
    if not (datadir / "mysql").exists():
        say(f"initialising a private MariaDB under {datadir}")
        subprocess.run(
            [install_db, f"--datadir={datadir}", "--user=root", "--auth-root-authentication-method=normal",
             "--skip-test-db"],
            check=True,
            capture_output=True,
        )
    say(f"starting a private MariaDB on 127.0.0.1:{PRIVATE_PORT}")
    log = DATA_DIR / "mariadb.log"
    start(
        "mariadb",
        [server, "--no-defaults", f"--datadir={datadir}", "--user=root", "--bind-address=127.0.0.1",
         f"--port={PRIVATE_PORT}", f"--socket={DATA_DIR / 'mariadb.sock'}", f"--pid-file={DATA_DIR / 'mariadb.pid'}",
         "--innodb-buffer-pool-size=256M", "--skip-log-bin"],
        log=log,
    )
    wait_for_port(PRIVATE_PORT, seconds=60, what="MariaDB", log=log)
    for _ in range(50):
        if _root_login_works(PRIVATE_PORT):
            break
        time.sleep(0.2)
    return Endpoint("mariadb", "127.0.0.1", PRIVATE_PORT, owned=True, login="root")
