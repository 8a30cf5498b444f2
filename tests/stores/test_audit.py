"""The ledger's migrations, overrides and holds, and the purge audit (real MariaDB)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from devservers.connections import DEV_KEYS
from include.retention.ledger import audit
from include.retention.ledger.holds import list_holds, place_hold, release_hold
from include.retention.ledger.migrations import MIGRATIONS, applied_migrations, migrate
from include.retention.ledger.overrides import clear_override, list_overrides, set_override
from include.retention.crypto import RetentionCrypto
from include.retention.policy import MySqlTarget, Policy
from include.retention.selections import ExpiredSelection, SubjectSelection, TenantSelection
from include.retention.results import PartialPurgeError, PurgeResult
from include.retention.stores.mysql import MySqlStore
from tests.fixtures.mysql import MySqlDatabase

pytestmark = pytest.mark.servers

UTC = timezone.utc
T0 = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
PHONE = "+6591234567"
KEYS = RetentionCrypto(
    subject_hash_key=DEV_KEYS["subject_hash_key"].encode(),
    subject_encryption_key=DEV_KEYS["subject_encryption_key"].encode(),
    certificate_key=DEV_KEYS["certificate_key"].encode(),
)
TABLES = ("schema_migrations", "purge_audit", "tenant_overrides", "legal_holds", "requests", "request_steps")


def run_id() -> str:
    return f"scheduled__2026-11-28T00:00:00+00:00__{secrets.token_hex(4)}"


def audit_rows(db: MySqlDatabase, run: str) -> list[dict[str, Any]]:
    conn = db.connect()
    try:
        import MySQLdb.cursors

        cur = conn.cursor(MySQLdb.cursors.DictCursor)
        cur.execute("SELECT * FROM purge_audit WHERE run_id = %s ORDER BY id", (run,))
        return list(cur.fetchall())
    finally:
        conn.close()


def assert_no_raw_subject(rows: list[dict[str, Any]], *raw: str) -> None:
    for row in rows:
        for column, value in row.items():
            for secret in raw:
                assert secret not in str(value), f"raw subject id in purge_audit.{column}"


# --------------------------------------------------------------------------- migrations


def test_migrate_creates_the_ledger_once(mariadb_endpoint: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    db = MySqlDatabase(mariadb_endpoint, f"ledger_{secrets.token_hex(4)}")
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_LEDGER", db.uri)
    try:
        assert migrate() == [m.version for m in MIGRATIONS]
        assert migrate() == []
        assert applied_migrations() == [m.version for m in MIGRATIONS]
        tables = {r[0] for r in db.query("SHOW TABLES")}
        assert set(TABLES) <= tables  # later migrations add tables of their own
        indexes = {r[2] for r in db.query("SHOW INDEX FROM purge_audit")}
        assert {"ix_run", "ix_category_finished"} <= indexes
        assert "ix_run" in {r[2] for r in db.query("SHOW INDEX FROM request_events")}  # forget_runs' lookup
        assert db.query("SELECT COUNT(*) FROM schema_migrations")[0][0] == len(MIGRATIONS)
    finally:
        db.execute(f"DROP DATABASE IF EXISTS `{db.name}`")


def test_migrate_needs_a_database_name(mariadb_endpoint: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_LEDGER", "mysql://root@127.0.0.1:3306/bad-name")
    with pytest.raises(ValueError, match="must name the ledger database"):
        migrate()


# --------------------------------------------------------------------------- audit rows


@pytest.fixture
def call_records(policy: Policy) -> MySqlTarget:
    t = policy.target("call_data.call_records")
    assert isinstance(t, MySqlTarget)
    return t


def subject() -> SubjectSelection:
    return SubjectSelection("12", "phone_number", PHONE, subject_hash=KEYS.subject_hash("12", "phone_number", PHONE))


def test_ok_dry_and_failed_purges_are_audited_without_raw_subject_ids(
    ledger_db: MySqlDatabase, call_records: MySqlTarget
) -> None:
    run = run_id()
    common = {"run_id": run, "dag_id": "deletion_requests", "task_id": "purge", "target": call_records,
              "started_at": T0, "finished_at": T0 + timedelta(seconds=2)}
    dry = PurgeResult("call_data.call_records", "mysql", "keyset_delete", planned=4, deleted=0, dry_run=True)
    done = PurgeResult("call_data.call_records", "mysql", "keyset_delete", planned=4, deleted=4, remaining=0,
                       batches=1)
    # A failure whose message quotes the subject: the ledger must not keep it.
    failure = PartialPurgeError("call_data.call_records", 3, f"lost connection while deleting {PHONE}")

    ids = [
        audit.record_purge(selection=subject(), result=dry, **common),
        audit.record_purge(selection=subject(), result=done, **common),
        audit.record_purge(selection=subject(), error=failure, **common),
    ]

    rows = audit_rows(ledger_db, run)
    assert [r["id"] for r in rows] == ids
    assert [(r["outcome"], bool(r["dry_run"]), r["planned"], r["deleted"]) for r in rows] == [
        ("ok", True, 4, 0), ("ok", False, 4, 4), ("failed", False, None, 3)
    ]
    assert rows[1]["verified_remaining"] == 0 and rows[2]["error"].startswith("PartialPurgeError")
    assert "[number]" in rows[2]["error"] or "[subject]" in rows[2]["error"]
    for row in rows:
        assert (row["category"], row["target"], row["store"], row["selection_kind"]) == (
            "call_data", "call_records", "mysql", "subject")
        assert row["tenant_id"] == "12" and row["subject_type"] == "phone_number"
        assert row["subject_hash"] == subject().subject_hash and row["duration_s"] == 2.0
    assert_no_raw_subject(rows, PHONE, PHONE[1:])


def test_expired_purge_audit_records_cutoff_units_and_override(
    ledger_db: MySqlDatabase, call_records: MySqlTarget
) -> None:
    run = run_id()
    selection = ExpiredSelection(
        before=datetime(2026, 5, 1, 8, tzinfo=timezone(timedelta(hours=8))), tenant="123",
        exclude_subjects=frozenset({("123", "agent", "alice.wong")}), units=("p202601", "p202602"),
    )
    result = PurgeResult("call_data.call_records", "mysql", "keyset_delete", planned=10, deleted=10,
                         details={"partitions": ["p202601"]})
    audit.record_purge(run_id=run, dag_id="retention_call_data", task_id="purge", target=call_records,
                       selection=selection, result=result, started_at=T0, finished_at=T0,
                       override_reason="tenant 123 bought 12 months")
    (row,) = audit_rows(ledger_db, run)
    assert row["cutoff"] == datetime(2026, 5, 1, 0, 0)
    assert row["units_count"] == 2 and row["tenant_id"] == "123" and row["subject_hash"] is None
    assert row["override_reason"] == "tenant 123 bought 12 months"
    assert '"partitions": ["p202601"]' in row["details"]
    assert_no_raw_subject([row], "alice.wong")


def test_a_selection_without_its_hash_is_not_audited(ledger_db: MySqlDatabase, call_records: MySqlTarget) -> None:
    with pytest.raises(ValueError, match="keyed hash"):
        audit.record_purge(run_id=run_id(), dag_id="d", task_id="t", target=call_records,
                           selection=SubjectSelection("12", "phone_number", PHONE), error=RuntimeError("x"),
                           started_at=T0, finished_at=T0)
    with pytest.raises(ValueError, match="exactly one"):
        audit.record_purge(run_id=run_id(), dag_id="d", task_id="t", target=call_records,
                           selection=TenantSelection("12"), started_at=T0, finished_at=T0)


def test_a_real_failed_purge_is_audited(
    ledger_db: MySqlDatabase, cc_mysql: MySqlDatabase, call_records: MySqlTarget, policy: Policy
) -> None:
    target = policy.target("call_analytics.service_records")
    assert isinstance(target, MySqlTarget)
    cc_mysql.insert("service_records", [
        {"id": i, "created_at": datetime(2026, 1, 1) + timedelta(hours=i), "tenant_id": "12", "call_id": "c" * 32,
         "agent_id": "alice", "customer_number": PHONE, "rating": 1, "note_enc": None}
        for i in range(1, 251)
    ])
    store = MySqlStore(batch_size=100, sleep_between_batches=0.001)

    def kill(_seconds: float) -> None:
        cc_mysql.execute("KILL CONNECTION %s", (store._conn.thread_id(),))

    store._sleep = kill
    run = run_id()
    selection = subject()
    try:
        store.purge(target, selection)
    except PartialPurgeError as exc:
        audit.record_purge(run_id=run, dag_id="deletion_requests", task_id="purge", target=target,
                           selection=selection, error=exc, started_at=T0, finished_at=T0 + timedelta(seconds=1))
    finally:
        store.close()
    (row,) = audit_rows(ledger_db, run)
    assert (row["outcome"], row["deleted"]) == ("failed", 100)
    assert "2013" in row["error"] or "2006" in row["error"]
    assert_no_raw_subject([row], PHONE)


def test_summary_counts_per_store_and_target(ledger_db: MySqlDatabase, policy: Policy) -> None:
    run = run_id()
    other = run_id()
    targets = [policy.target("call_data.call_records"), policy.target("call_analytics.service_records")]
    selection = ExpiredSelection(before=T0)
    for t, planned, deleted, dry in ((targets[0], 5, 5, False), (targets[0], 7, 0, True), (targets[1], 3, 3, False)):
        audit.record_purge(run_id=run, dag_id="d", task_id="t", target=t, selection=selection,
                           result=PurgeResult(t.qualified_name, "mysql", "keyset_delete", planned, deleted,
                                              dry_run=dry),
                           started_at=T0, finished_at=T0)
    audit.record_purge(run_id=run, dag_id="d", task_id="t", target=targets[1], selection=selection,
                       error=PartialPurgeError(targets[1].qualified_name, 2, "boom"), started_at=T0, finished_at=T0)
    audit.record_purge(run_id=other, dag_id="d", task_id="t", target=targets[1], selection=selection,
                       error=ValueError("held"), outcome="refused", started_at=T0, finished_at=T0)

    assert audit.summary(run) == [
        audit.AuditSummary("mysql", "call_analytics", "service_records", purges=2, dry_runs=0, failed=1, refused=0,
                           planned=3, deleted=5),
        audit.AuditSummary("mysql", "call_data", "call_records", purges=2, dry_runs=1, failed=0, refused=0,
                           planned=12, deleted=5),
    ]
    assert audit.summary(other)[0].refused == 1
    assert audit.summary("no-such-run") == []


# --------------------------------------------------------------------------- overrides and holds


def test_tenant_overrides_set_replace_list_clear(ledger_db: MySqlDatabase) -> None:
    tenant = str(secrets.randbelow(10**9) + 1)
    set_override(tenant, "call_data", 12, reason="extended storage", set_by="ops@example", at=T0)
    set_override(tenant, "call_data", 18, reason="extended again", set_by="ops@example",
                       at=T0 + timedelta(days=1))
    set_override(tenant, "call_analytics", 9, reason="extended", set_by="ops@example", at=T0)
    mine = [o for o in list_overrides() if o.tenant_id == tenant]
    assert [(o.category, o.retention_months, o.reason) for o in mine] == [
        ("call_analytics", 9, "extended"), ("call_data", 18, "extended again")
    ]
    assert mine[1].set_at == T0 + timedelta(days=1)
    assert [o.tenant_id for o in list_overrides("call_data") if o.tenant_id == tenant] == [tenant]
    assert clear_override(tenant, "call_data") is True
    assert clear_override(tenant, "call_data") is False
    with pytest.raises(ValueError, match="between 1 and"):
        set_override(tenant, "call_data", 0, reason="r", set_by="s")
    with pytest.raises(ValueError, match="reason"):
        set_override(tenant, "call_data", 3, reason=" ", set_by="s")


def test_legal_holds_keep_the_subject_only_as_hash_and_token(ledger_db: MySqlDatabase) -> None:
    tenant = str(secrets.randbelow(10**9) + 1)
    tenant_hold = place_hold(tenant, reason="litigation", placed_by="legal@example", at=T0)
    subject_hold = place_hold(tenant, reason="regulator inquiry", placed_by="legal@example",
                                          subject_type="phone_number", subject_id=PHONE, crypto=KEYS, at=T0)
    holds = [h for h in list_holds(tenant_id=tenant)]
    assert [h.id for h in holds] == [tenant_hold, subject_hold]
    assert holds[0].whole_tenant and holds[0].opened(KEYS).subject_id is None
    assert holds[1].subject_hash == KEYS.subject_hash(tenant, "phone_number", PHONE)
    assert holds[1].opened(KEYS).subject_id == PHONE and PHONE not in repr(holds[1])
    raw = ledger_db.query("SELECT * FROM legal_holds WHERE tenant_id = %s", (tenant,))
    assert all(PHONE not in str(value) for row in raw for value in row)

    assert release_hold(tenant_hold, at=T0 + timedelta(days=3)) is True
    assert release_hold(tenant_hold) is False
    assert [h.id for h in list_holds(tenant_id=tenant)] == [subject_hold]
    released = [h for h in list_holds(tenant_id=tenant, active_only=False) if h.id == tenant_hold]
    assert released[0].released_at == T0 + timedelta(days=3) and not released[0].active
    with pytest.raises(ValueError, match="retention keys"):
        place_hold(tenant, reason="r", placed_by="p", subject_type="agent", subject_id="bob")
    with pytest.raises(ValueError, match="together"):
        place_hold(tenant, reason="r", placed_by="p", subject_type="agent")
