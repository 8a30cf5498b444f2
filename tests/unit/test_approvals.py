"""The pure parts of an approval: the body, the four-eyes rule, reading an answer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from include.retention.approvals import (
    APPROVED, REFUSED, REJECTED, TIMED_OUT, Decision, approval_body, clean_reason, decide, four_eyes_refusal,
)

OPTIONS = ("Approve", "Reject")
AT = datetime(2026, 12, 2, 8, 30, tzinfo=UTC)


def test_the_body_lists_the_facts_and_a_table_of_counts() -> None:
    body = approval_body([("Tenant", "2003"), ("Request", "TRM-1")], ("category", "records"),
                         [("call_data", 12), ("log_data", 3)], note="Nothing is deleted before you approve.")
    assert body.splitlines() == [
        "- **Tenant:** 2003", "- **Request:** TRM-1", "",
        "| category | records |", "|---|---|", "| call_data | 12 |", "| log_data | 3 |", "",
        "Nothing is deleted before you approve.",
    ]


def test_a_cell_cannot_break_the_table() -> None:
    body = approval_body([], ("a",), [("x|y\nz",)])
    assert body.splitlines()[-1] == "| x\\|y z |"


@pytest.mark.parametrize(("responder", "triggered_by", "refused"), [
    pytest.param({"id": "bob", "name": "bob"}, "alice", False, id="another-user"),
    pytest.param({"id": "alice", "name": "alice"}, "alice", True, id="self"),
    pytest.param({"id": "ALICE", "name": "Alice"}, "alice", True, id="self-other-case"),
    pytest.param({"id": "7", "name": "alice"}, "alice", True, id="same-name-other-id"),
    pytest.param({"id": "bob", "name": "bob"}, None, False, id="no-triggering-user"),
    pytest.param(None, "alice", True, id="no-responder"),
])
def test_nobody_approves_a_run_they_triggered(responder: dict[str, str] | None, triggered_by: str | None,
                                              refused: bool) -> None:
    reason = four_eyes_refusal(responder, triggered_by)
    assert (reason is not None) is refused
    if refused and responder:
        assert "cannot approve" in str(reason) and "another Airflow user" in str(reason)


def _event(chosen: list[str], user: str | None, reason: str = "") -> dict[str, object]:
    return {"chosen_options": chosen, "params_input": {"reason": reason}, "responded_at": AT,
            "responded_by_user": {"id": user, "name": user} if user else None, "timedout": user is None}


@pytest.mark.parametrize(("event", "outcome", "approved"), [
    pytest.param(_event(["Approve"], "bob", "ticket 42"), APPROVED, True, id="approved"),
    pytest.param(_event(["Reject"], "bob"), REJECTED, False, id="rejected"),
    pytest.param(_event(["Approve"], "alice"), REFUSED, False, id="self-approval"),
    pytest.param(_event(["Reject"], "alice"), REFUSED, False, id="self-rejection"),
    pytest.param({"error": "late", "error_type": "timeout"}, TIMED_OUT, False, id="timeout"),
])
def test_an_answer_becomes_a_decision(event: dict[str, object], outcome: str, approved: bool) -> None:
    decision = decide(event, "alice", OPTIONS)
    assert (decision.outcome, decision.approved) == (outcome, approved)
    if outcome == APPROVED:
        assert (decision.responded_by, decision.responded_at, decision.reason) == ("bob", AT, "ticket 42")
    if outcome == REFUSED:
        assert "alice triggered this run and cannot approve it" in str(decision.reason)


def test_an_answer_outside_the_options_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="expected 'Approve' or 'Reject'"):
        decide(_event(["Maybe"], "bob"), "alice", OPTIONS)


def test_the_reason_is_one_bounded_line() -> None:
    assert clean_reason({"reason": "  two\nlines  "}) == "two lines"
    assert clean_reason({"reason": ""}) is None and clean_reason(None) is None
    assert len(clean_reason({"reason": "x" * 900}) or "") == 500


def test_the_message_says_who_and_what_happened() -> None:
    scope = "request:TRM-1"
    assert Decision(APPROVED, "alice", "bob", AT, "ok").message(scope) == (
        "request:TRM-1 approved by bob at 2026-12-02T08:30:00+00:00: ok")
    assert Decision(REJECTED, "alice", "bob", AT).message(scope).endswith("nothing was deleted")


def test_who_triggered_an_earlier_run_of_the_scope_cannot_approve_a_later_one() -> None:
    """The SLA monitor's re-trigger runs as no user: the first run's trigger still counts."""
    reason = four_eyes_refusal({"id": "alice", "name": "alice"}, None, earlier=["Alice"])
    assert reason and "triggered an earlier run" in reason
    assert four_eyes_refusal({"id": "bob", "name": "bob"}, None, earlier=["alice"]) is None
    decision = decide(_event(["Approve"], "alice"), None, OPTIONS, earlier=["alice"])
    assert decision.outcome == REFUSED
