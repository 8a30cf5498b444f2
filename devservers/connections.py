"""Airflow connections (``AIRFLOW_CONN_*``) for the local servers.

The demo and the tests use different databases, Redis dbs and buckets, so that a test run
never touches the demo's data. ``retention_mysql`` and ``retention_ledger`` log in as the
namespace's least-privilege account (``devservers.mysql_users``), never as root; the root
connection (``dev_mysql_root``) is for the seeder and the tests' inspection only and is not
among the connections Airflow is given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

from devservers.mysql_users import StoreAccount, coverage_account, store_account
from devservers.procs import Endpoint


@dataclass(frozen=True)
class Namespace:
    """Where one user of the servers (the demo, the tests) keeps its data."""

    mysql_database: str
    ledger_database: str
    redis_db: int
    bucket: str


# Redis db 3 for the demo: never db 0, which a user's own applications are likely to use.
DEMO = Namespace(mysql_database="contact_center", ledger_database="retention_ledger", redis_db=3, bucket="cc-demo")
TEST = Namespace(mysql_database="cc_test", ledger_database="retention_ledger_test", redis_db=9, bucket="cc-test")

# Keys for subject hashes, subject encryption and certificate signatures. These are
# development keys for the local servers only; production keys live in a secrets backend.
DEV_KEYS = {
    "subject_hash_key": "dev-only-subject-hash-key-0123456789abcdef",
    "subject_encryption_key": "ZGV2LW9ubHktZW5jcnlwdGlvbi1rZXktMDEyMzQ1Njc=",
    "certificate_key": "dev-only-certificate-signing-key-fedcba9876543210",
}


#: The dev server's root account: only for what a DBA would do (create and seed the schema,
#: ``devdata``) and for the tests reading the stores whole. Never given to Airflow.
ROOT_MYSQL_CONN_ID = "dev_mysql_root"


def mysql_uri(ep: Endpoint, database: str, account: StoreAccount | None = None) -> str:
    """A ``mysql://`` URI as ``account``, or as the endpoint's own (root) login without one."""
    login, password = (account.login, account.password) if account else (ep.login or "root", ep.password)
    auth = quote(login, safe="")
    if password:
        auth += ":" + quote(password, safe="")
    return f"mysql://{auth}@{ep.host}:{ep.port}/{database}?charset=utf8mb4"


def store_mysql_connections(ep: Endpoint, mysql_database: str, ledger_database: str) -> dict[str, str]:
    """``retention_mysql`` and ``retention_ledger`` as the least-privilege account of
    ``mysql_database`` (which ``mysql_users.ensure_store_user`` creates)."""
    account = store_account(ep, mysql_database)
    return {"AIRFLOW_CONN_RETENTION_MYSQL": mysql_uri(ep, mysql_database, account),
            "AIRFLOW_CONN_RETENTION_LEDGER": mysql_uri(ep, ledger_database, account),
            # the coverage check's read-only account (SELECT on the database: mysql_users.coverage_account)
            "AIRFLOW_CONN_RETENTION_COVERAGE_MYSQL": mysql_uri(ep, mysql_database, coverage_account(ep, mysql_database))}


def root_mysql_connection(ep: Endpoint, database: str) -> dict[str, str]:
    """``dev_mysql_root`` (see :data:`ROOT_MYSQL_CONN_ID`), for the seeder: set it for seeding only."""
    return {f"AIRFLOW_CONN_{ROOT_MYSQL_CONN_ID.upper()}": mysql_uri(ep, database)}


def airflow_connections(endpoints: dict[str, Endpoint], ns: Namespace) -> dict[str, str]:
    """The ``AIRFLOW_CONN_*`` variables for these endpoints and this namespace (MySQL as the
    namespace's least-privilege account: ensure it with ``mysql_users.ensure_store_user``)."""
    env: dict[str, str] = {}
    if "mariadb" in endpoints:
        env |= store_mysql_connections(endpoints["mariadb"], ns.mysql_database, ns.ledger_database)
    if "redis" in endpoints:
        ep = endpoints["redis"]
        env["AIRFLOW_CONN_RETENTION_REDIS"] = json.dumps(
            {"conn_type": "redis", "host": ep.host, "port": ep.port, "password": ep.password or None,
             "extra": {"db": ns.redis_db}}
        )
    if "s3" in endpoints:
        ep = endpoints["s3"]
        env["AIRFLOW_CONN_RETENTION_COS"] = json.dumps(
            {
                "conn_type": "aws",
                "login": ep.login,
                "password": ep.password,
                "extra": {
                    "endpoint_url": f"http://{ep.host}:{ep.port}",
                    "region_name": "us-east-1",
                    "service_config": {"s3": {"bucket_name": ns.bucket}},
                },
            }
        )
    if "elasticsearch" in endpoints:
        ep = endpoints["elasticsearch"]
        scheme = str(ep.extra.get("scheme", "http"))
        auth = ""
        if ep.login:
            auth = f"{quote(ep.login, safe='')}:{quote(ep.password, safe='')}@"
        env["AIRFLOW_CONN_RETENTION_ELASTICSEARCH"] = f"elasticsearch://{auth}{ep.host}:{ep.port}/{scheme}"
    env["AIRFLOW_CONN_RETENTION_KEYS"] = json.dumps({"conn_type": "generic", "extra": DEV_KEYS})
    return env
