"""The ledger's schema: versioned, append-only migrations, applied idempotently.

Tables: ``purge_audit`` (one row per purge attempt), ``tenant_overrides`` and
``legal_holds`` (decisions operators take by hand), ``requests``, ``request_steps``,
``request_events``, ``request_step_keys``, ``request_alerts``, ``certificates``, ``approvals``,
``ledger_chain`` and ``ledger_chain_heads`` (the hash chains over them: ``ledger/chain.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from include.retention.ledger.chain import CHAIN_DDL, adopt_existing
from include.retention.ledger.coverage import COVERAGE_DDL
from include.retention.ledger.db import LEDGER_CONN_ID, connect, hook, ledger_database, plain_cursor
from include.retention.timeutil import to_naive_utc, wall_clock

log = logging.getLogger(__name__)

_MIGRATION_LOCK_SECONDS = 60


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]
    #: Runs after the statements, on the migration's cursor (a data step); must be idempotent too.
    then: Callable[[Any], Any] | None = None


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
    Migration(
        7,
        "purge_audit_reasons",
        (
            # An override gets an id, so that an audit row can name the one that extended it.
            "ALTER TABLE tenant_overrides ADD COLUMN IF NOT EXISTS id BIGINT NOT NULL AUTO_INCREMENT UNIQUE",
            # Why each purge selected what it did and what it kept out (reasons.py), and who
            # approved a purge past the circuit breaker. No personal data.
            """ALTER TABLE purge_audit
              ADD COLUMN IF NOT EXISTS rule        TEXT         NULL COMMENT 'JSON: the rule that selected the records',
              ADD COLUMN IF NOT EXISTS withheld    TEXT         NULL COMMENT 'JSON: what was kept out and why',
              ADD COLUMN IF NOT EXISTS approved_by VARCHAR(128) NULL COMMENT 'who approved a purge past the breaker'""",
        ),
    ),
    Migration(
        8,
        "approvals",
        (
            # Answers to approval steps (a termination's four eyes): who, when, why (ledger/approvals.py).
            """CREATE TABLE IF NOT EXISTS approvals (
              id           BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
              scope        VARCHAR(160) NOT NULL COMMENT 'request:<id> or daily:<category>',
              dag_id       VARCHAR(250) NOT NULL,
              run_id       VARCHAR(250) NOT NULL,
              task_id      VARCHAR(250) NOT NULL,
              outcome      VARCHAR(16)  NOT NULL COMMENT 'approved, rejected, refused, timed_out',
              triggered_by VARCHAR(128) NULL     COMMENT 'Airflow user who triggered the run',
              responded_by VARCHAR(128) NULL     COMMENT 'Airflow user who answered',
              responded_at DATETIME(6)  NULL     COMMENT 'UTC',
              reason       VARCHAR(500) NULL,
              details      TEXT         NULL     COMMENT 'JSON: what was shown (counts), no personal data',
              recorded_at  DATETIME(6)  NOT NULL COMMENT 'UTC',
              KEY ix_scope (scope, id),
              KEY ix_run (run_id)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
        ),
    ),
    # Hash chains over purge_audit, request_events, certificates and the decision rows; the rows
    # already there are chained once ('adopt') and each chain records when it started.
    Migration(9, "ledger_chains", CHAIN_DDL, then=adopt_existing),
    # The coverage check's runs and items (ledger/coverage.py; issue 16): names and counts, no values.
    Migration(10, "coverage", COVERAGE_DDL),
)


def migrate(conn_id: str = LEDGER_CONN_ID) -> list[int]:
    """Create the ledger database and apply every migration not applied yet; idempotent.

    :return: the versions applied by this call (empty when the ledger was up to date).
    """
    database = ledger_database(conn_id)
    # Connect without the ledger database, which may not exist yet.
    conn = hook(conn_id, schema="information_schema").get_conn()
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
                if migration.then is not None:
                    migration.then(cur)
                cur.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, to_naive_utc(wall_clock())),
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
