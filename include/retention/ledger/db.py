"""The ledger database: its connection and cursors.

The ledger (connection ``retention_ledger``) records what the package did and the few
decisions operators take by hand. No column holds a raw subject id: subjects are stored as
a keyed hash (``subject_hash``), and where the id must stay usable (holds, open requests)
as a Fernet token (``subject_enc``) that only the ``retention_keys`` connection can open.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any, Iterator

LEDGER_CONN_ID = "retention_ledger"
_DATABASE_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def hook(conn_id: str, schema: str | None = None) -> Any:
    from airflow.providers.mysql.hooks.mysql import MySqlHook

    return MySqlHook(mysql_conn_id=conn_id, schema=schema) if schema else MySqlHook(mysql_conn_id=conn_id)


def ledger_database(conn_id: str = LEDGER_CONN_ID) -> str:
    """The ledger's database name, from the connection's schema."""
    name = hook(conn_id).get_connection(conn_id).schema
    if not name or not _DATABASE_NAME.match(name):
        raise ValueError(f"connection {conn_id!r} must name the ledger database (letters, digits, _), got {name!r}")
    return str(name)


@contextmanager
def connect(conn_id: str = LEDGER_CONN_ID) -> Iterator[Any]:
    """A short-lived autocommit connection to the ledger; closed on exit."""
    conn = hook(conn_id).get_conn()
    conn.autocommit(True)
    try:
        yield conn
    finally:
        conn.close()


def plain_cursor(conn: Any) -> Any:
    import MySQLdb.cursors

    return conn.cursor(MySQLdb.cursors.Cursor)
