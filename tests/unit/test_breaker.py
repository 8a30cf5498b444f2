"""The circuit breaker: a target's share and each tenant's share of it."""

from __future__ import annotations

import pytest

from include.retention.daily.breaker import CircuitBreakerTripped, RunOptions, check, target_share, tenant_share


def test_a_tenant_over_the_share_trips_it_although_the_target_is_under() -> None:
    shares = [target_share("call_data.call_records", 1_800, 10_000)]
    tenants = [tenant_share("call_data.call_records", "2001", 1_800, 2_000)]
    with pytest.raises(CircuitBreakerTripped, match=r"call_data.call_records \(tenant 2001\): 1800 of 2000 \(90.0%\)"):
        check(shares, RunOptions(), tenants)


def test_a_tenant_under_its_floor_does_not_trip_it() -> None:
    tenants = [tenant_share("call_data.call_records", "2001", 900, 1_000)]
    check([target_share("call_data.call_records", 900, 10_000)], RunOptions(tenant_min_records=901), tenants)


def test_the_override_needs_a_reason_for_a_tenant_line_too() -> None:
    tenants = [tenant_share("call_data.call_records", "2001", 5_000, 5_000)]
    with pytest.raises(CircuitBreakerTripped, match="needs an override_reason"):
        check([], RunOptions(allow_large_purge=True), tenants)
    check([], RunOptions(allow_large_purge=True, override_reason="onboarding backlog"), tenants)


def test_options_from_params_default_the_tenant_floor() -> None:
    params = {"dry_run": False, "max_share": 0.5, "allow_large_purge": False, "override_reason": ""}
    assert RunOptions.from_params(params).tenant_min_records == 1000


# --------------------------------------------------------------------------- the policy's circuit_breaker key


def _with_breaker(value: object) -> dict[str, object]:
    import copy

    import yaml

    from include.retention.policy import DEFAULT_POLICY_PATH

    raw = copy.deepcopy(yaml.safe_load(DEFAULT_POLICY_PATH.read_text()))
    raw["circuit_breaker"] = value
    return raw


def test_the_packaged_policy_fails_a_tripped_run_at_once() -> None:
    from include.retention.policy import DEFAULT_POLICY_PATH, load_policy

    breaker = load_policy(DEFAULT_POLICY_PATH).circuit_breaker
    assert (breaker.on_trip, breaker.approval_timeout_minutes, breaker.approvers) == ("fail", 1440, ())


@pytest.mark.parametrize(("value", "rule", "says"), [
    pytest.param({"on_trip": "wait"}, "circuit_breaker.on_trip", "unknown action", id="action"),
    pytest.param({"approval_timeout_minutes": 0}, "circuit_breaker.approval_timeout_minutes", "positive", id="zero"),
    pytest.param({"approvers": [""]}, "circuit_breaker.approvers", "user names", id="empty-name"),
    pytest.param({"ask": True}, "circuit_breaker", "unknown field", id="unknown-field"),
])
def test_a_wrong_breaker_rule_is_refused_with_the_fix(value: object, rule: str, says: str) -> None:
    from include.retention.policy import PolicyError, parse_policy

    with pytest.raises(PolicyError) as caught:
        parse_policy(_with_breaker(value))
    assert caught.value.rule == rule and says in caught.value.problem and caught.value.fix


def test_ask_and_its_approvers_are_read() -> None:
    from include.retention.policy import parse_policy

    breaker = parse_policy(_with_breaker({"on_trip": "ask", "approval_timeout_minutes": 90,
                                          "approvers": [" dpo "]})).circuit_breaker
    assert (breaker.on_trip, breaker.approval_timeout_minutes, breaker.approvers) == ("ask", 90, ("dpo",))


# --------------------------------------------------------------------------- what the approver of a large purge sees


def test_the_approver_sees_each_line_over_the_breaker_and_nothing_is_asked_otherwise() -> None:
    from include.retention.daily.approval import approved_by, build_ask
    from include.retention.policy import load_policy

    policy = load_policy()
    the_plan = {
        "category": "call_data", "as_of": "2026-12-01T00:00:00+08:00", "max_share": 0.5,
        "specs": [{"target": "call_data.call_records", "selection": {"kind": "expired",
                                                                  "before": "2026-06-01T00:00:00+08:00"}}],
        "needs_approval": [target_share("call_data.call_records", 9_000, 10_000),
                           tenant_share("call_data.call_records", "2001", 1_800, 2_000)],
    }
    asked = build_ask(policy, the_plan, "scheduled__2026-11-30T16:00:00+00:00")
    assert asked is not None and asked.scope == "daily:call_data:scheduled__2026-11-30T16:00:00+00:00"
    assert "| call_data.call_records | all | 9000 | 10000 | 90.0% | 2026-06-01T00:00:00+08:00 |" in asked.body
    assert "| call_data.call_records | 2001 | 1800 | 2000 | 90.0% |" in asked.body
    assert build_ask(policy, {**the_plan, "needs_approval": []}, "r") is None
    assert approved_by({"outcome": "approved", "responded_by": "bob", "reason": "backlog"}) == (
        "bob", "approved by bob: backlog")
    assert approved_by({"outcome": "not_required"}) == ("", "")
