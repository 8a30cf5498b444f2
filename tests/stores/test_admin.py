"""The operator commands for overrides and holds, against a private ledger on the real MariaDB."""

from __future__ import annotations

import uuid
from typing import Iterator

import pytest

from include.retention import admin, ledger

pytestmark = pytest.mark.servers


@pytest.fixture()
def private_ledger(servers, monkeypatch) -> Iterator[str]:  # type: ignore[no-untyped-def]
    import MySQLdb

    name = f"ledger_admin_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_LEDGER", f"mysql://root@127.0.0.1:{servers['mariadb'].port}/{name}")
    ledger.migrate()
    yield name
    db = MySQLdb.connect(host="127.0.0.1", port=servers["mariadb"].port, user="root")
    db.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
    db.close()


def test_override_set_list_clear(private_ledger, capsys) -> None:  # type: ignore[no-untyped-def]
    assert admin.main(["override", "set", "12", "call_data", "24", "--reason", "contract 2026-7", "--by", "ops"]) == 0
    admin.main(["override", "list"])
    out = capsys.readouterr().out
    assert "12" in out and "call_data" in out and "24 months" in out
    assert [o.retention_months for o in ledger.list_overrides("call_data")] == [24]
    admin.main(["override", "clear", "12", "call_data"])
    assert ledger.list_overrides() == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["override", "set", "12", "configuration", "24", "--reason", "r", "--by", "o"], "cannot be extended", id="not-extendable"),
        pytest.param(["override", "set", "12", "call_data", "3", "--reason", "r", "--by", "o"], "longer than", id="shorter-than-policy"),
        pytest.param(["override", "set", "1*", "call_data", "24", "--reason", "r", "--by", "o"], "wildcard", id="wildcard-tenant"),
        pytest.param(["override", "set", "12", "nope", "24", "--reason", "r", "--by", "o"], "unknown category", id="unknown-category"),
    ],
)
def test_bad_overrides_are_refused(private_ledger, argv, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises((SystemExit, ValueError, KeyError), match=message):
        admin.main(argv)
    assert ledger.list_overrides() == []


def test_subject_hold_never_prints_or_stores_the_subject(private_ledger, capsys) -> None:  # type: ignore[no-untyped-def]
    phone = "+6591234567"
    admin.main(["hold", "place", "12", "--reason", "case 77", "--by", "legal", "--subject-type", "phone_number",
                "--subject-id", phone])
    admin.main(["hold", "list"])
    out = capsys.readouterr().out
    assert phone not in out and "phone_number" in out
    (hold,) = ledger.list_holds()
    assert phone not in repr(hold) and phone not in (hold.subject_enc or "")
    assert admin.main(["hold", "release", str(hold.id)]) == 0
    assert ledger.list_holds() == []
