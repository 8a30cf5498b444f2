"""Least-privilege MySQL grants generated from the policy (pure: no server)."""

from __future__ import annotations

import pytest

from devdata import schema
from include.retention.cli.grants import DEFAULT_PARTITIONED, main, mysql_grant_statements, mysql_table_privileges
from include.retention.policy import MySqlTarget, Policy


def test_every_listed_table_gets_select_and_delete_and_only_partitioned_ones_alter_and_drop(policy: Policy) -> None:
    listed = {t.table for t in policy.targets if isinstance(t, MySqlTarget)}
    privileges = mysql_table_privileges(policy, partitioned=["call_records", "call_metrics"])
    assert set(privileges) == listed | {"tenants"}
    assert privileges["tenants"] == ("SELECT",)
    for table in listed:
        expected = ("SELECT", "DELETE") + (("ALTER", "DROP") if table in ("call_records", "call_metrics") else ())
        assert privileges[table] == expected, table


def test_a_partitioned_table_the_policy_does_not_list_is_refused(policy: Policy) -> None:
    with pytest.raises(ValueError, match="tenants"):
        mysql_table_privileges(policy, partitioned=["tenants"])


@pytest.mark.parametrize(
    ("user", "host", "database"),
    [
        pytest.param("ret'; DROP USER root; --", "%", "cc", id="quote-in-user"),
        pytest.param("retention", "x' IDENTIFIED BY 'y", "cc", id="quote-in-host"),
        pytest.param("retention", "%", "cc`.* TO x; --", id="backquote-in-database"),
    ],
)
def test_names_that_are_not_plain_are_refused(policy: Policy, user: str, host: str, database: str) -> None:
    with pytest.raises(ValueError):
        mysql_grant_statements(policy, user=user, host=host, database=database, ledger_database="ledger")


def test_the_ledger_grant_names_one_database_and_the_cli_prints_the_same(
    policy: Policy, capsys: pytest.CaptureFixture[str]
) -> None:
    statements = mysql_grant_statements(policy, user="retention", host="10.0.%", database="contact_center",
                                        ledger_database="retention_ledger", partitioned=["call_records"])
    # '_' is a wildcard in a database-level grant; escaped, it matches only itself.
    assert statements[-1] == "GRANT ALL PRIVILEGES ON `retention\\_ledger`.* TO 'retention'@'10.0.%'"
    assert "GRANT SELECT, DELETE, ALTER, DROP ON `contact_center`.`call_records` TO 'retention'@'10.0.%'" in statements
    assert main(["--user", "retention", "--host", "10.0.%", "--database", "contact_center",
                       "--ledger-database", "retention_ledger", "--partitioned", "call_records"]) == 0
    assert capsys.readouterr().out.splitlines() == [s + ";" for s in statements]


def test_without_partitioned_the_cli_grants_the_demo_schemas_partitioned_tables(
    policy: Policy, capsys: pytest.CaptureFixture[str]
) -> None:
    # The default is a constant in grants (product code does not import devdata): held to the schema here.
    assert sorted(DEFAULT_PARTITIONED) == sorted(schema.PARTITIONED_TABLES)
    statements = mysql_grant_statements(policy, user="retention", host="%", database="contact_center",
                                        ledger_database="retention_ledger", partitioned=schema.PARTITIONED_TABLES)
    assert main(["--user", "retention", "--database", "contact_center", "--ledger-database", "retention_ledger"]) == 0
    assert capsys.readouterr().out.splitlines() == [s + ";" for s in statements]


def test_the_tenant_registry_the_policy_names_gets_select_only() -> None:
    import copy

    import yaml

    from include.retention.policy import DEFAULT_POLICY_PATH, parse_policy

    raw = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    raw["tenant_registry"] = {"table": "accounts", "column": "sdk_app_id"}
    privileges = mysql_table_privileges(parse_policy(copy.deepcopy(raw)))
    assert privileges["accounts"] == ("SELECT",) and "tenants" not in privileges
