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
