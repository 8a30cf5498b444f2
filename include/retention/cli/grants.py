"""Least-privilege MySQL grants for the package's users, generated from the policy.

The ``retention_mysql`` user may read and delete rows of the tables the policy lists, and
nothing else:

- ``SELECT, DELETE`` on every table a MySQL target of the policy names (SELECT because each
  DELETE filters on the table's columns and the purge counts and walks its rows);
- ``ALTER, DROP`` as well on the RANGE-partitioned ones: MariaDB 10.11 refuses
  ``ALTER TABLE ... DROP PARTITION`` without both (error 1142 names the missing one). DROP on
  a table also allows ``DROP TABLE`` of it; no privilege splits the two, so it is granted
  only where partitions are dropped;
- ``SELECT`` on the policy's tenant registry (``tenant_registry``, default ``tenants``), which the
  deletion-requests DAG and the admin CLI read to check a tenant exists
  (``requests.intake.tenant_in_contact_center``).

``information_schema`` needs no grant: it shows each user the tables it holds a privilege on.
The ``retention_ledger`` user owns its own database (``ALL PRIVILEGES`` on it): the
migrations create and alter its tables.

    python -m include.retention.cli.grants --user retention --host 10.0.% \\
        --database contact_center --ledger-database retention_ledger [--partitioned TABLE ...]
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Iterable, Sequence

from include.retention.policy import MySqlTarget, Policy, load_policy

#: Tables the package reads but never deletes from (see the module docstring).
#: ``--partitioned`` when it is not given: the tables the contact center RANGE-partitions by
#: month. Kept here, not read from the demo schema (``devdata/schema.py``, which a test holds
#: to the same list), because product code does not import development tooling.
DEFAULT_PARTITIONED = ("call_metrics", "call_records")
PURGE_PRIVILEGES = ("SELECT", "DELETE")
PARTITION_PRIVILEGES = ("ALTER", "DROP")

_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_USER = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
_HOST = re.compile(r"^[A-Za-z0-9_.%:-]{1,255}$")


def _identifier(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{what} must be letters, digits and _ (at most 64), got {name!r:.80}")
    return f"`{name}`"


def _account(user: str, host: str) -> str:
    if not _USER.match(user):
        raise ValueError(f"user must be letters, digits, '_', '.' or '-', got {user!r:.80}")
    if not _HOST.match(host):
        raise ValueError(f"host must be a host name, an address or a pattern with %, got {host!r:.80}")
    return f"'{user}'@'{host}'"


def mysql_table_privileges(policy: Policy, partitioned: Iterable[str] = ()) -> dict[str, tuple[str, ...]]:
    """Privileges per table of the contact center's database, in table order.

    :param partitioned: tables whose expired partitions the store drops (RANGE on the time
        column); they also get ALTER and DROP. A name the policy does not list is refused.
    """
    tables = sorted({t.table for t in policy.targets if isinstance(t, MySqlTarget)})
    unknown = sorted(set(partitioned) - set(tables))
    if unknown:
        raise ValueError(f"partitioned tables that no MySQL target of the policy names: {', '.join(unknown)}")
    out: dict[str, tuple[str, ...]] = {}
    for table in tables:
        extra = PARTITION_PRIVILEGES if table in set(partitioned) else ()
        out[table] = PURGE_PRIVILEGES + extra
    out.setdefault(policy.tenant_registry.table, ("SELECT",))  # the tenant registry: read only
    return out


def mysql_grant_statements(
    policy: Policy,
    *,
    user: str,
    host: str,
    database: str,
    ledger_database: str,
    partitioned: Iterable[str] = (),
    ledger_user: str | None = None,
) -> list[str]:
    """The GRANT statements for the ``retention_mysql`` user (and the ledger's, by default the same).

    Creating the users and their passwords is left to the DBA: no secret passes through here.
    """
    account = _account(user, host)
    ledger_account = _account(ledger_user or user, host)
    db = _identifier(database, "database")
    statements = [
        f"GRANT {', '.join(privileges)} ON {db}.{_identifier(table, 'table')} TO {account}"
        for table, privileges in mysql_table_privileges(policy, partitioned).items()
    ]
    # In a database-level grant '_' is a wildcard: escaped, the grant names this database only.
    ledger = _identifier(ledger_database, "ledger database").replace("_", "\\_")
    statements.append(f"GRANT ALL PRIVILEGES ON {ledger}.* TO {ledger_account}")
    return statements


def main(argv: Sequence[str] | None = None) -> int:
    """Print the GRANT statements, one per line, for a DBA to run."""
    parser = argparse.ArgumentParser(prog="python -m include.retention.cli.grants", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--user", required=True, help="the retention_mysql user")
    parser.add_argument("--host", default="%", help="the users' host part (default %%: any)")
    parser.add_argument("--database", required=True, help="the contact center's database")
    parser.add_argument("--ledger-database", required=True)
    parser.add_argument("--ledger-user", help="the retention_ledger user, when it is not the same")
    parser.add_argument("--partitioned", nargs="*", metavar="TABLE",
                        help="tables whose partitions are dropped (default: the contact center's partitioned "
                             f"tables, {' '.join(DEFAULT_PARTITIONED)}; give it with no TABLE for none)")
    args = parser.parse_args(argv)
    partitioned = args.partitioned if args.partitioned is not None else list(DEFAULT_PARTITIONED)
    for statement in mysql_grant_statements(
        load_policy(), user=args.user, host=args.host, database=args.database,
        ledger_database=args.ledger_database, partitioned=partitioned, ledger_user=args.ledger_user,
    ):
        print(statement + ";")
    return 0


if __name__ == "__main__":
    sys.exit(main())
