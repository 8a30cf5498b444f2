"""The operator commands for overrides and holds, against a private ledger on the real MariaDB.

The refusals are the ``tenant override`` and ``legal hold`` rows of the hostile-input catalogue
in docs/RELIABILITY.md (parsed by ``tests/hostile_catalogue.py``).
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from typing import Iterator

import pytest

from include.retention.cli import admin
from include.retention.ledger.holds import list_holds, place_hold
from include.retention.ledger.migrations import migrate
from include.retention.ledger.overrides import list_overrides, set_override
from include.retention.identifiers import IdentifierError
from tests.hostile_catalogue import ADMIN_ENTRY_POINTS, Case, cases_of

pytestmark = pytest.mark.servers

TENANT = "12"  # in the private database's tenants table; the catalogue's TENANT


@contextmanager
def _private_ledger(port: int) -> Iterator[str]:
    """A private database that is both the ledger and a contact center knowing tenant 12."""
    import MySQLdb

    name = f"ledger_admin_{uuid.uuid4().hex[:8]}"
    uri = f"mysql://root@127.0.0.1:{port}/{name}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_RETENTION_LEDGER", uri)
        mp.setenv("AIRFLOW_CONN_RETENTION_MYSQL", uri)
        migrate()
        db = MySQLdb.connect(host="127.0.0.1", port=port, user="root", db=name, autocommit=True)
        try:
            db.cursor().execute("CREATE TABLE tenants (tenant_id VARCHAR(20) PRIMARY KEY)")
            db.cursor().execute("INSERT INTO tenants VALUES (%s)", (TENANT,))
            yield name
        finally:
            db.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
            db.close()


@pytest.fixture()
def private_ledger(servers) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with _private_ledger(servers["mariadb"].port) as name:
        yield name


@pytest.fixture(scope="module")
def standing_ledger(servers) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A private ledger with an override and a hold that no refused command may change."""
    with _private_ledger(servers["mariadb"].port) as name:
        set_override(TENANT, "call_analytics", 12, reason="standing contract", set_by="ops")
        place_hold(TENANT, reason="standing hold", placed_by="legal")
        yield name


def test_override_set_list_clear(private_ledger, capsys) -> None:  # type: ignore[no-untyped-def]
    assert admin.main(["override", "set", TENANT, "call_data", "24", "--reason", "contract 2026-7", "--by", "ops"]) == 0
    admin.main(["override", "list"])
    out = capsys.readouterr().out
    assert "12" in out and "call_data" in out and "24 months" in out
    assert [o.retention_months for o in list_overrides("call_data")] == [24]
    admin.main(["override", "clear", TENANT, "call_data"])
    assert list_overrides() == []


@pytest.mark.parametrize("case", [pytest.param(c, id=c.case_id) for c in cases_of(*ADMIN_ENTRY_POINTS)])
def test_hostile_override_or_hold_is_refused_with_the_documented_error(
    standing_ledger, capsys, case: Case  # type: ignore[no-untyped-def]
) -> None:
    before = (list_overrides(), list_holds(active_only=False))
    with pytest.raises((SystemExit, ValueError, KeyError, IdentifierError)) as refused:
        admin.main(case.value(TENANT))
    message = f"{refused.value} {capsys.readouterr().err}"
    assert refused.value.args and refused.value.args[0] not in (0, None), message  # not a successful exit
    assert case.error in message
    assert "+6581234567" not in message and "+65*" not in message  # subject ids are never echoed
    assert (list_overrides(), list_holds(active_only=False)) == before


def test_subject_hold_never_prints_or_stores_the_subject(private_ledger, capsys) -> None:  # type: ignore[no-untyped-def]
    phone = "+6591234567"
    admin.main(["hold", "place", TENANT, "--reason", "case 77", "--by", "legal", "--subject-type", "phone_number",
                "--subject-id", phone])
    admin.main(["hold", "list"])
    out = capsys.readouterr().out
    assert phone not in out and "phone_number" in out
    (hold,) = list_holds()
    assert phone not in repr(hold) and phone not in (hold.subject_enc or "")
    assert admin.main(["hold", "release", str(hold.id)]) == 0
    assert list_holds() == []


def _policy_with_registry(tmp_path, registry: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    import yaml

    from include.retention.policy import DEFAULT_POLICY_PATH

    raw = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    raw["tenant_registry"] = registry
    path = tmp_path / f"policy-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_the_tenant_registry_comes_from_the_policy(private_ledger, servers, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Your own table of tenants, named in the policy: no table called ``tenants`` is needed."""
    import MySQLdb

    db = MySQLdb.connect(host="127.0.0.1", port=servers["mariadb"].port, user="root", db=private_ledger,
                         autocommit=True)
    try:
        db.cursor().execute("CREATE TABLE accounts (sdk_app_id BIGINT PRIMARY KEY)")
        db.cursor().execute("INSERT INTO accounts VALUES (1400123)")
        db.cursor().execute("DROP TABLE tenants")
    finally:
        db.close()
    monkeypatch.setenv("RETENTION_POLICY_PATH", _policy_with_registry(tmp_path, {"table": "accounts",
                                                                                  "column": "sdk_app_id"}))
    assert admin.main(["override", "set", "1400123", "call_data", "24", "--reason", "contract", "--by", "ops"]) == 0
    assert [(o.tenant_id, o.retention_months) for o in list_overrides("call_data")] == [("1400123", 24)]
    with pytest.raises(SystemExit) as refused:
        admin.main(["hold", "place", "1400124", "--reason", "case 1", "--by", "legal"])
    assert "unknown tenant 1400124" in str(refused.value) and "accounts(sdk_app_id)" in str(refused.value)


@pytest.mark.parametrize("registry", [
    pytest.param({"table": "no_such_table"}, id="missing-table"),
    pytest.param({"column": "no_such_column"}, id="missing-column"),
])
def test_a_missing_tenant_registry_is_a_clear_error_naming_the_policy_key(  # type: ignore[no-untyped-def]
    private_ledger, tmp_path, monkeypatch, capsys, registry
) -> None:
    monkeypatch.setenv("RETENTION_POLICY_PATH", _policy_with_registry(tmp_path, registry))
    with pytest.raises(SystemExit) as refused:
        admin.main(["override", "set", TENANT, "call_data", "24", "--reason", "contract", "--by", "ops"])
    message = str(refused.value)
    assert message.startswith("error: the tenant registry") and "tenant_registry" in message
    assert "Traceback" not in message + capsys.readouterr().err
    assert list_overrides() == []  # nothing was written
