"""The retention ledger database: versioned migrations, a connection helper, overrides and holds.

The ledger (connection ``retention_ledger``) records what the package did and the few
decisions operators take by hand:

- ``purge_audit``: one row per purge attempt, dry or real (written by ``audit.py``);
- ``tenant_overrides``: a tenant that bought extended storage keeps a category longer;
- ``legal_holds``: a tenant, or one subject of a tenant, whose data must not be purged;
- ``requests`` / ``request_steps``: termination and deletion requests and their progress.

No column holds a raw subject id: subjects are stored as a keyed hash (``subject_hash``),
and where the id must stay usable (holds, open requests) as a Fernet token
(``subject_enc``) that only the ``retention_keys`` connection can open.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator, Sequence

if TYPE_CHECKING:
    from include.retention.keys import RetentionKeys

log = logging.getLogger(__name__)

LEDGER_CONN_ID = "retention_ledger"
UTC = timezone.utc
MAX_OVERRIDE_MONTHS = 120
_DATABASE_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_MIGRATION_LOCK_SECONDS = 60


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


#: Append only. Every statement is safe to run twice (IF NOT EXISTS), because MySQL DDL
#: commits as it goes: a migration interrupted half-way is simply applied again.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "purge_audit",
        (
            """CREATE TABLE IF NOT EXISTS purge_audit (
              id                 BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
              run_id             VARCHAR(250) NOT NULL,
              dag_id             VARCHAR(250) NOT NULL,
              task_id            VARCHAR(250) NOT NULL,
              category           VARCHAR(64)  NOT NULL,
              target             VARCHAR(64)  NOT NULL,
              store              VARCHAR(16)  NOT NULL,
              selection_kind     VARCHAR(16)  NOT NULL,
              tenant_id          VARCHAR(64)  NULL,
              subject_type       VARCHAR(32)  NULL,
              subject_hash       CHAR(64)     NULL,
              cutoff             DATETIME(6)  NULL COMMENT 'UTC',
              units_count        INT          NOT NULL DEFAULT 0,
              planned            BIGINT       NULL,
              deleted            BIGINT       NOT NULL DEFAULT 0,
              verified_remaining BIGINT       NULL,
              method             VARCHAR(64)  NOT NULL,
              dry_run            BOOLEAN      NOT NULL,
              override_reason    VARCHAR(255) NULL,
              duration_s         DOUBLE       NOT NULL,
              outcome            ENUM('ok', 'failed', 'refused') NOT NULL,
              error              TEXT         NULL,
              details            TEXT         NULL COMMENT 'JSON: the selection and store details, no personal data',
              started_at         DATETIME(6)  NOT NULL COMMENT 'UTC',
              finished_at        DATETIME(6)  NOT NULL COMMENT 'UTC',
              KEY ix_run (run_id),
              KEY ix_category_finished (category, finished_at),
              KEY ix_tenant (tenant_id, finished_at),
              KEY ix_subject (subject_hash)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        ),
    ),
    Migration(
        2,
        "tenant_overrides_and_legal_holds",
        (
            """CREATE TABLE IF NOT EXISTS tenant_overrides (
              tenant_id        VARCHAR(64)  NOT NULL,
              category         VARCHAR(64)  NOT NULL,
              retention_months INT          NOT NULL,
              reason           VARCHAR(255) NOT NULL,
              set_by           VARCHAR(128) NOT NULL,
              set_at           DATETIME(6)  NOT NULL COMMENT 'UTC',
              PRIMARY KEY (tenant_id, category)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
            """CREATE TABLE IF NOT EXISTS legal_holds (
              id           BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
              tenant_id    VARCHAR(64)  NOT NULL,
              subject_type VARCHAR(32)  NULL,
              subject_hash CHAR(64)     NULL,
              subject_enc  TEXT         NULL COMMENT 'Fernet token (retention_keys)',
              reason       VARCHAR(255) NOT NULL,
              placed_by    VARCHAR(128) NOT NULL,
              placed_at    DATETIME(6)  NOT NULL COMMENT 'UTC',
              released_at  DATETIME(6)  NULL COMMENT 'UTC',
              KEY ix_tenant_active (tenant_id, released_at)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        ),
    ),
    Migration(
        3,
        "requests_and_steps",
        (
            """CREATE TABLE IF NOT EXISTS requests (
              request_id   VARCHAR(64)  NOT NULL PRIMARY KEY,
              reference    VARCHAR(128) NOT NULL,
              request_type VARCHAR(16)  NOT NULL,
              tenant_id    VARCHAR(64)  NOT NULL,
              subject_type VARCHAR(32)  NULL,
              subject_hash CHAR(64)     NULL,
              subject_enc  TEXT         NULL COMMENT 'Fernet token (retention_keys)',
              categories   TEXT         NOT NULL COMMENT 'JSON list',
              received_at  DATETIME(6)  NOT NULL COMMENT 'UTC',
              due_at       DATETIME(6)  NOT NULL COMMENT 'UTC',
              state        VARCHAR(32)  NOT NULL,
              requested_by VARCHAR(128) NOT NULL,
              mode         VARCHAR(16)  NOT NULL,
              error        TEXT         NULL,
              created_at   DATETIME(6)  NOT NULL COMMENT 'UTC',
              updated_at   DATETIME(6)  NOT NULL COMMENT 'UTC',
              completed_at DATETIME(6)  NULL COMMENT 'UTC',
              UNIQUE KEY ux_reference (reference),
              KEY ix_state_due (state, due_at)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
            """CREATE TABLE IF NOT EXISTS request_steps (
              request_id         VARCHAR(64)  NOT NULL,
              category           VARCHAR(64)  NOT NULL,
              target             VARCHAR(64)  NOT NULL,
              store              VARCHAR(16)  NOT NULL,
              state              VARCHAR(32)  NOT NULL,
              planned            BIGINT       NULL,
              deleted            BIGINT       NULL,
              verified_remaining BIGINT       NULL,
              run_id             VARCHAR(250) NULL,
              error              TEXT         NULL,
              updated_at         DATETIME(6)  NOT NULL COMMENT 'UTC',
              PRIMARY KEY (request_id, category, target)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        ),
    ),
    Migration(
        4,
        "request_runs_events_keys_alerts_certificates",
        (
            # Which run holds a request, until when (a run cannot outlive its dagrun_timeout),
            # and the step that failed last. ADD COLUMN IF NOT EXISTS is MariaDB syntax.
            """ALTER TABLE requests
              ADD COLUMN IF NOT EXISTS run_id      VARCHAR(250) NULL COMMENT 'run holding the request',
              ADD COLUMN IF NOT EXISTS lease_until DATETIME(6)  NULL COMMENT 'UTC; the holding run ends by then',
              ADD COLUMN IF NOT EXISTS attempts    INT          NOT NULL DEFAULT 0,
              ADD COLUMN IF NOT EXISTS failed_step VARCHAR(160) NULL""",
            """ALTER TABLE request_steps
              ADD COLUMN IF NOT EXISTS kind        VARCHAR(16)  NOT NULL DEFAULT 'purge',
              ADD COLUMN IF NOT EXISTS location    VARCHAR(255) NULL COMMENT 'where, without subject ids',
              ADD COLUMN IF NOT EXISTS method      VARCHAR(64)  NULL,
              ADD COLUMN IF NOT EXISTS attempts    INT          NOT NULL DEFAULT 0,
              ADD COLUMN IF NOT EXISTS verified_at DATETIME(6)  NULL COMMENT 'UTC',
              ADD COLUMN IF NOT EXISTS details     TEXT         NULL COMMENT 'JSON, no personal data'""",
            """CREATE TABLE IF NOT EXISTS request_events (
              id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
              request_id VARCHAR(64)  NOT NULL,
              at         DATETIME(6)  NOT NULL COMMENT 'UTC',
              run_id     VARCHAR(250) NULL,
              event      VARCHAR(32)  NOT NULL,
              from_state VARCHAR(32)  NULL,
              to_state   VARCHAR(32)  NULL,
              message    TEXT         NULL COMMENT 'no personal data',
              KEY ix_request (request_id, id)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
            # Object keys a subject's rows point at (recordings), resolved before the rows go.
            # Keys carry tenant, date and call id: no personal data.
            """CREATE TABLE IF NOT EXISTS request_step_keys (
              request_id VARCHAR(64)  NOT NULL,
              category   VARCHAR(64)  NOT NULL,
              target     VARCHAR(64)  NOT NULL,
              object_key VARCHAR(512) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
              PRIMARY KEY (request_id, category, target, object_key)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
            """CREATE TABLE IF NOT EXISTS request_alerts (
              request_id VARCHAR(64)  NOT NULL,
              kind       VARCHAR(16)  NOT NULL COMMENT 'warning, breach, retrigger',
              alert_day  DATE         NOT NULL COMMENT 'the monitor run''s day (policy zone)',
              days_left  INT          NOT NULL,
              run_id     VARCHAR(250) NOT NULL,
              sent_at    DATETIME(6)  NOT NULL COMMENT 'UTC',
              PRIMARY KEY (request_id, kind, alert_day)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
            """CREATE TABLE IF NOT EXISTS certificates (
              request_id     VARCHAR(64)  NOT NULL PRIMARY KEY,
              certificate_id VARCHAR(80)  NOT NULL,
              issued_at      DATETIME(6)  NOT NULL COMMENT 'UTC',
              key_id         VARCHAR(32)  NOT NULL,
              signature      CHAR(64)     NOT NULL,
              cos_bucket     VARCHAR(128) NULL,
              cos_key        VARCHAR(255) NULL,
              document       MEDIUMTEXT   NOT NULL COMMENT 'the signed JSON certificate',
              UNIQUE KEY ux_certificate (certificate_id)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        ),
    ),
    Migration(
        5,
        "purge_audit_attempts",
        (
            # A real purge writes its row as 'running' before it deletes anything, so that a
            # process killed mid-purge still leaves a trace; the next attempt of the same
            # purge (same attempt_key) closes it as 'interrupted' and settles its count.
            """ALTER TABLE purge_audit
              MODIFY COLUMN outcome ENUM('ok', 'failed', 'refused', 'running', 'interrupted') NOT NULL,
              ADD COLUMN IF NOT EXISTS attempt_key CHAR(64) NULL COMMENT 'sha256 of run, target and selection',
              ADD COLUMN IF NOT EXISTS settled_by  BIGINT   NULL COMMENT 'id of the attempt that settled this count',
              ADD INDEX IF NOT EXISTS ix_attempt (attempt_key)""",
        ),
    ),
    Migration(
        6,
        "request_events_by_run",
        (
            # The SLA monitor's forget_runs matches Airflow runs to requests by run id.
            "ALTER TABLE request_events ADD INDEX IF NOT EXISTS ix_run (run_id)",
        ),
    ),
)


# --------------------------------------------------------------------------- connections


def _hook(conn_id: str, schema: str | None = None) -> Any:
    from airflow.providers.mysql.hooks.mysql import MySqlHook

    return MySqlHook(mysql_conn_id=conn_id, schema=schema) if schema else MySqlHook(mysql_conn_id=conn_id)


def ledger_database(conn_id: str = LEDGER_CONN_ID) -> str:
    """The ledger's database name, from the connection's schema."""
    name = _hook(conn_id).get_connection(conn_id).schema
    if not name or not _DATABASE_NAME.match(name):
        raise ValueError(f"connection {conn_id!r} must name the ledger database (letters, digits, _), got {name!r}")
    return str(name)


@contextmanager
def connect(conn_id: str = LEDGER_CONN_ID) -> Iterator[Any]:
    """A short-lived autocommit connection to the ledger; closed on exit."""
    conn = _hook(conn_id).get_conn()
    conn.autocommit(True)
    try:
        yield conn
    finally:
        conn.close()


def plain_cursor(conn: Any) -> Any:
    import MySQLdb.cursors

    return conn.cursor(MySQLdb.cursors.Cursor)


def _now(at: datetime | None) -> datetime:
    """An aware instant as naive UTC for a DATETIME column (``at`` defaults to now)."""
    instant = at if at is not None else datetime.now(UTC)
    if instant.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return instant.astimezone(UTC).replace(tzinfo=None)


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None else None


# --------------------------------------------------------------------------- migrations


def migrate(conn_id: str = LEDGER_CONN_ID) -> list[int]:
    """Create the ledger database and apply every migration not applied yet; idempotent.

    :return: the versions applied by this call (empty when the ledger was up to date).
    """
    database = ledger_database(conn_id)
    # Connect without the ledger database, which may not exist yet.
    conn = _hook(conn_id, schema="information_schema").get_conn()
    conn.autocommit(True)
    applied_now: list[int] = []
    try:
        cur = plain_cursor(conn)
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
        cur.execute(f"USE `{database}`")
        # Two tasks migrating at once wait for each other instead of racing.
        cur.execute("SELECT GET_LOCK(%s, %s)", (f"{database}.migrate", _MIGRATION_LOCK_SECONDS))
        (locked,) = cur.fetchone()
        if locked != 1:
            raise RuntimeError(f"could not take the migration lock of {database} within {_MIGRATION_LOCK_SECONDS} s")
        try:
            cur.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                  version    INT          NOT NULL PRIMARY KEY,
                  name       VARCHAR(128) NOT NULL,
                  applied_at DATETIME(6)  NOT NULL COMMENT 'UTC'
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
            )
            cur.execute("SELECT version FROM schema_migrations")
            done = {int(row[0]) for row in cur.fetchall()}
            for migration in MIGRATIONS:
                if migration.version in done:
                    continue
                for statement in migration.statements:
                    cur.execute(statement)
                cur.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, _now(None)),
                )
                applied_now.append(migration.version)
                log.info("Ledger %s: applied migration %d (%s)", database, migration.version, migration.name)
        finally:
            cur.execute("SELECT RELEASE_LOCK(%s)", (f"{database}.migrate",))
            cur.fetchall()
    finally:
        conn.close()
    return applied_now


def applied_migrations(conn_id: str = LEDGER_CONN_ID) -> list[int]:
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute("SELECT version FROM schema_migrations ORDER BY version")
        return [int(row[0]) for row in cur.fetchall()]


# --------------------------------------------------------------------------- tenant overrides


@dataclass(frozen=True)
class TenantOverride:
    """A tenant keeps a category for ``retention_months`` instead of the policy's period."""

    tenant_id: str
    category: str
    retention_months: int
    reason: str
    set_by: str
    set_at: datetime


def _text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    if len(value) > limit:
        raise ValueError(f"{what} is longer than {limit} characters")
    if not value.isprintable():  # NUL, escape sequences and line breaks would garble listings and logs
        raise ValueError(f"{what} contains a control character; write it on one line of printable text")
    return value.strip()


def set_override(
    tenant_id: str,
    category: str,
    retention_months: int,
    *,
    reason: str,
    set_by: str,
    at: datetime | None = None,
    conn_id: str = LEDGER_CONN_ID,
) -> TenantOverride:
    """Set (or replace) a tenant's retention period for one category."""
    if isinstance(retention_months, bool) or not isinstance(retention_months, int):
        raise ValueError("retention_months must be a whole number")
    if not 1 <= retention_months <= MAX_OVERRIDE_MONTHS:
        raise ValueError(f"retention_months must be between 1 and {MAX_OVERRIDE_MONTHS}")
    override = TenantOverride(
        tenant_id=_text(tenant_id, "tenant_id", 64),
        category=_text(category, "category", 64),
        retention_months=retention_months,
        reason=_text(reason, "reason", 255),
        set_by=_text(set_by, "set_by", 128),
        set_at=_now(at).replace(tzinfo=UTC),
    )
    with connect(conn_id) as conn:
        plain_cursor(conn).execute(
            """INSERT INTO tenant_overrides (tenant_id, category, retention_months, reason, set_by, set_at)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON DUPLICATE KEY UPDATE retention_months = VALUES(retention_months), reason = VALUES(reason),
                 set_by = VALUES(set_by), set_at = VALUES(set_at)""",
            (override.tenant_id, override.category, override.retention_months, override.reason,
             override.set_by, _now(override.set_at)),
        )
    log.info("Tenant %s keeps %s for %d months", override.tenant_id, override.category, retention_months)
    return override


def clear_override(tenant_id: str, category: str, *, conn_id: str = LEDGER_CONN_ID) -> bool:
    """Remove a tenant's override of one category; False when there was none."""
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute("DELETE FROM tenant_overrides WHERE tenant_id = %s AND category = %s", (tenant_id, category))
        return bool(cur.rowcount)


def list_overrides(category: str | None = None, *, conn_id: str = LEDGER_CONN_ID) -> list[TenantOverride]:
    """Every override, or those of one category, ordered by category and tenant."""
    sql = "SELECT tenant_id, category, retention_months, reason, set_by, set_at FROM tenant_overrides"
    params: tuple[Any, ...] = ()
    if category is not None:
        sql += " WHERE category = %s"
        params = (category,)
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(sql + " ORDER BY category, tenant_id", params)
        rows = cur.fetchall()
    return [
        TenantOverride(str(t), str(c), int(m), str(r), str(b), _aware(s))  # type: ignore[arg-type]
        for t, c, m, r, b, s in rows
    ]


# --------------------------------------------------------------------------- legal holds


@dataclass(frozen=True)
class LegalHold:
    """Data of a tenant, or of one subject of a tenant, that no purge may touch while active."""

    id: int
    tenant_id: str
    subject_type: str | None
    subject_hash: str | None
    subject_enc: str | None = field(repr=False)
    reason: str
    placed_by: str
    placed_at: datetime
    released_at: datetime | None

    @property
    def active(self) -> bool:
        return self.released_at is None

    @property
    def whole_tenant(self) -> bool:
        return self.subject_type is None

    def subject_id(self, keys: RetentionKeys) -> str | None:
        """The held subject's id, decrypted; None for a whole-tenant hold. Never log it."""
        return keys.decrypt_subject(self.subject_enc) if self.subject_enc else None


def place_hold(
    tenant_id: str,
    *,
    reason: str,
    placed_by: str,
    subject_type: str | None = None,
    subject_id: str | None = None,
    keys: RetentionKeys | None = None,
    at: datetime | None = None,
    conn_id: str = LEDGER_CONN_ID,
) -> int:
    """Place a legal hold on a tenant, or on one subject of it; returns the hold's id.

    A subject is stored as its keyed hash and as a Fernet token (``keys``), so that the
    daily purges can keep its rows out while the id itself never appears in the ledger.
    """
    tenant_id = _text(tenant_id, "tenant_id", 64)
    reason = _text(reason, "reason", 255)
    placed_by = _text(placed_by, "placed_by", 128)
    subject_hash = subject_enc = None
    if (subject_type is None) != (subject_id is None):
        raise ValueError("give subject_type and subject_id together, or neither for a whole-tenant hold")
    if subject_type is not None and subject_id is not None:
        if keys is None:
            raise ValueError("a subject hold needs the retention keys to hash and encrypt the subject")
        subject_type = _text(subject_type, "subject_type", 32)
        subject_hash = keys.subject_hash(tenant_id, subject_type, subject_id)
        subject_enc = keys.encrypt_subject(subject_id)
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(
            """INSERT INTO legal_holds (tenant_id, subject_type, subject_hash, subject_enc, reason, placed_by, placed_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            (tenant_id, subject_type, subject_hash, subject_enc, reason, placed_by, _now(at)),
        )
        hold_id = int(cur.lastrowid)
    log.info("Legal hold %d placed on tenant %s%s", hold_id, tenant_id,
             f" ({subject_type} {subject_hash[:12]}…)" if subject_hash else "")
    return hold_id


def release_hold(hold_id: int, *, at: datetime | None = None, conn_id: str = LEDGER_CONN_ID) -> bool:
    """Release an active hold; False when it does not exist or was already released."""
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute("UPDATE legal_holds SET released_at = %s WHERE id = %s AND released_at IS NULL",
                    (_now(at), int(hold_id)))
        released = bool(cur.rowcount)
    if released:
        log.info("Legal hold %d released", hold_id)
    return released


def list_holds(
    *, tenant_id: str | None = None, active_only: bool = True, conn_id: str = LEDGER_CONN_ID
) -> list[LegalHold]:
    """Holds, active ones only by default, optionally of one tenant, oldest first."""
    clauses: list[str] = []
    params: list[Any] = []
    if active_only:
        clauses.append("released_at IS NULL")
    if tenant_id is not None:
        clauses.append("tenant_id = %s")
        params.append(tenant_id)
    sql = ("SELECT id, tenant_id, subject_type, subject_hash, subject_enc, reason, placed_by, placed_at, released_at"
           " FROM legal_holds")
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute(sql + " ORDER BY id", tuple(params))
        rows: Sequence[tuple[Any, ...]] = cur.fetchall()
    return [
        LegalHold(
            id=int(r[0]), tenant_id=str(r[1]), subject_type=r[2], subject_hash=r[3], subject_enc=r[4],
            reason=str(r[5]), placed_by=str(r[6]), placed_at=_aware(r[7]), released_at=_aware(r[8]),  # type: ignore[arg-type]
        )
        for r in rows
    ]
