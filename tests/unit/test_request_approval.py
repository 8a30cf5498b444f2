"""The request side of the four-eyes approval: the policy key, what the approver is shown, the certificate line."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from include.retention.certificates.render import render_html, render_markdown
from include.retention.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy, parse_policy
from include.retention.request_states import OPEN_STATES, SWEPT_STATES, TRANSITIONS, allowed_from
from include.retention.requests.approval import build_ask, counts_by_category

RAW = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
SUBJECT_HASH = "ab" * 32


def with_approval(value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(RAW)
    raw["request_approval"] = value
    return raw


def test_the_packaged_policy_asks_for_terminations_only() -> None:
    approval = load_policy(DEFAULT_POLICY_PATH).request_approval
    assert approval.required("termination") and not approval.required("deletion")
    assert approval.timeout_minutes == 240 and approval.approvers == ()


def test_without_the_key_terminations_still_need_an_approval() -> None:
    raw = copy.deepcopy(RAW)
    raw.pop("request_approval", None)
    assert parse_policy(raw).request_approval.required_for == ("termination",)


@pytest.mark.parametrize(("value", "rule", "says"), [
    pytest.param({"required_for": ["erasure"]}, "request_approval.required_for", "unknown request type", id="type"),
    pytest.param({"required_for": "termination"}, "request_approval.required_for", "unknown request type",
                 id="not-a-list"),
    pytest.param({"timeout_minutes": 0}, "request_approval.timeout_minutes", "positive", id="zero-timeout"),
    pytest.param({"timeout_minutes": 301}, "request_approval.timeout_minutes", "absurdly long", id="past-the-run"),
    pytest.param({"approvers": ["bob", ""]}, "request_approval.approvers", "user names", id="empty-name"),
    pytest.param({"needs": []}, "request_approval", "unknown field", id="unknown-field"),
    pytest.param(["termination"], "request_approval", "expected a mapping", id="not-a-mapping"),
])
def test_a_wrong_approval_rule_is_refused_with_the_fix(value: Any, rule: str, says: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(with_approval(value))
    assert caught.value.rule == rule and says in caught.value.problem and caught.value.fix


def test_approvers_and_types_are_read() -> None:
    approval = parse_policy(with_approval({"required_for": ["termination", "deletion"], "timeout_minutes": 30,
                                           "approvers": [" bob ", "carol"]})).request_approval
    assert approval.required("deletion") and approval.timeout_minutes == 30 and approval.approvers == ("bob", "carol")


def test_a_request_waiting_for_approval_is_open_and_its_window_is_swept() -> None:
    assert "awaiting_approval" in OPEN_STATES and "awaiting_approval" in SWEPT_STATES
    assert TRANSITIONS["planned"] >= {"awaiting_approval"}
    assert TRANSITIONS["awaiting_approval"] >= {"planned", "rejected", "failed"}
    assert "in_progress" not in TRANSITIONS["awaiting_approval"]  # no purge before an answer
    assert allowed_from("rejected") == {"received", "awaiting_approval"}


PLAN = {
    "request_id": "DEL-20261202-0a1b2c3d", "mode": "execute", "request_type": "deletion", "tenant_id": "1600123",
    "subject_type": "phone_number", "subject_hash": SUBJECT_HASH, "due_at": "2027-01-01T02:00:00+00:00",
    "steps": [
        {"step": "call_data.call_records", "store": "mysql", "planned": 7},
        {"step": "call_data.recordings", "store": "cos", "planned": 2},
        {"step": "call_data.call_data_backups", "store": "cos", "planned": None},
        {"step": "log_data.cc_logs", "store": "elasticsearch", "planned": 5},
        {"step": "agent_info.agents", "store": "mysql", "planned": None, "skipped": "verified earlier"},
    ],
}


def test_counts_add_up_per_category_and_say_what_is_uncounted() -> None:
    counts = counts_by_category(PLAN)
    assert counts["call_data"] == {"records": 9, "stores": ["mysql", "cos"], "unknown": 1}
    assert counts["log_data"]["records"] == 5 and counts["agent_info"]["records"] == 0


def test_the_approver_sees_tenant_and_counts_and_no_personal_data() -> None:
    ask = build_ask(load_policy(DEFAULT_POLICY_PATH), PLAN, "alice")
    assert ask.scope == "request:DEL-20261202-0a1b2c3d"
    assert ask.subject == "Approve the deletion of one phone_number of tenant 1600123? 14 record(s)"
    assert "- **Tenant:** 1600123" in ask.body and f"keyed hash {SUBJECT_HASH}" in ask.body
    assert "| call_data | mysql, cos | 9 + 1 uncounted |" in ask.body and "| log_data | elasticsearch | 5 |" in ask.body
    assert "- **Due:** 2027-01-01 10:00 (Asia/Singapore)" in ask.body
    assert "another Airflow user than alice" in ask.body
    assert "+65" not in ask.body and "subject_id" not in ask.body
    assert ask.details["records"] == {"call_data": 9, "log_data": 5, "agent_info": 0} and ask.details["total"] == 14


def test_a_termination_is_asked_about_by_tenant() -> None:
    termination = {**PLAN, "request_type": "termination", "subject_type": None, "subject_hash": None,
                   "request_id": "TRM-20261202-0a1b2c3d"}
    ask = build_ask(load_policy(DEFAULT_POLICY_PATH), termination, None)
    assert ask.subject.startswith("Approve the termination of tenant 1600123?")
    assert "Subject" not in ask.body and "the one who triggered the run" in ask.body


def test_the_certificate_names_the_approver() -> None:
    at = datetime(2026, 12, 2, 8, 30, tzinfo=UTC).isoformat().replace("+00:00", "Z")
    doc = {
        "certificate": {
            "certificate_id": "CERT-TRM-1",
            "request": {"request_id": "TRM-1", "request_type": "termination", "reference": "T-1",
                        "requested_by": "dpo", "tenant_id": "1600123", "subject": None, "categories": ["log_data"],
                        "received_at": at, "due_at": at},
            "outcome": {"completed_at": at, "within_window": True, "records_deleted": 0, "records_remaining": 0},
            "approval": {"approved_by": "bob", "approved_at": at, "triggered_by": "alice", "reason": "ticket 42",
                         "run_id": "manual__1"},
            "deletions": [], "backups": {"statement": "none"}, "runs": [],
            "audit": {"rows": 0, "table": "purge_audit", "deleted": 0, "failed": 0},
            "late_data": {"statement": "s", "swept_until": at}, "verification": {"method": "m", "verified_at": at},
            "issued_at": at, "policy": {"version": 1, "sha256": "0" * 64},
        },
        "signature": {"algorithm": "HMAC-SHA256", "key_id": "k", "value": "v"},
    }
    line = "approved by bob at 2026-12-02T08:30:00Z (the run was triggered by alice): ticket 42"
    assert f"- **Approved:** {line}" in render_markdown(doc)
    assert f"<dt>Approved</dt><dd>{line}</dd>" in render_html(doc)
    del doc["certificate"]["approval"]
    assert "Approved" not in render_markdown(doc) + render_html(doc)
