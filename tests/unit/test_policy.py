"""Loading the policy, and every error an operator can meet when editing it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from include.retention.naming import IdentifierError
from include.retention.policy import (
    DEFAULT_POLICY_PATH,
    CosTarget,
    MySqlTarget,
    PolicyError,
    load_policy,
    parse_policy,
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


def mutate(fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = copy.deepcopy(RAW)
    fn(doc)
    return doc


def target(doc: dict[str, Any], category: str, name: str) -> dict[str, Any]:
    return next(t for t in doc["categories"][category]["targets"] if t["name"] == name)


BAD_POLICIES = [
    pytest.param(
        lambda d: target(d, "call_data", "call_records").update(store="cassandra"),
        "categories.call_data.targets.call_records",
        "unknown store",
        id="unknown-store",
    ),
    pytest.param(
        lambda d: target(d, "call_data", "call_records").update(table="call_records; DROP TABLE x"),
        "categories.call_data.targets.call_records.table",
        "not a plain SQL identifier",
        id="table-not-identifier",
    ),
    pytest.param(
        lambda d: target(d, "agent_info", "agent_state").update(key="cc:{tenant}:agent:{agent}"),
        "categories.agent_info.targets.agent_state.key",
        "could match many",
        id="subject-segment-at-end-of-key",
    ),
    pytest.param(
        lambda d: target(d, "agent_info", "agent_state").update(key="cc:{tenant}:agent:{agent}-x:"),
        "categories.agent_info.targets.agent_state.key",
        "may contain",
        id="subject-segment-followed-by-its-own-character",
    ),
    pytest.param(
        lambda d: target(d, "log_data", "cc_logs").update(index="cc-logs-{tenant}{month}"),
        "categories.log_data.targets.cc_logs.index",
        "could match many",
        id="index-pattern-widens-to-other-tenants",
    ),
    pytest.param(
        lambda d: d["categories"]["call_data"].update(retention={"months": -6}),
        "categories.call_data.retention",
        "positive whole number",
        id="negative-duration",
    ),
    pytest.param(
        lambda d: d["categories"]["call_data"].update(retention={"months": 0}),
        "categories.call_data.retention",
        "positive whole number",
        id="zero-duration",
    ),
    pytest.param(
        lambda d: d["categories"]["call_data"].update(retention={"months": 100000}),
        "categories.call_data.retention",
        "absurdly long",
        id="absurd-duration",
    ),
    pytest.param(
        lambda d: d["categories"]["call_data"].pop("retention"),
        "categories.call_data.retention",
        "no retention rule",
        id="category-without-rule",
    ),
    pytest.param(
        lambda d: d["categories"]["call_data"].update(retention={"months": 6, "days": 3}),
        "categories.call_data.retention",
        "exactly one",
        id="two-rules",
    ),
    pytest.param(
        lambda d: target(d, "call_data", "call_records").update(tabel="x"),
        "categories.call_data.targets.call_records",
        "unknown field(s) tabel",
        id="typo-field",
    ),
    pytest.param(lambda d: d.update(timezone="Mars/Olympus"), "timezone", "unknown time zone", id="bad-timezone"),
    pytest.param(
        lambda d: d["identifiers"].update(tenant="^.*$"),
        "identifiers.tenant",
        "explicit",
        id="tenant-id-pattern-admits-anything",
    ),
    pytest.param(
        lambda d: d["identifiers"]["subjects"].update(agent="^[a-z*]+$"),
        "identifiers.subjects.agent",
        "metacharacters",
        id="subject-pattern-admits-wildcard",
    ),
    pytest.param(
        lambda d: d["categories"]["configuration"].update(requests=["termination", "deletion"]),
        "categories.configuration.requests",
        "no target names a subject",
        id="deletion-without-subjects",
    ),
    pytest.param(
        lambda d: target(d, "agent_info", "agent_state").update(retention={"months": 6}),
        "categories.agent_info.targets.agent_state.retention",
        "no date",
        id="age-rule-on-undated-keys",
    ),
    pytest.param(
        lambda d: target(d, "call_data", "recordings").update(subject_keys_from={"target": "nope", "column": "k"}),
        "categories.call_data.targets.recordings.subject_keys_from",
        "no target 'nope'",
        id="dangling-reference",
    ),
    pytest.param(lambda d: d.pop("categories"), "categories", "expected a mapping", id="no-categories"),
]


@pytest.mark.parametrize(("change", "rule", "problem"), BAD_POLICIES)
def test_bad_policy_is_refused_naming_file_rule_and_fix(change, rule: str, problem: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PolicyError) as info:
        parse_policy(mutate(change), "/etc/retention/policy.yaml")
    err = info.value
    assert err.rule == rule
    assert problem in err.problem
    message = str(err)
    assert message.startswith("/etc/retention/policy.yaml: " + rule)
    assert "Fix: " in message and err.fix


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "absent.yaml")


def test_invalid_yaml_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("categories: [unclosed")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(path)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("", id="empty"),
        pytest.param("12*", id="glob-star"),
        pytest.param("1?", id="glob-question"),
        pytest.param("1[2]", id="glob-class"),
        pytest.param("12%", id="sql-like-percent"),
        pytest.param("1_2", id="sql-like-underscore"),
        pytest.param("12'", id="quote"),
        pytest.param("12;", id="semicolon"),
        pytest.param("1\\2", id="backslash"),
        pytest.param("12\x00", id="nul"),
        pytest.param("1" * 200, id="overlong"),
        pytest.param("１２", id="fullwidth-digits"),
        pytest.param("012", id="leading-zero"),
        pytest.param(12, id="not-a-string"),
    ],
)
def test_bad_tenant_ids_are_refused(policy, bad: object) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IdentifierError):
        policy.validate_tenant_id(bad)


def test_phone_number_errors_never_echo_the_number(policy) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IdentifierError) as info:
        policy.validate_subject("phone_number", "6591234567")
    assert "6591234567" not in str(info.value)
    assert policy.validate_subject("phone_number", "+6591234567") == "+6591234567"


def test_unknown_subject_type_is_refused(policy) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IdentifierError, match="unknown subject type"):
        policy.validate_subject("email", "a@b.c")
