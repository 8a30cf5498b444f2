"""MySQL schema of the contact center. Every DATETIME column holds UTC.

The call tables are RANGE-partitioned by month on their time column (which is therefore
part of the primary key); ``service_records`` is deliberately unpartitioned.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Iterable

PARTITIONED_TABLES = {"call_records": "started_at", "call_metrics": "metric_date"}

_TABLES = {
    "tenants": """
        CREATE TABLE IF NOT EXISTS tenants (
          tenant_id      VARCHAR(20)  NOT NULL PRIMARY KEY,
          name           VARCHAR(100) NOT NULL,
          region         VARCHAR(32)  NOT NULL,
          created_at     DATETIME     NOT NULL,
          terminated_at  DATETIME     NULL
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "agents": """
        CREATE TABLE IF NOT EXISTS agents (
          id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
          tenant_id   VARCHAR(20)  NOT NULL,
          agent_id    VARCHAR(64)  NOT NULL,
          name_enc    VARBINARY(256),
          email_enc   VARBINARY(256),
          phone_enc   VARBINARY(256),
          role        VARCHAR(16)  NOT NULL,
          created_at  DATETIME     NOT NULL,
          updated_at  DATETIME     NOT NULL,
          UNIQUE KEY ux_tenant_agent (tenant_id, agent_id),
          KEY ix_updated (updated_at)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "administrators": """
        CREATE TABLE IF NOT EXISTS administrators (
          id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
          tenant_id   VARCHAR(20)  NOT NULL,
          admin_id    VARCHAR(64)  NOT NULL,
          name_enc    VARBINARY(256),
          email_enc   VARBINARY(256),
          created_at  DATETIME     NOT NULL,
          updated_at  DATETIME     NOT NULL,
          UNIQUE KEY ux_tenant_admin (tenant_id, admin_id),
          KEY ix_updated (updated_at)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "call_records": """
        CREATE TABLE IF NOT EXISTS call_records (
          id               BIGINT       NOT NULL AUTO_INCREMENT,
          started_at       DATETIME     NOT NULL,
          tenant_id        VARCHAR(20)  NOT NULL,
          call_id          CHAR(32)     NOT NULL,
          direction        ENUM('inbound','outbound') NOT NULL,
          agent_id         VARCHAR(64)  NULL,
          customer_number  VARCHAR(16)  NULL,
          duration_s       INT          NOT NULL,
          recording_key    VARCHAR(255) NULL,
          PRIMARY KEY (id, started_at),
          KEY ix_tenant_time (tenant_id, started_at),
          KEY ix_tenant_customer (tenant_id, customer_number),
          KEY ix_tenant_agent (tenant_id, agent_id),
          KEY ix_time (started_at)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
        {partitions}""",
    "call_metrics": """
        CREATE TABLE IF NOT EXISTS call_metrics (
          id            BIGINT      NOT NULL AUTO_INCREMENT,
          metric_date   DATETIME    NOT NULL,
          tenant_id     VARCHAR(20) NOT NULL,
          agent_id      VARCHAR(64) NOT NULL,
          calls         INT         NOT NULL,
          answered      INT         NOT NULL,
          avg_handle_s  INT         NOT NULL,
          PRIMARY KEY (id, metric_date),
          KEY ix_tenant_time (tenant_id, metric_date),
          KEY ix_tenant_agent (tenant_id, agent_id),
          KEY ix_time (metric_date)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
        {partitions}""",
    "service_records": """
        CREATE TABLE IF NOT EXISTS service_records (
          id               BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
          created_at       DATETIME    NOT NULL,
          tenant_id        VARCHAR(20) NOT NULL,
          call_id          CHAR(32)    NOT NULL,
          agent_id         VARCHAR(64) NULL,
          customer_number  VARCHAR(16) NULL,
          rating           TINYINT     NULL,
          note_enc         VARBINARY(512),
          KEY ix_tenant_time (tenant_id, created_at),
          KEY ix_tenant_customer (tenant_id, customer_number),
          KEY ix_tenant_agent (tenant_id, agent_id),
          KEY ix_time (created_at)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "quick_replies": """
        CREATE TABLE IF NOT EXISTS quick_replies (
          id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, tenant_id VARCHAR(20) NOT NULL,
          title VARCHAR(100) NOT NULL, body TEXT NOT NULL, updated_at DATETIME NOT NULL,
          KEY ix_tenant (tenant_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "blacklist_numbers": """
        CREATE TABLE IF NOT EXISTS blacklist_numbers (
          id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, tenant_id VARCHAR(20) NOT NULL,
          phone_number VARCHAR(16) NOT NULL, reason VARCHAR(64) NOT NULL, created_at DATETIME NOT NULL,
          KEY ix_tenant (tenant_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "keywords": """
        CREATE TABLE IF NOT EXISTS keywords (
          id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, tenant_id VARCHAR(20) NOT NULL,
          keyword VARCHAR(64) NOT NULL, updated_at DATETIME NOT NULL,
          KEY ix_tenant (tenant_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "role_permissions": """
        CREATE TABLE IF NOT EXISTS role_permissions (
          id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, tenant_id VARCHAR(20) NOT NULL,
          role VARCHAR(32) NOT NULL, permission VARCHAR(64) NOT NULL, updated_at DATETIME NOT NULL,
          KEY ix_tenant (tenant_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "popup_settings": """
        CREATE TABLE IF NOT EXISTS popup_settings (
          id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, tenant_id VARCHAR(20) NOT NULL,
          name VARCHAR(64) NOT NULL, url VARCHAR(255) NOT NULL, updated_at DATETIME NOT NULL,
          KEY ix_tenant (tenant_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # A table the policy does not know: callbacks a CRM integration schedules, holding customer
    # phone numbers under a column whose name says nothing. No purge reaches it; the coverage
    # check (include/retention/coverage) finds it by its values.
    "crm_callbacks": """
        CREATE TABLE IF NOT EXISTS crm_callbacks (
          id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, tenant_id VARCHAR(20) NOT NULL,
          contact VARCHAR(16) NOT NULL, slot DATETIME NOT NULL, status VARCHAR(16) NOT NULL,
          KEY ix_tenant (tenant_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
}

TABLES = tuple(_TABLES)


def partition_name(month: date) -> str:
    return f"p{month:%Y%m}"


def month_starts(first: date, count: int) -> list[date]:
    """``count`` consecutive first-of-month dates starting at ``first``'s month."""
    out, year, month = [], first.year, first.month
    for _ in range(count):
        out.append(date(year, month, 1))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def partition_clause(column: str, first_month: date, months: int) -> str:
    """Monthly RANGE partitions from ``first_month`` for ``months`` months, plus ``pmax``."""
    bounds = month_starts(first_month, months + 1)
    parts = [
        f"PARTITION {partition_name(start)} VALUES LESS THAN (TO_DAYS('{end.isoformat()}'))"
        for start, end in zip(bounds, bounds[1:])
    ]
    parts.append("PARTITION pmax VALUES LESS THAN MAXVALUE")
    return f"PARTITION BY RANGE (TO_DAYS({column})) (\n  " + ",\n  ".join(parts) + "\n)"


def ddl(first_month: date, months: int) -> list[str]:
    """CREATE TABLE statements; partitioned tables get ``months`` monthly partitions."""
    out = []
    for table, sql in _TABLES.items():
        if table in PARTITIONED_TABLES:
            sql = sql.format(partitions=partition_clause(PARTITIONED_TABLES[table], first_month, months))
        out.append(sql.strip())
    return out


def create_schema(cursor: Any, database: str, first_month: date, months: int, *, drop: bool = False) -> None:
    """Create ``database`` and its tables through a DB-API cursor (idempotent unless ``drop``)."""
    if not database.replace("_", "").isalnum():
        raise ValueError(f"not a plain database name: {database!r}")
    if drop:
        cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
    cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
    cursor.execute(f"USE `{database}`")
    for statement in ddl(first_month, months):
        cursor.execute(statement)


def drop_tables(cursor: Any, tables: Iterable[str] = TABLES) -> None:
    for table in tables:
        cursor.execute(f"DROP TABLE IF EXISTS `{table}`")
