"""The coverage check's pure parts: name shapes, flags, value counts, exemptions, classification."""

from __future__ import annotations

import pytest

from include.retention.coverage.classify import (
    classify,
    cos_top_levels,
    es_target,
    mysql_columns,
    mysql_tables,
    redis_target,
    summary,
)
from include.retention.coverage.exemptions import ExemptionsError, load_exemptions, parse_exemptions
from include.retention.coverage.items import (
    Finding,
    Item,
    ValueCounts,
    index_shape,
    name_flags,
    redis_family,
    scrub_name,
)
from include.retention.policy import Policy

PHONE = "+6591234567"
MAIL = "ann.lee@example.test"


@pytest.mark.parametrize("key, family", [
    pytest.param("cc:1600123:queue:vip", "cc:*:queue:*", id="tenant-and-tail"),
    pytest.param("cc:1600123:ivr:menu", "cc:*:ivr:*", id="ivr"),
    pytest.param(f"callback:{PHONE}", "callback:*", id="phone-in-key"),
    pytest.param(f"lead:{MAIL}:x", "lead:*:x", id="mail-in-key"),
    pytest.param("plain", "plain", id="one-segment"),
])
def test_redis_families_carry_no_ids(key: str, family: str) -> None:
    assert redis_family(key) == family


@pytest.mark.parametrize("name, shape", [
    pytest.param("crm-contacts-1600123", "crm-contacts-*", id="tenant"),
    pytest.param("cc-logs-16001-2026.11", "cc-logs-*-*.*", id="month"),
    pytest.param("audit_events", "audit_events", id="plain"),
])
def test_index_shapes(name: str, shape: str) -> None:
    assert index_shape(name) == shape


def test_scrub_replaces_phone_and_mail_shapes() -> None:
    assert scrub_name(f"export-{PHONE}.csv") == "export-{phone}.csv"
    assert scrub_name(f"to/{MAIL}/") == "to/{email}/"


@pytest.mark.parametrize("name, flags", [
    pytest.param("caller_number", ("number", "caller"), id="snake"),
    pytest.param("calleeMsisdn", ("callee", "msisdn"), id="camel"),
    pytest.param("contactEmail", ("email",), id="email"),
    pytest.param("contact", (), id="says-nothing"),
    pytest.param("duration_s", (), id="not-personal"),
])
def test_name_flags(name: str, flags: tuple[str, ...]) -> None:
    assert name_flags(name) == flags


def test_value_counts_count_shapes_only() -> None:
    counts = ValueCounts()
    counts.add_all([PHONE, "6591234567", MAIL, "1600123", None, b"\xff\xfe", f" {PHONE} ", "a@b"])
    assert (counts.sampled, counts.e164, counts.email) == (7, 2, 1)
    fields: set[str] = set()
    doc = ValueCounts()
    doc.add_leaves({"who": {"caller": PHONE, "mails": [MAIL, "x"]}, "n": 3, PHONE: {"x": 1}}, fields)
    assert (doc.e164, doc.email) == (1, 1) and fields == {"who", "caller", "mails", "n", "x", "{phone}"}


def test_what_the_policy_names(policy: Policy) -> None:
    assert mysql_tables(policy)["call_records"] == "call_data.call_records"
    columns = mysql_columns(policy)
    assert columns[("call_records", "customer_number")] == "call_data.call_records"
    assert columns[("call_records", "recording_key")] == "call_data.recordings"  # subject_keys_from
    assert ("call_records", "duration_s") not in columns
    assert redis_target(policy, "cc:1600123:agent:a1:profile") is not None
    assert redis_target(policy, "cc:1600123:queue:vip") is None
    assert set(cos_top_levels(policy)) == {"recordings/", "backups/"}
    assert es_target(policy, "cc-logs-1600123-2026.11") is not None
    assert es_target(policy, "cc-logs-1600123-2026.11-copy") is None


def _items() -> list[Item]:
    return [
        Item("mysql", "table", "call_records", covered_by="call_data.call_records"),
        Item("mysql", "column", "call_records.caller_number"),
        Item("mysql", "table", "crm_callbacks", counts=ValueCounts(10, 10, 0)),
        Item("mysql", "column", "crm_callbacks.contact", counts=ValueCounts(10, 10, 0)),
        Item("mysql", "column", "purge_audit.error"),
        Item("redis", "keys", "cc:*:callback:*"),
        Item("cos", "prefix", "exports/"),
        Item("elasticsearch", "index", "crm-contacts-*", flag_names=("phone",)),
    ]


def test_new_things_are_unknown_and_an_exemption_clears_one() -> None:
    exemptions = parse_exemptions({"exemptions": [
        {"items": ["mysql:table:purge_audit"], "reason": "the ledger", "owner": "data-retention"}]})
    found = {f.id: f for f in classify(_items(), exemptions)}
    assert found["mysql:table:call_records"].status == "covered"
    assert found["mysql:column:purge_audit.error"].status == "exempt"  # through its table
    unknown = {i for i, f in found.items() if f.status == "unknown"}
    assert unknown == {"mysql:column:call_records.caller_number", "mysql:table:crm_callbacks",
                       "mysql:column:crm_callbacks.contact", "redis:keys:cc:*:callback:*", "cos:prefix:exports/",
                       "elasticsearch:index:crm-contacts-*"}
    # a column's flags come from its own name, not its table's
    assert found["mysql:column:call_records.caller_number"].flags == ("caller", "number")
    contact = found["mysql:column:crm_callbacks.contact"]
    assert contact.flags == () and contact.likely_personal  # by its values alone
    assert found["elasticsearch:index:crm-contacts-*"].flags == ("phone",)  # a field name
    cleared = exemptions.plus("cos:prefix:exports/", "reports without personal data", "analytics")
    assert {f.id: f.status for f in classify(_items(), cleared)}["cos:prefix:exports/"] == "exempt"
    assert summary(found.values()) == {"items": 8, "covered": 1, "exempt": 1, "unknown": 6, "likely_personal": 4}


def test_findings_round_trip_through_json() -> None:
    for finding in classify(_items(), parse_exemptions(None)):
        assert Finding.from_json(finding.as_json()) == finding


def test_the_checked_in_exemptions_load_and_each_has_a_reason_and_owner() -> None:
    exemptions = load_exemptions()
    assert exemptions.entries and all(e.reason and e.owner for e in exemptions.entries)
    for table in ("purge_audit", "coverage_items", "schema_migrations", "dag_run", "xcom", "task_instance"):
        assert exemptions.find(f"mysql:table:{table}") is not None, table
    assert exemptions.find("mysql:table:crm_callbacks") is None  # the demo's catch stays unknown


@pytest.mark.parametrize("raw, problem", [
    pytest.param({"exemptions": [{"items": ["mysql:table:x"], "reason": "", "owner": "o"}]}, "reason", id="no-reason"),
    pytest.param({"exemptions": [{"items": ["mysql:table:x"], "reason": "r"}]}, "owner", id="no-owner"),
    pytest.param({"exemptions": [{"items": ["mysql:index:x"], "reason": "r", "owner": "o"}]}, "unknown store",
                 id="bad-kind"),
    pytest.param({"exemptions": [{"items": ["redis:keys:*"], "reason": "r", "owner": "o"}]}, "everything",
                 id="whole-store"),
    pytest.param({"exempt": []}, "top level", id="bad-top"),
])
def test_a_bad_exemptions_file_says_what_to_fix(raw: object, problem: str) -> None:
    with pytest.raises(ExemptionsError, match=problem) as info:
        parse_exemptions(raw, "cov.yaml")
    assert "cov.yaml" in str(info.value) and "Fix:" in str(info.value)


def test_settings_are_bounded_and_the_report_lists_unknown_items_first() -> None:
    from include.retention.coverage.__main__ import format_report
    from include.retention.coverage.run import Settings

    with pytest.raises(ValueError, match="redis_sample_keys"):
        Settings(redis_sample_keys=-1)
    assert Settings.from_params({"mysql_rows": 5, "other": 1}).mysql_rows == 5
    lines = format_report(classify(_items(), parse_exemptions(None)))
    assert lines[0].startswith("coverage: 8 items: 1 covered, 0 exempt, 7 unknown")
    first = " ".join(lines[1:5])  # the four likely personal ones first
    assert all(i in first for i in ("crm_callbacks.contact", "caller_number", "crm-contacts", "table:crm_callbacks"))
    assert any("crm_callbacks  " in line and "phone-shaped 10," in line for line in lines)
    assert not any("call_records " in line and "covered" in line for line in lines)  # --all shows those
