"""The audit's 'why' as data: each planned purge names its rule and what it kept out."""

from __future__ import annotations

from datetime import date, datetime, time

from include.retention.expiry import plan_expired, plan_requests
from include.retention.facts import LegalHold, SubjectDeletion, TenantOverride, Termination
from include.retention.policy import load_policy
from include.retention.reasons import describe_rule, describe_withheld
from include.retention.selections import DatedUnit

POLICY = load_policy()
TZ = POLICY.timezone
AS_OF = datetime.combine(date(2026, 12, 1), time.min, tzinfo=TZ)


def test_a_shared_table_names_the_policy_rule_and_each_excluded_tenant_with_its_reason() -> None:
    target = POLICY.target("call_data.call_records")
    overrides = [TenantOverride("2002", "call_data", 12, id=7)]
    holds = [LegalHold("2003", id=4), LegalHold("2004", "phone_number", "+6581234567", id=5)]
    plan = plan_expired(target, AS_OF, TZ, [], overrides, holds)
    shared, extended = plan.purges
    assert shared.rule == {"rule": "policy", "months": 6}
    assert shared.withheld == {
        "tenants": [{"tenant": "2002", "why": "extended", "override_id": 7},
                    {"tenant": "2003", "why": "legal_hold", "hold_ids": [4]}],
        "hold_ids": [5],
    }
    assert extended.rule == {"rule": "extended", "months": 12, "policy_months": 6, "override_id": 7}
    assert extended.withheld == {}
    text = describe_withheld(shared.withheld)
    assert text == ("kept: tenant 2002 (extended, override 7); tenant 2003 (legal hold 4); "
                    "records of subjects on legal hold 5")
    assert "+6581234567" not in text + str(shared.withheld)
    assert describe_rule(extended.rule) == "extended: 12 months (override 7, policy 6)"


def test_per_tenant_units_name_the_tenants_kept_whole() -> None:
    target = POLICY.target("call_data.recordings")
    units = [DatedUnit(f"recordings/{t}/2026/01/01/", datetime(2026, 1, 1, tzinfo=TZ), datetime(2026, 1, 2, tzinfo=TZ), t)
             for t in ("2001", "2003", "2004")]
    holds = [LegalHold("2003", id=4), LegalHold("2004", "agent", "a-1", id=9)]
    (purge,) = plan_expired(target, AS_OF, TZ, units, [], holds).purges
    assert purge.selection.tenant == "2001"
    assert purge.rule == {"rule": "policy", "months": 6}
    assert purge.withheld == {"tenants": [{"tenant": "2003", "why": "legal_hold", "hold_ids": [4]},
                                          {"tenant": "2004", "why": "legal_hold", "hold_ids": [9]}]}


def test_request_sweeps_name_their_request() -> None:
    category = POLICY.category("call_data")
    target = POLICY.target("call_data.call_records")
    window = (datetime(2026, 11, 20, tzinfo=TZ), datetime(2026, 12, 20, tzinfo=TZ))
    terminations = [Termination("2001", *window, frozenset({"call_data"}), request_id="r-term")]
    deletions = [SubjectDeletion("2005", "phone_number", "+6581234567", "h" * 64, *window, frozenset({"call_data"}),
                                 request_id="r-del")]
    holds = [LegalHold("2005", "phone_number", "+6599999999", id=12)]
    term, dele = plan_requests(category, target, AS_OF, terminations, deletions, holds).purges
    assert term.rule == {"rule": "termination", "request_id": "r-term"}
    assert dele.rule == {"rule": "deletion", "request_id": "r-del"} and dele.withheld == {"hold_ids": [12]}
    assert describe_rule(dele.rule) == "deletion: request r-del"
