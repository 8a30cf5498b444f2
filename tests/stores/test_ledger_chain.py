"""The ledger's hash chains on real MariaDB (and a checkpoint on the S3 server): every kind
of edit is found, at the first row it touched; truncation only with a checkpoint."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterator

import pytest

from devservers.connections import DEV_KEYS
from include.retention.crypto import RetentionCrypto
from include.retention.ledger import __main__ as ledger_cli
from include.retention.ledger import audit, checkpoints, migrations
from include.retention.ledger.approvals import record_decision
from include.retention.ledger.chain import CHAINS, GENESIS
from include.retention.ledger.holds import place_hold, release_hold
from include.retention.ledger.overrides import clear_override, set_override
from include.retention.ledger.requests import record_event
from include.retention.ledger.verify import verify_ledger
from include.retention.policy import Policy
from include.retention.results import PurgeResult
from include.retention.selections import TenantSelection
from tests.fixtures.cos import CosBucket
from tests.fixtures.mysql import MySqlDatabase

pytestmark = pytest.mark.servers

UTC = timezone.utc
T0 = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
KEYS = RetentionCrypto(*(DEV_KEYS[k].encode() for k in ("subject_hash_key", "subject_encryption_key",
                                                        "certificate_key")))
CHAINED = ("purge_audit", "request_events", "certificates", "approvals", "legal_holds", "tenant_overrides")


@pytest.fixture(scope="module")
def chain_db(mariadb_endpoint: Any) -> Iterator[MySqlDatabase]:
    """A ledger of this module's own (the session's takes rows other tests write by hand)."""
    db = MySqlDatabase(mariadb_endpoint, f"ledger_chain_{secrets.token_hex(4)}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_RETENTION_LEDGER", db.uri)
        migrations.migrate()
    try:
        yield db
    finally:
        db.execute(f"DROP DATABASE IF EXISTS `{db.name}`")


@pytest.fixture
def ledger(chain_db: MySqlDatabase, monkeypatch: pytest.MonkeyPatch) -> MySqlDatabase:
    """The module's ledger, emptied, chains back at their start."""
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_LEDGER", chain_db.uri)
    for table in (*CHAINED, "ledger_chain"):
        chain_db.execute(f"DELETE FROM `{table}`")
    chain_db.execute("UPDATE ledger_chain_heads SET length = 0, head_hash = %s", (GENESIS,))
    return chain_db


def purge(policy: Policy, n: int, run: str = "scheduled__2026-11-28") -> list[int]:
    target = policy.target("call_data.call_records")
    return [audit.record_purge(run_id=run, dag_id="retention_call_data", task_id="purge", target=target,
                               selection=TenantSelection(str(100 + i)), started_at=T0, finished_at=T0,
                               result=PurgeResult(target.qualified_name, "mysql", "keyset_delete", planned=i,
                                                  deleted=i, remaining=0))
            for i in range(n)]


def history(policy: Policy) -> list[int]:
    """A little of everything, through the package's own write paths; the audit row ids."""
    ids = purge(policy, 5)
    for event in ("submitted", "claimed", "verified"):
        record_event("DEL-20261128-0001", event, run_id="manual__1", message="no personal data")
    record_decision(scope="request:DEL-20261128-0001", dag_id="deletion_requests", run_id="manual__1",
                    task_id="approve", outcome="approved", triggered_by="alice", responded_by="bob",
                    responded_at=T0, reason="checked", details={"records": 3})
    hold = place_hold("123", reason="litigation", placed_by="legal", at=T0)
    release_hold(hold, at=T0 + timedelta(days=1))
    set_override("123", "call_data", 12, reason="bought 12 months", set_by="ops", at=T0)
    set_override("123", "call_data", 18, reason="bought 18 months", set_by="ops", at=T0)
    clear_override("123", "call_data")
    return ids


def first(report: Any, chain: str) -> Any:
    assert not report.ok, "tampering went unseen"
    return report.first()[chain]


def test_an_untouched_ledger_verifies_and_parallel_writers_form_one_chain(
    ledger: MySqlDatabase, policy: Policy
) -> None:
    history(policy)
    with ThreadPoolExecutor(max_workers=6) as pool:  # six writers, each on its own connection
        list(pool.map(lambda i: record_event(f"DEL-{i}", "claimed", run_id=f"manual__{i}"), range(60)))
    report = verify_ledger()
    assert report.ok, [str(f) for f in report.findings]
    lengths = {s.chain: s.length for s in report.chains}
    assert lengths == {"purge_audit": 5, "request_events": 63, "certificates": 0, "decisions": 6}
    # one order: positions 1..n without a gap, each following the one before
    assert ledger.query("SELECT COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM ledger_chain"
                        " WHERE chain = 'request_events'")[0] == (63, 1, 63)


def test_an_edited_row_is_found(ledger: MySqlDatabase, policy: Policy) -> None:
    ids = history(policy)
    ledger.execute("UPDATE purge_audit SET deleted = deleted + 1000 WHERE id = %s", (ids[2],))
    finding = first(verify_ledger(), "purge_audit")
    assert (finding.kind, finding.table, finding.row_id) == ("edited", "purge_audit", ids[2])


def test_a_settled_row_is_chained_again_and_an_edit_after_it_is_found(ledger: MySqlDatabase, policy: Policy) -> None:
    history(policy)
    hold = int(ledger.query("SELECT id FROM legal_holds")[0][0])
    ops = ledger.query("SELECT op FROM ledger_chain WHERE tbl = 'legal_holds' ORDER BY seq")
    assert [o for (o,) in ops] == ["append", "settle"]
    assert verify_ledger().ok
    ledger.execute("UPDATE legal_holds SET released_at = NULL WHERE id = %s", (hold,))  # the hold quietly back
    finding = first(verify_ledger(), "decisions")
    assert (finding.kind, finding.table, finding.row_id) == ("edited", "legal_holds", hold)


@pytest.mark.parametrize("with_entry", [pytest.param(False, id="row-only"),
                                        pytest.param(True, id="row-and-its-chain-entry")])
def test_a_deleted_row_is_found(ledger: MySqlDatabase, policy: Policy, with_entry: bool) -> None:
    ids = history(policy)
    ledger.execute("DELETE FROM purge_audit WHERE id = %s", (ids[1],))
    if with_entry:
        ledger.execute("DELETE FROM ledger_chain WHERE chain = 'purge_audit' AND row_id = %s", (ids[1],))
    finding = first(verify_ledger(), "purge_audit")
    assert finding.kind == "deleted" and finding.seq == 2


def test_reordered_rows_are_found(ledger: MySqlDatabase, policy: Policy) -> None:
    history(policy)
    a, b = (int(r[0]) for r in ledger.query("SELECT id FROM request_events ORDER BY id LIMIT 2"))
    # swap the first two events: 'claimed' now comes before 'submitted'
    ledger.execute("UPDATE request_events SET id = 0 WHERE id = %s", (a,))
    ledger.execute("UPDATE request_events SET id = %s WHERE id = %s", (a, b))
    ledger.execute("UPDATE request_events SET id = %s WHERE id = 0", (b,))
    finding = first(verify_ledger(), "request_events")
    assert (finding.kind, finding.row_id) == ("reordered", a)


def test_an_inserted_row_is_found(ledger: MySqlDatabase, policy: Policy) -> None:
    history(policy)
    ledger.execute("INSERT INTO request_events (request_id, at, event, message) VALUES ('DEL-1', %s, 'verified',"
                   " 'slipped in')", (T0.replace(tzinfo=None),))
    finding = first(verify_ledger(), "request_events")
    assert finding.kind == "inserted" and finding.table == "request_events"


def test_a_truncated_end_is_found_by_the_checkpoint_only(
    ledger: MySqlDatabase, policy: Policy, cos_bucket: CosBucket, monkeypatch: pytest.MonkeyPatch,
    cos_endpoint: Any, capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from devservers import connections

    conn = json.loads(connections.airflow_connections({"s3": cos_endpoint}, connections.TEST)[
        "AIRFLOW_CONN_RETENTION_COS"])
    conn["extra"]["service_config"]["s3"]["bucket_name"] = cos_bucket.name
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_COS", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_KEYS", json.dumps({"conn_type": "generic", "extra": DEV_KEYS}))
    ids = history(policy)
    # the DAG's task, for a run whose interval ends 2026-11-28 01:00 UTC (09:00 in the policy's zone)
    stored = checkpoints.checkpoint_task({"data_interval_end": T0}, policy.timezone)
    assert stored["key"].startswith(f"ledger-checkpoints/{ledger.name}/2026-11-28/")
    assert stored["chains"]["purge_audit"]["length"] == 5
    assert stored["object_lock"]["enabled"] is False and stored["object_lock"]["reason"]  # Swift: said, not assumed
    # cut the last two audit rows off, with their entries, and move the head back
    ledger.execute("DELETE FROM purge_audit WHERE id >= %s", (ids[3],))
    ledger.execute("DELETE FROM ledger_chain WHERE chain = 'purge_audit' AND seq > 3")
    head = ledger.query("SELECT hash FROM ledger_chain WHERE chain = 'purge_audit' AND seq = 3")[0][0]
    ledger.execute("UPDATE ledger_chain_heads SET length = 3, head_hash = %s WHERE chain = 'purge_audit'", (head,))
    assert verify_ledger().ok  # the chain alone is consistent
    client, bucket = checkpoints.cos()
    loaded, unsigned = checkpoints.load_all(client, bucket, ledger.name, KEYS)
    assert len(loaded) == 1 and not unsigned
    finding = first(verify_ledger(checkpoints=loaded), "purge_audit")
    assert (finding.kind, finding.seq) == ("truncated", 4)
    assert ledger_cli.main(["verify"]) == 1  # the command reads the checkpoints from COS itself
    assert "TRUNCATED: purge_audit (chain purge_audit entry 4)" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="tampered"):  # and no new checkpoint signs over it
        checkpoints.take(day=date(2026, 11, 29), taken_at=T0 + timedelta(days=1), crypto=KEYS)


def test_a_chain_recomputed_after_an_edit_is_found_by_the_checkpoint(ledger: MySqlDatabase, policy: Policy) -> None:
    from include.retention.ledger.chain import content_hash, entry_hash, select_columns

    ids = history(policy)
    snapshot = {c: {"length": n, "head": h} for c, n, h in ledger.query(
        "SELECT chain, length, head_hash FROM ledger_chain_heads")}
    signed = checkpoints.build(day=date(2026, 11, 28), taken_at=T0, database=ledger.name, chain_heads=snapshot,
                               object_lock={"enabled": False, "reason": "test"}, crypto=KEYS)
    assert checkpoints.signature_ok(signed, KEYS)
    ledger.execute("UPDATE purge_audit SET deleted = 0 WHERE id = %s", (ids[1],))
    # the editor recomputes every entry from there on, and the head row: the chain is consistent again
    prev = GENESIS
    for seq, tbl, row_id, op, content, at in ledger.query(
            "SELECT seq, tbl, row_id, op, content_hash, at FROM ledger_chain WHERE chain = 'purge_audit' ORDER BY seq"):
        if row_id == ids[1]:
            row = ledger.query(f"SELECT {select_columns('purge_audit')} FROM purge_audit WHERE id = %s", (row_id,))[0]
            content = content_hash("purge_audit", row[1:])
        digest = entry_hash("purge_audit", seq, tbl, row_id, op, content, prev, at)
        ledger.execute("UPDATE ledger_chain SET content_hash = %s, prev_hash = %s, hash = %s"
                       " WHERE chain = 'purge_audit' AND seq = %s", (content, prev, digest, seq))
        prev = digest
    ledger.execute("UPDATE ledger_chain_heads SET head_hash = %s WHERE chain = 'purge_audit'", (prev,))
    assert verify_ledger().ok
    finding = first(verify_ledger(checkpoints=[signed["checkpoint"]]), "purge_audit")
    assert (finding.kind, finding.seq) == ("rewritten", 5)


def test_migration_9_chains_existing_rows_once_and_records_the_start(
    mariadb_endpoint: Any, monkeypatch: pytest.MonkeyPatch, policy: Policy
) -> None:
    db = MySqlDatabase(mariadb_endpoint, f"ledger_{secrets.token_hex(4)}")
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_LEDGER", db.uri)
    try:
        with monkeypatch.context() as mp:  # a ledger as it was before migration 9, with history
            mp.setattr(migrations, "MIGRATIONS", tuple(m for m in migrations.MIGRATIONS if m.version < 9))
            migrations.migrate()
        for i in range(7):
            db.execute("INSERT INTO request_events (request_id, at, event) VALUES (%s, %s, 'submitted')",
                       (f"DEL-{i}", T0.replace(tzinfo=None)))
        db.execute("INSERT INTO approvals (scope, dag_id, run_id, task_id, outcome, recorded_at)"
                   " VALUES ('daily:call_data', 'd', 'r', 't', 'approved', %s)", (T0.replace(tzinfo=None),))
        assert 9 in migrations.migrate()
        heads = {c: (n, a) for c, n, a in db.query("SELECT chain, length, adopted FROM ledger_chain_heads")}
        assert heads == {"purge_audit": (0, 0), "request_events": (7, 7), "certificates": (0, 0),
                         "decisions": (1, 1)}
        assert set(CHAINS) == set(heads)
        assert {o for (o,) in db.query("SELECT DISTINCT op FROM ledger_chain")} == {"adopt"}
        record_event("DEL-0", "claimed", run_id="manual__1")  # new rows append after the adopted ones
        assert migrations.migrate() == []
        report = verify_ledger()
        assert report.ok, [str(f) for f in report.findings]
        assert {s.chain: s.length for s in report.chains}["request_events"] == 8
    finally:
        db.execute(f"DROP DATABASE IF EXISTS `{db.name}`")


def test_the_command_exits_0_when_intact_and_1_naming_the_row_when_tampered(
    ledger: MySqlDatabase, policy: Policy, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = history(policy)
    assert ledger_cli.main(["verify", "--no-checkpoints"]) == 0
    assert "OK: every chain intact" in capsys.readouterr().out
    ledger.execute("UPDATE purge_audit SET outcome = 'failed', deleted = 0 WHERE id = %s", (ids[4],))
    assert ledger_cli.main(["verify", "--no-checkpoints"]) == 1
    err = capsys.readouterr().err
    assert f"EDITED: purge_audit row {ids[4]} (chain purge_audit entry 5)" in err


def test_a_certificate_and_the_chain_check_each_other(ledger: MySqlDatabase, policy: Policy) -> None:
    from include.retention.ledger.certificates import save_certificate
    from include.retention.ledger.positions import certificate_positions

    ids = history(policy)
    positions = certificate_positions(dag_id="retention_call_data", run_ids=["scheduled__2026-11-28"],
                                      request_id="DEL-20261128-0001", scope="request:DEL-20261128-0001")
    assert [p["id"] for p in positions["purge_audit"]] == ids and positions["purge_audit"][0]["seq"] == 1
    assert [p["seq"] for p in positions["request_events"]] == [1, 2, 3] and len(positions["decisions"]) == 1
    document = {"certificate": {"certificate_id": "CERT-DEL-1", "ledger": {"positions": positions}},
                "signature": {"key_id": "k", "value": "0" * 64}}
    save_certificate("DEL-20261128-0001", certificate_id="CERT-DEL-1", issued_at=T0, document=document,
                     cos_bucket="b", cos_key="certificates/DEL-20261128-0001.json")
    assert verify_ledger().ok
    # an entry the certificate names, rewritten (its row edited to match): the certificate disagrees
    ledger.execute("UPDATE ledger_chain SET hash = %s WHERE chain = 'purge_audit' AND seq = 5", ("e" * 64,))
    kinds = {(f.kind, f.seq) for f in verify_ledger().findings}
    assert ("rewritten", 5) in kinds and ("edited", 5) in kinds
