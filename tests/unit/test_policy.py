"""Loading the policy. The errors an operator can meet when editing it are the hostile-input catalogue."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from include.retention.identifiers import IdentifierError
from include.retention.policy import (
    DEFAULT_POLICY_PATH,
    CosTarget,
    MySqlTarget,
    PolicyError,
    load_policy,
)

RAW = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())


def test_packaged_policy_has_the_five_published_categories(policy) -> None:  # type: ignore[no-untyped-def]
    assert list(policy.categories) == ["log_data", "agent_info", "call_data", "call_analytics", "configuration"]
    assert policy.timezone_name == "Asia/Singapore"
    assert policy.request_window_days == 30
    assert policy.category("call_data").retention.months == 6
    assert policy.category("call_data").retention.extendable
    assert policy.category("configuration").requests == frozenset({"termination"})
    assert {t.store for t in policy.targets} == {"mysql", "redis", "cos", "elasticsearch"}


def test_every_target_names_its_tenant_and_time(policy) -> None:  # type: ignore[no-untyped-def]
    for target in policy.targets:
        if isinstance(target, MySqlTarget):
            assert target.tenant_column and target.time_column
        if isinstance(target, CosTarget):
            assert target.prefix is not None and target.prefix.placeholders[0] == "tenant"


def test_recordings_find_subjects_through_call_records(policy) -> None:  # type: ignore[no-untyped-def]
    recordings = policy.target("call_data.recordings")
    assert recordings.subject_keys_from.target == "call_records"
    assert set(recordings.subject_types) == {"agent", "phone_number"}


def test_policy_path_can_be_overridden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = copy.deepcopy(RAW)
    doc["timezone"] = "Asia/Jakarta"
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("RETENTION_POLICY_PATH", str(path))
    assert load_policy().timezone_name == "Asia/Jakarta"


# Refused edits of the policy and refused tenant ids: the hostile-input catalogue (docs/RELIABILITY.md,
# tests/unit/test_hostile_input.py).


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "absent.yaml")


def test_invalid_yaml_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("categories: [unclosed")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(path)


def test_phone_number_errors_never_echo_the_number(policy) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IdentifierError) as info:
        policy.validate_subject("phone_number", "6591234567")
    assert "6591234567" not in str(info.value)
    assert policy.validate_subject("phone_number", "+6591234567") == "+6591234567"


def test_unknown_subject_type_is_refused(policy) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IdentifierError, match="unknown subject type"):
        policy.validate_subject("email", "a@b.c")


def test_the_tenant_registry_defaults_to_tenants_and_can_name_your_own_table(policy) -> None:  # type: ignore[no-untyped-def]
    from include.retention.policy import TenantRegistry, parse_policy

    assert policy.tenant_registry == TenantRegistry("tenants", "tenant_id")
    raw = copy.deepcopy(RAW)
    raw["tenant_registry"] = {"table": "accounts", "column": "sdk_app_id"}
    assert parse_policy(raw).tenant_registry == TenantRegistry("accounts", "sdk_app_id")
    raw.pop("tenant_registry")
    assert parse_policy(raw).tenant_registry == TenantRegistry()  # absent: the default


@pytest.mark.parametrize(
    "registry, rule",
    [
        pytest.param({"table": "tenants; DROP TABLE x"}, "tenant_registry.table", id="table-not-an-identifier"),
        pytest.param({"column": "tenant id"}, "tenant_registry.column", id="column-not-an-identifier"),
        pytest.param({"tabel": "tenants"}, "tenant_registry", id="unknown-key"),
        pytest.param("tenants", "tenant_registry", id="not-a-mapping"),
    ],
)
def test_a_bad_tenant_registry_is_refused_naming_the_key(registry: object, rule: str) -> None:
    from include.retention.policy import parse_policy

    raw = copy.deepcopy(RAW)
    raw["tenant_registry"] = registry
    with pytest.raises(PolicyError) as refused:
        parse_policy(raw)
    assert rule in str(refused.value)
