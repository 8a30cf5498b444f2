"""The ledger chain's hashing, the checkpoint's signature and the verifier's report (pure)."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from include.retention.crypto import RetentionCrypto
from include.retention.ledger import checkpoints
from include.retention.ledger.chain import CHAIN_OF, CHAINS, COLUMNS, GENESIS, content_hash, entry_hash
from include.retention.ledger.migrations import MIGRATIONS
from include.retention.ledger.verify import Finding, Report

KEYS = RetentionCrypto(b"h" * 32, b"e" * 32, b"c" * 32)
AT = datetime(2026, 11, 28, 1, 2, 3, 456789)
ARGS = ("purge_audit", 7, "purge_audit", 41, "append", "a" * 64, GENESIS, AT)


def test_every_chained_table_belongs_to_one_chain_and_hashes_no_id() -> None:
    assert sorted(CHAIN_OF) == sorted(COLUMNS)
    assert set(CHAINS) == {"purge_audit", "request_events", "certificates", "decisions"}
    assert all("id" not in cols for cols in COLUMNS.values())  # the entry names the row: a moved row shows


def test_hashed_columns_exist_in_the_migrations() -> None:
    ddl = " ".join(s for m in MIGRATIONS for s in m.statements)
    for table, columns in COLUMNS.items():
        for column in columns:
            assert re.search(rf"\b{column}\b", ddl), f"{table}.{column} is not created by any migration"


def test_content_hash_is_stable_and_sees_every_value() -> None:
    row = ("DEL-1", AT, None, "state", "open", "verifying", "no personal data")
    assert content_hash("request_events", row) == content_hash("request_events", list(row))
    for i in range(len(row)):
        changed = list(row)
        changed[i] = "x" if changed[i] != "x" else "y"
        assert content_hash("request_events", changed) != content_hash("request_events", row)
    assert content_hash("tenant_overrides", ("1", "c", 12, "r", "b", AT)) != content_hash(
        "tenant_overrides", ("1", "c", Decimal(12) + Decimal("0.5"), "r", "b", AT))
    with pytest.raises(ValueError, match="columns"):
        content_hash("request_events", row[:-1])


@pytest.mark.parametrize("index", range(len(ARGS)), ids=["chain", "seq", "table", "row", "op", "content", "prev", "at"])
def test_an_entry_hash_changes_with_each_field(index: int) -> None:
    changed = list(ARGS)
    changed[index] = {0: "decisions", 1: 8, 2: "approvals", 3: 42, 4: "settle", 5: "b" * 64, 6: "f" * 64,
                      7: AT.replace(microsecond=0)}[index]
    assert entry_hash(*changed) != entry_hash(*ARGS)  # type: ignore[arg-type]


def test_a_checkpoint_is_signed_and_any_edit_breaks_it() -> None:
    doc = checkpoints.build(day=date(2026, 11, 28), taken_at=datetime(2026, 11, 28, 15, 30, tzinfo=timezone.utc),
                            database="retention_ledger", chain_heads={"purge_audit": {"length": 5, "head": "a" * 64}},
                            object_lock={"enabled": False, "reason": "NotImplemented"}, crypto=KEYS)
    assert checkpoints.signature_ok(doc, KEYS)
    assert doc["checkpoint"]["object_lock"] == {"enabled": False, "reason": "NotImplemented"}
    assert doc["signature"]["key_id"] == checkpoints.key_id(KEYS)
    doc["checkpoint"]["chains"]["purge_audit"]["length"] = 4
    assert not checkpoints.signature_ok(doc, KEYS)
    assert not checkpoints.signature_ok({"checkpoint": {}}, KEYS)


def test_the_key_id_is_the_certificates() -> None:
    from include.retention.certificates.document import key_id

    assert checkpoints.key_id(KEYS) == key_id(KEYS)


def test_the_report_names_each_chains_lowest_position_first() -> None:
    report = Report((), (Finding("purge_audit", "inserted", "no entry", None, "purge_audit", 9),
                         Finding("purge_audit", "edited", "differs", 12, "purge_audit", 12),
                         Finding("purge_audit", "deleted", "gone", 3, "purge_audit", 3),
                         Finding("decisions", "truncated", "cut", 7)))
    assert not report.ok
    first = report.first()
    assert (first["purge_audit"].kind, first["decisions"].kind) == ("deleted", "truncated")
    assert str(first["purge_audit"]) == "DELETED: purge_audit row 3 (chain purge_audit entry 3): gone"


def test_a_certificate_renders_its_chain_positions(policy) -> None:  # type: ignore[no-untyped-def]
    from include.retention.certificates.render import render_markdown
    from tests.unit.test_requests import certificate

    doc = certificate(policy)
    assert "Ledger chains" not in render_markdown(doc)  # built without positions: no section
    doc["certificate"]["ledger"] = {"positions": {
        "purge_audit": [{"table": "purge_audit", "id": 3, "seq": 7, "hash": "a" * 64},
                        {"table": "purge_audit", "id": 9, "seq": 12, "hash": "b" * 64}],
        "request_events": [{"table": "request_events", "id": 1, "seq": None}], "decisions": []}}
    assert ("Ledger chains: purge_audit 2 row(s) at entries 7 to 12; request_events 1 row(s)"
            in render_markdown(doc))
