"""Expiry planning: calendar months, boundaries, time zones, overrides, holds (pure, no I/O)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.retention.facts import LegalHold, SubjectDeletion, TenantOverride, Termination
from include.retention.timeutil import add_months, day_span, local_day, month_span
from include.retention.expiry import cutoff, plan_expired, plan_requests
from include.retention.policy import Retention
from include.retention.selections import DatedUnit, ExpiredSelection, SubjectSelection, TenantSelection

SGT = ZoneInfo("Asia/Singapore")
UTC = timezone.utc
SIX_MONTHS = Retention(months=6, extendable=True)


def sgt(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SGT)


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        pytest.param(date(2026, 8, 31), -6, date(2026, 2, 28), id="31-aug-back-to-short-february"),
        pytest.param(date(2024, 8, 31), -6, date(2024, 2, 29), id="leap-year-february"),
        pytest.param(date(2026, 5, 31), 6, date(2026, 11, 30), id="31-may-forward-to-30-nov"),
        pytest.param(date(2026, 1, 15), -1, date(2025, 12, 15), id="across-new-year"),
        pytest.param(date(2024, 2, 29), 12, date(2025, 2, 28), id="leap-day-plus-a-year"),
    ],
)
def test_add_months_clamps_to_month_end(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


def test_cutoff_is_start_of_day_six_calendar_months_back_in_policy_zone() -> None:
    as_of = sgt(2026, 11, 28, 0, 0)
    assert cutoff(as_of, SIX_MONTHS, SGT) == sgt(2026, 5, 28)


@pytest.mark.parametrize(
    ("as_of", "expired"),
    [
        pytest.param(sgt(2026, 11, 30, 23, 59), False, id="kept-through-30-nov"),
        pytest.param(sgt(2026, 12, 1, 0, 0), True, id="expired-as-of-1-dec"),
    ],
)
def test_record_from_31_may_is_kept_six_full_months(as_of: datetime, expired: bool) -> None:
    record = sgt(2026, 5, 31, 23, 30)
    cut = cutoff(as_of, SIX_MONTHS, SGT)
    assert cut is not None
    assert (record < cut) is expired


def test_leap_day_record_expires_as_of_first_of_september() -> None:
    record = sgt(2024, 2, 29, 12)
    assert not record < cutoff(sgt(2024, 8, 29), SIX_MONTHS, SGT)  # type: ignore[operator]
    assert not record < cutoff(sgt(2024, 8, 31), SIX_MONTHS, SGT)  # type: ignore[operator]
    assert record < cutoff(sgt(2024, 9, 1), SIX_MONTHS, SGT)  # type: ignore[operator]


def test_time_zone_day_boundary_uses_the_policy_calendar_not_utc() -> None:
    # 16:00 UTC on 30 Nov is already 1 Dec in Singapore.
    before_midnight = datetime(2026, 11, 30, 15, 59, tzinfo=UTC)
    after_midnight = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert local_day(before_midnight, SGT) == date(2026, 11, 30)
    assert local_day(after_midnight, SGT) == date(2026, 12, 1)
    assert cutoff(before_midnight, SIX_MONTHS, SGT) == sgt(2026, 5, 30)
    assert cutoff(after_midnight, SIX_MONTHS, SGT) == sgt(2026, 6, 1)
    # A record at 23:30 SGT on 31 May is 15:30 UTC: still the 31st where it counts.
    record_utc = datetime(2026, 5, 31, 15, 30, tzinfo=UTC)
    assert not record_utc < cutoff(before_midnight, SIX_MONTHS, SGT)  # type: ignore[operator]
    assert record_utc < cutoff(after_midnight, SIX_MONTHS, SGT)  # type: ignore[operator]


def test_naive_as_of_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cutoff(datetime(2026, 11, 28), SIX_MONTHS, SGT)


def test_until_termination_never_expires_by_age() -> None:
    assert cutoff(sgt(2030, 1, 1), Retention(until_termination=True), SGT) is None


def test_days_rule() -> None:
    assert cutoff(sgt(2026, 3, 1, 9), Retention(days=28), SGT) == sgt(2026, 2, 1)


def test_extended_months_only_lengthen() -> None:
    as_of = sgt(2026, 11, 28)
    assert cutoff(as_of, SIX_MONTHS, SGT, months=12) == sgt(2025, 11, 28)
    assert cutoff(as_of, SIX_MONTHS, SGT, months=3) == sgt(2026, 5, 28)


def test_spans() -> None:
    assert day_span(date(2026, 5, 31), SGT) == (sgt(2026, 5, 31), sgt(2026, 6, 1))
    assert month_span(date(2026, 12, 9), SGT) == (sgt(2026, 12, 1), sgt(2027, 1, 1))


# --------------------------------------------------------------------------- plans


def day_units(prefix: str, tenant: str, first: date, days: int) -> list[DatedUnit]:
    out = []
    for i in range(days):
        d = first + timedelta(days=i)
        start, end = day_span(d, SGT)
        out.append(DatedUnit(f"{prefix}/{tenant}/{d:%Y/%m/%d}/", start, end, tenant))
    return out


def month_partitions(first: date, months: int) -> list[DatedUnit]:
    out = []
    for i in range(months):
        m = add_months(first, i)
        start = datetime.combine(m, datetime.min.time(), tzinfo=UTC)
        end = datetime.combine(add_months(m, 1), datetime.min.time(), tzinfo=UTC)
        out.append(DatedUnit(f"p{m:%Y%m}", start, end, None))
    return out


def test_cos_plan_selects_only_whole_days_before_each_tenants_cutoff(policy) -> None:  # type: ignore[no-untyped-def]
    target = policy.target("call_data.recordings")
    units = day_units("recordings", "12", date(2026, 5, 26), 6) + day_units("recordings", "123", date(2026, 5, 26), 6)
    plan = plan_expired(target, sgt(2026, 11, 28, 3), SGT, units)
    by_tenant = {p.selection.tenant: p.selection for p in plan.purges}
    assert set(by_tenant) == {"12", "123"}
    assert by_tenant["12"].units == ("recordings/12/2026/05/26/", "recordings/12/2026/05/27/")
    assert "older than 6 calendar months" in plan.purges[0].reason


def test_cos_plan_honours_extended_retention_and_holds(policy) -> None:  # type: ignore[no-untyped-def]
    target = policy.target("call_data.recordings")
    units = [u for t in ("12", "123", "7", "8") for u in day_units("recordings", t, date(2025, 10, 1), 3)]
    plan = plan_expired(
        target,
        sgt(2026, 11, 28),
        SGT,
        units,
        overrides=[TenantOverride("12", "call_data", 24), TenantOverride("123", "call_analytics", 24)],
        holds=[LegalHold("7"), LegalHold("8", "phone_number", "+6590000000")],
    )
    tenants = {p.selection.tenant for p in plan.purges}
    assert tenants == {"123"}  # 12 extended, 7 held, 8 has a held subject (units kept whole)
    assert any("legal hold" in s for s in plan.skipped)


def test_mysql_plan_drops_only_partitions_wholly_before_cutoff_and_excludes_override_tenants(policy) -> None:  # type: ignore[no-untyped-def]
    target = policy.target("call_data.call_records")
    units = month_partitions(date(2026, 1, 1), 12)
    plan = plan_expired(
        target,
        sgt(2026, 11, 28),
        SGT,
        units,
        overrides=[TenantOverride("12", "call_data", 12)],
        holds=[LegalHold("7"), LegalHold("8", "phone_number", "+6590000000")],
    )
    default, extended = plan.purges
    assert isinstance(default.selection, ExpiredSelection)
    assert default.selection.tenant is None
    assert default.selection.before == sgt(2026, 5, 28)
    # May's partition ends 1 June UTC, after the 28 May SGT cut-off: it straddles, rows go one by one.
    assert default.selection.units == ("p202601", "p202602", "p202603", "p202604")
    assert default.selection.exclude_tenants == frozenset({"12", "7"})
    assert default.selection.exclude_subjects == frozenset({("8", "phone_number", "+6590000000")})
    assert extended.selection.tenant == "12" and extended.selection.before == sgt(2025, 11, 28)
    assert extended.selection.units == ()


def test_override_on_a_non_extendable_rule_is_ignored(policy) -> None:  # type: ignore[no-untyped-def]
    target = policy.target("call_data.call_data_backups")  # 28 days, not extendable
    units = day_units("backups", "12", date(2026, 10, 1), 3)
    plan = plan_expired(target, sgt(2026, 11, 28), SGT, units, overrides=[TenantOverride("12", "call_data", 24)])
    assert [p.selection.tenant for p in plan.purges] == ["12"]


def test_until_termination_target_plans_nothing_by_age(policy) -> None:  # type: ignore[no-untyped-def]
    assert plan_expired(policy.target("agent_info.agents"), sgt(2030, 1, 1), SGT, []).purges == ()


def test_request_sweep_covers_open_windows_only_and_respects_holds(policy) -> None:  # type: ignore[no-untyped-def]
    category = policy.category("call_data")
    target = policy.target("call_data.call_records")
    received = sgt(2026, 11, 1)
    terms = [
        Termination("12", received, received + timedelta(days=30), frozenset({"call_data"})),
        Termination("99", sgt(2026, 9, 1), sgt(2026, 10, 1), frozenset({"call_data"})),  # window closed
        Termination("7", received, received + timedelta(days=30), frozenset({"call_data"})),
    ]
    dels = [
        SubjectDeletion("123", "phone_number", "+6591112222", "h" * 64, received, received + timedelta(days=30), frozenset({"call_data"})),
        SubjectDeletion("123", "phone_number", "+6593334444", "g" * 64, received, received + timedelta(days=30), frozenset({"call_data"})),
    ]
    holds = [LegalHold("7"), LegalHold("123", "phone_number", "+6593334444")]
    plan = plan_requests(category, target, sgt(2026, 11, 28), terms, dels, holds)
    sels = [p.selection for p in plan.purges]
    assert TenantSelection("12") in sels
    assert [s.tenant for s in sels if isinstance(s, TenantSelection)] == ["12"]
    subjects = [s for s in sels if isinstance(s, SubjectSelection)]
    assert len(subjects) == 1 and subjects[0].subject_hash == "h" * 64
    assert len(plan.skipped) == 2
    assert all("+659" not in p.reason for p in plan.purges) and all("+659" not in s for s in plan.skipped)


def test_a_subject_hold_stops_the_termination_sweep_of_its_tenant(policy) -> None:  # type: ignore[no-untyped-def]
    # Found by tests/stores/test_never_over_delete.py: the sweep deleted a held agent's rows.
    category = policy.category("agent_info")
    target = policy.target("agent_info.agents")
    received = sgt(2026, 11, 1)
    terms = [Termination(t, received, received + timedelta(days=30), frozenset({"agent_info"})) for t in ("12", "123")]
    plan = plan_requests(category, target, sgt(2026, 11, 20), terms, holds=[LegalHold("12", "agent", "alice")])
    assert [p.selection for p in plan.purges] == [TenantSelection("123")]
    assert plan.skipped == ("terminated tenant 12 has a subject on legal hold",)


def test_a_deletion_sweep_keeps_records_naming_another_held_subject_of_its_tenant(policy) -> None:  # type: ignore[no-untyped-def]
    # Found by the property tests: agent A's deletion took a call that also names held number X.
    category = policy.category("call_data")
    received = sgt(2026, 11, 1)
    d = SubjectDeletion("12", "agent", "alice", "h" * 64, received, received + timedelta(days=30), frozenset({"call_data"}))
    holds = [
        LegalHold("12", "phone_number", "+6593334444"),
        LegalHold("12", "agent", "bob"),
        LegalHold("123", "phone_number", "+6595556666"),  # another tenant's hold: not this tenant's records
        LegalHold("7"),
    ]
    calls = plan_requests(category, policy.target("call_data.call_records"), sgt(2026, 11, 20), deletions=[d], holds=holds)
    (selection,) = [p.selection for p in calls.purges]
    assert isinstance(selection, SubjectSelection) and selection.subject_id == "alice"
    assert selection.exclude_subjects == {("12", "phone_number", "+6593334444"), ("12", "agent", "bob")}
    assert selection.without_holds() == SubjectSelection("12", "agent", "alice", "h" * 64)
    assert "+659" not in repr(selection)
    # A target that cannot name phone numbers carries only the holds it can address.
    staff = plan_requests(policy.category("agent_info"), policy.target("agent_info.agents"), sgt(2026, 11, 20),
                          deletions=[replace(d, categories=frozenset({"agent_info"}))], holds=holds)
    assert [p.selection.exclude_subjects for p in staff.purges] == [{("12", "agent", "bob")}]  # type: ignore[union-attr]


def test_a_subject_selection_keeps_its_holds_through_xcom_as_hashes() -> None:
    from include.retention.selections import selection_from_doc, selection_to_doc
    from include.retention.crypto import RetentionCrypto

    keys = RetentionCrypto(subject_hash_key=b"k" * 32, subject_encryption_key=b"e" * 32, certificate_key=b"c" * 32)
    held = ("12", "phone_number", "+6593334444")
    selection = SubjectSelection("12", "agent", "alice", "h" * 64, frozenset({held}))
    doc = selection_to_doc(selection, keys)
    assert "+659" not in str(doc) and doc["exclude_subject_hashes"] == [keys.subject_hash(*held)]
    lookup = {"h" * 64: ("12", "agent", "alice"), keys.subject_hash(*held): held}
    assert selection_from_doc(doc, lookup) == selection
    with pytest.raises(LookupError, match="cannot be resolved"):
        selection_from_doc(doc, {"h" * 64: ("12", "agent", "alice")})
    # Without holds the document is what it always was.
    assert "exclude_subject_hashes" not in selection_to_doc(selection.without_holds(), keys)


def test_configuration_takes_no_subject_deletion(policy) -> None:  # type: ignore[no-untyped-def]
    category = policy.category("configuration")
    target = policy.target("configuration.blacklist_numbers")
    d = SubjectDeletion("12", "phone_number", "+6591112222", "h" * 64, sgt(2026, 11, 1), sgt(2026, 12, 1), frozenset({"configuration"}))
    assert plan_requests(category, target, sgt(2026, 11, 2), deletions=[d]).purges == ()


# --------------------------------------------------------------------------- property


def inside_retention(last_local_day: date, as_of_day: date, months: int) -> bool:
    """Independent oracle: data from ``last_local_day`` is younger than N calendar months."""
    return add_months(last_local_day, months) >= as_of_day


tenants_st = st.sampled_from(["1", "12", "123", "7", "70", "8"])


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    as_of=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)),
    first=st.dates(min_value=date(2023, 1, 1), max_value=date(2028, 6, 1)),
    days=st.integers(min_value=1, max_value=400),
    unit_tenants=st.lists(tenants_st, min_size=1, max_size=4, unique=True),
    overrides=st.dictionaries(tenants_st, st.integers(min_value=1, max_value=36), max_size=3),
    held=st.sets(tenants_st, max_size=2),
    held_subject_tenants=st.sets(tenants_st, max_size=2),
)
def test_nothing_inside_retention_is_ever_planned(
    policy, as_of, first, days, unit_tenants, overrides, held, held_subject_tenants
) -> None:  # type: ignore[no-untyped-def]
    target = policy.target("call_data.recordings")
    mysql_target = policy.target("call_data.call_records")
    units = [u for t in unit_tenants for u in day_units("recordings", t, first, days)]
    partitions = month_partitions(first.replace(day=1), days // 28 + 1)
    ovr = [TenantOverride(t, "call_data", m) for t, m in overrides.items()]
    holds = [LegalHold(t) for t in held] + [LegalHold(t, "phone_number", "+6590000001") for t in held_subject_tenants]
    as_of_day = local_day(as_of, SGT)

    def keep_months(tenant: str) -> int:
        return max(6, overrides.get(tenant, 0))

    plan = plan_expired(target, as_of, SGT, units, ovr, holds)
    unit_by_name = {u.name: u for u in units}
    for purge in plan.purges:
        sel = purge.selection
        assert sel.tenant not in held and sel.tenant not in held_subject_tenants
        for name in sel.units:
            unit = unit_by_name[name]
            last_day = (unit.end - timedelta(microseconds=1)).astimezone(SGT).date()
            assert not inside_retention(last_day, as_of_day, keep_months(unit.tenant))

    mplan = plan_expired(mysql_target, as_of, SGT, partitions, ovr, holds)
    for purge in mplan.purges:
        sel = purge.selection
        assert isinstance(sel, ExpiredSelection)
        covered = [sel.tenant] if sel.tenant else [t for t in unit_tenants if t not in sel.exclude_tenants]
        for tenant in covered:
            assert tenant not in held
            # The newest record the selection can take is just before `before`.
            newest = (sel.before - timedelta(microseconds=1)).astimezone(SGT).date()
            assert not inside_retention(newest, as_of_day, keep_months(tenant))
        for name in sel.units:
            unit = next(u for u in partitions if u.name == name)
            assert unit.end <= sel.before


@given(
    earlier=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)),
    gap=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)),
)
def test_an_earlier_run_never_deletes_more_than_a_later_one(earlier, gap) -> None:  # type: ignore[no-untyped-def]
    later = earlier + gap
    assert cutoff(earlier, SIX_MONTHS, SGT) <= cutoff(later, SIX_MONTHS, SGT)  # type: ignore[operator]
