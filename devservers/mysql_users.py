"""The least-privilege MySQL account a namespace's Airflow connects as.

Root (the dev server's own account) creates the account and gives it exactly the statements
``include.retention.cli.grants`` prints for the policy; Airflow, through
``connections.airflow_connections`` (the demo, ``scripts/airflow.sh``, the cluster, the e2e
tests), then connects as this account and never as root. Root stays with what a DBA does:
creating and seeding the schema, and the tests' reading of the stores as a whole.

One account per contact-center database (``ret_<database>``), host part the server's address
as the client reaches it (``127.0.0.1``), so it cannot log in from elsewhere.

Its password is derived (HMAC-SHA256 of the account's name) from a development secret made
once per checkout in ``.run/mysql-dev-secret`` (mode 0600): not a constant in the repository,
because the account is real on a server that may be the user's own MariaDB, and not one file
per namespace, because the e2e tests make a namespace per world and every process (the
Airflow components, Celery workers, test subprocesses) must arrive at the same password
without asking anyone. It is never printed or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devservers.procs import RUN_DIR, Endpoint, say

SECRET_FILE = RUN_DIR / "mysql-dev-secret"
#: MySQL's limit on a user name (MariaDB allows 80); longer names are hashed.
_MAX_LOGIN = 32
_TABLE_MISSING = 1146


@dataclass(frozen=True)
class StoreAccount:
    """The account ``retention_mysql`` and ``retention_ledger`` log in as."""

    login: str
    password: str = field(repr=False)
    host: str

    @property
    def quoted(self) -> str:
        """``'login'@'host'``, as GRANT and CREATE USER name it."""
        return f"'{self.login}'@'{self.host}'"


def _secret(path: Path = SECRET_FILE) -> bytes:
    """The checkout's development secret; made on first use, atomically (another process may
    be making it at the same moment: the first link wins and both read that one)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip().encode()


def store_login(database: str) -> str:
    """The account's name for a contact-center database."""
    login = f"ret_{database}"
    if len(login) > _MAX_LOGIN:
        login = "ret_" + hashlib.sha256(database.encode()).hexdigest()[: _MAX_LOGIN - 4]
    return login


def store_account(endpoint: Endpoint, database: str) -> StoreAccount:
    """The account for ``database`` on this server (computed: no server is asked)."""
    login = store_login(database)
    password = hmac.new(_secret(), login.encode(), hashlib.sha256).hexdigest()
    # An address as the host part matches however the server resolves names; a name may not.
    host = endpoint.host if endpoint.host.replace(".", "").isdigit() else "%"
    return StoreAccount(login, password, host)


def coverage_account(endpoint: Endpoint, database: str) -> StoreAccount:
    """The read-only account the coverage check lists ``database`` as (``retention_coverage_mysql``):
    ``SELECT`` on the whole database, so that it sees the tables no policy target names."""
    login = "cov_" + store_login(database)[4:]
    password = hmac.new(_secret(), login.encode(), hashlib.sha256).hexdigest()
    return StoreAccount(login, password, store_account(endpoint, database).host)


def _root(endpoint: Endpoint) -> Any:
    import MySQLdb

    return MySQLdb.connect(host=endpoint.host, port=endpoint.port, user=endpoint.login or "root",
                           passwd=endpoint.password or "", charset="utf8mb4", autocommit=True)


def ensure_store_user(endpoint: Endpoint, database: str, ledger_database: str) -> StoreAccount:
    """Create the account for ``database`` if needed, set its password, and grant it what the
    policy needs (idempotent); as root.

    The grants are the CLI's (``mysql_grant_statements`` with its default partitioned tables).
    GRANT adds and never takes away: a table dropped from the policy keeps its grant until
    the account is dropped. A table grant needs the table, so while ``database`` does not
    exist yet only the ledger is granted (and said); call again once it is seeded. Grants
    survive the tables being dropped and created again (the demo's reset).
    """
    import MySQLdb

    from include.retention.cli.grants import DEFAULT_PARTITIONED, mysql_grant_statements
    from include.retention.policy import load_policy

    account = store_account(endpoint, database)
    statements = mysql_grant_statements(load_policy(), user=account.login, host=account.host, database=database,
                                        ledger_database=ledger_database, partitioned=DEFAULT_PARTITIONED)
    conn = _root(endpoint)
    try:
        cur = conn.cursor()
        named = account.quoted.replace("%", "%%")  # the statement is formatted with the password
        cur.execute(f"CREATE USER IF NOT EXISTS {named} IDENTIFIED BY %s", (account.password,))
        cur.execute(f"ALTER USER {named} IDENTIFIED BY %s", (account.password,))  # the secret may be new
        cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (database,))
        database_exists = bool(cur.fetchone()[0])
        skipped = 0
        for statement in statements:
            try:
                cur.execute(statement)
            except MySQLdb.ProgrammingError as exc:
                if exc.args[0] != _TABLE_MISSING or database_exists:
                    raise
                skipped += 1
        coverage = coverage_account(endpoint, database)
        reader = coverage.quoted.replace("%", "%%")
        cur.execute(f"CREATE USER IF NOT EXISTS {reader} IDENTIFIED BY %s", (coverage.password,))
        cur.execute(f"ALTER USER {reader} IDENTIFIED BY %s", (coverage.password,))
        cur.execute(f"GRANT SELECT ON `{database}`.* TO {coverage.quoted}")
        if skipped:
            say(f"MySQL account {account.login}: {database} does not exist yet, so it holds the ledger's grant only; "
                "ensure it again once the database is seeded")
    finally:
        conn.close()
    return account


def drop_store_user(endpoint: Endpoint, database: str) -> None:
    """Drop the account for ``database`` (a test's world, on its way out); as root."""
    account = store_account(endpoint, database)
    conn = _root(endpoint)
    try:
        conn.cursor().execute(f"DROP USER IF EXISTS {account.quoted}")
        conn.cursor().execute(f"DROP USER IF EXISTS {coverage_account(endpoint, database).quoted}")
    finally:
        conn.close()
