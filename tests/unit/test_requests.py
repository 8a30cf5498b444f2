"""Requests, certificates and the SLA monitor as pure logic: no server, no Airflow run."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from include.retention import sla
from include.retention.certificates.document import build, sign, verify_document
from include.retention.certificates.render import render_html, render_markdown
from include.retention.ledger.requests import Request
from include.retention.ledger.request_steps import Step
from include.retention.request_states import (
    KIND_EXPIRY,
    KIND_KEYS,
    KIND_PURGE,
    TERMINAL_STATES,
    TRANSITIONS,
    InvalidTransition,
    allowed_from,
    check_transition,
)
from include.retention.requests.steps import backup_days_to_purge, backup_expiry, plan_steps
from include.retention.requests.validation import RequestRejected, ValidRequest, default_categories, validate
from include.retention.timeutil import days_left
from include.retention.crypto import RetentionCrypto
from include.retention.facts import LegalHold
from include.retention.policy import CosTarget, Policy

UTC = timezone.utc
RUN_AFTER = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
KEYS = RetentionCrypto(b"unit-hash-key", b"unit-encryption-key", b"unit-certificate-key")
PHONE = "+6581234567"


def check(policy: Policy, conf: dict[str, Any], *, tenants: set[str] = frozenset({"1600123"}),  # type: ignore[assignment]
          holds: list[LegalHold] | None = None) -> ValidRequest:
    return validate(policy, conf, run_after=RUN_AFTER, tenant_exists=lambda t: t in tenants,
                       active_holds=lambda t: holds or [], subject_hash=KEYS.subject_hash)


def deletion(**values: Any) -> dict[str, Any]:
    conf = {"request_type": "deletion", "tenant_id": "1600123", "subject_type": "phone_number", "subject_id": PHONE,
            "reference": "TKT-1", "requested_by": "dpo@example.test", "mode": "execute"}
    conf.update(values)
    return conf


def hold(hold_id: int, *, subject: tuple[str, str] | None = None) -> LegalHold:
    return LegalHold(id=hold_id, tenant_id="1600123", subject_type=subject[0] if subject else None,
                     subject_hash=KEYS.subject_hash("1600123", *subject) if subject else None, subject_enc=None,
                     reason="litigation", placed_by="legal", placed_at=RUN_AFTER, released_at=None)


# --------------------------------------------------------------------------- validation


def test_a_valid_deletion(policy: Policy) -> None:
    valid = check(policy, deletion())
    assert valid.categories == ("log_data", "call_data", "call_analytics")  # agent_info holds no phone numbers
    assert valid.received_at == RUN_AFTER and valid.due_at == RUN_AFTER + timedelta(days=30)
    assert PHONE not in repr(valid)


def test_a_termination_defaults_to_every_category(policy: Policy) -> None:
    valid = check(policy, deletion(request_type="termination", subject_type=None, subject_id=None))
    assert valid.categories == tuple(policy.categories) and valid.subject_id is None


def test_received_at_given_in_any_zone_is_kept_in_utc(policy: Policy) -> None:
    valid = check(policy, deletion(received_at="2026-11-20T09:30:00+08:00"))
    assert valid.received_at == datetime(2026, 11, 20, 1, 30, tzinfo=UTC) and valid.received_at_given
    assert valid.due_at == datetime(2026, 12, 20, 1, 30, tzinfo=UTC)


# Refusals of single fields: the hostile-input catalogue (docs/RELIABILITY.md, tests/unit/test_hostile_input.py).


def test_every_problem_is_reported_at_once(policy: Policy) -> None:
    with pytest.raises(RequestRejected) as raised:
        check(policy, deletion(tenant_id="1*", subject_id="*", reference=""))
    assert len(raised.value.problems) == 3


def test_legal_holds_refuse_what_they_cover(policy: Policy) -> None:
    with pytest.raises(RequestRejected, match="legal hold #7 is active on this subject"):
        check(policy, deletion(), holds=[hold(7, subject=("phone_number", PHONE))])
    with pytest.raises(RequestRejected, match="legal hold #8 is active on the tenant"):
        check(policy, deletion(), holds=[hold(8)])
    with pytest.raises(RequestRejected, match="a termination would delete held data"):
        check(policy, deletion(request_type="termination", subject_type=None, subject_id=None),
              holds=[hold(9, subject=("agent", "a1"))])
    # a hold on someone else does not stop this subject's deletion
    assert check(policy, deletion(), holds=[hold(10, subject=("phone_number", "+6581234568"))])


# --------------------------------------------------------------------------- steps


def test_termination_has_one_step_per_target(policy: Policy) -> None:
    steps, notes = plan_steps(policy, "termination", "1600123", None, policy.categories)
    assert [s.qualified_name for s in steps] == [t.qualified_name for t in policy.targets]
    assert {s.kind for s in steps} == {KIND_PURGE} and not notes
    assert all("1600123" in s.location for s in steps)


def test_agent_deletion_steps(policy: Policy) -> None:
    steps, notes = plan_steps(policy, "deletion", "1600123", "agent", default_categories(policy, "deletion", "agent"))
    kinds = {s.qualified_name: s.kind for s in steps}
    assert kinds["call_data.recordings"] == KIND_KEYS
    assert kinds["agent_info.agent_info_backups"] == KIND_EXPIRY
    assert kinds["agent_info.agent_state"] == kinds["agent_info.administrators"] == KIND_PURGE
    assert not any(s.category == "configuration" for s in steps) and not notes
    recordings = next(s for s in steps if s.target == "recordings")
    assert (recordings.source, recordings.column) == ("call_records", "recording_key")


def test_phone_number_deletion_skips_what_no_phone_number_addresses(policy: Policy) -> None:
    steps, notes = plan_steps(policy, "deletion", "1600123", "phone_number",
                              default_categories(policy, "deletion", "phone_number"))
    assert not any(s.store == "redis" for s in steps)
    assert not any(s.qualified_name == "call_analytics.call_metrics" for s in steps)
    assert "call_analytics.call_metrics holds no data addressed by phone_number" in notes
    for s in steps:
        assert PHONE not in s.location


# --------------------------------------------------------------------------- state machine


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(["received", "planned", "in_progress", "verifying", "completed"], id="happy-path"),
        pytest.param(["received", "planned", "in_progress", "failed", "planned", "in_progress", "verifying",
                      "completed"], id="failed-then-retried"),
        pytest.param(["received", "planned", "planned"], id="preview-planned-again"),
        pytest.param(["received", "rejected"], id="rejected"),
        pytest.param(["verifying", "failed", "in_progress", "verifying", "completed"], id="certificate-retry"),
    ],
)
def test_allowed_paths(path: list[str]) -> None:
    for a, b in zip(path, path[1:]):
        check_transition(a, b)


@pytest.mark.parametrize(
    "a, b",
    [("completed", "planned"), ("completed", "failed"), ("rejected", "planned"), ("received", "completed"),
     ("planned", "completed"), ("in_progress", "completed"), ("failed", "completed"), ("planned", "rejected")],
)
def test_forbidden_transitions(a: str, b: str) -> None:
    with pytest.raises(InvalidTransition):
        check_transition(a, b)


def test_terminal_states_lead_nowhere() -> None:
    assert all(not TRANSITIONS[s] for s in TERMINAL_STATES)
    assert allowed_from("completed") == {"verifying"}


# --------------------------------------------------------------------------- backups


def backups(policy: Policy) -> CosTarget:
    target = policy.target("agent_info.agent_info_backups")
    assert isinstance(target, CosTarget)
    return target


def test_a_backup_expires_when_the_daily_purge_deletes_its_day(policy: Policy) -> None:
    from include.retention.expiry import cutoff
    from include.retention.timeutil import day_span

    tz, target = policy.timezone, backups(policy)
    day = date(2026, 11, 28)
    expiry = backup_expiry(target, day, tz)
    assert expiry == datetime(2026, 12, 27, tzinfo=tz)  # 28 days after the day ends
    _, end = day_span(day, tz)
    assert end <= cutoff(expiry, target.retention, tz)  # the run at expiry deletes it
    assert not end <= cutoff(expiry - timedelta(days=1), target.retention, tz)  # the run before does not


def test_backups_outliving_the_due_date_are_the_latest_days(policy: Policy) -> None:
    tz, target = policy.timezone, backups(policy)
    received = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    due = received + timedelta(days=30)
    assert backup_days_to_purge(target, date(2026, 11, 1), due, tz) == []  # carried out on day one
    late = backup_days_to_purge(target, date(2026, 11, 10), due, tz)  # carried out nine days late
    assert late and late[-1] == date(2026, 11, 10) and late == sorted(late)
    assert backup_expiry(target, late[0] - timedelta(days=1), tz) <= due < backup_expiry(target, late[0], tz)


def test_days_left_rounds_up() -> None:
    due = datetime(2026, 12, 28, 6, tzinfo=UTC)
    assert days_left(due, due - timedelta(days=7)) == 7
    assert days_left(due, due - timedelta(days=6, hours=12)) == 7
    assert days_left(due, due) == 0
    assert days_left(due, due + timedelta(days=1)) == -1


# --------------------------------------------------------------------------- SLA


def request(**values: Any) -> Request:
    base = Request(
        request_id="DEL-20261101-00000001", reference="TKT-9", request_type="deletion", tenant_id="1600123",
        subject_type="phone_number", subject_hash="ab" * 32, subject_enc="token", categories=("call_data",),
        received_at=RUN_AFTER - timedelta(days=23), due_at=RUN_AFTER + timedelta(days=7), state="in_progress",
        requested_by="dpo", mode="execute", error=None, created_at=RUN_AFTER, updated_at=RUN_AFTER,
        completed_at=None, run_id="manual__x", lease_until=RUN_AFTER + timedelta(hours=6), attempts=1,
        failed_step=None,
    )
    return replace(base, **values)


def classify(*requests: Request, as_of: datetime = RUN_AFTER) -> sla.SweepPlan:
    return sla.classify(requests, as_of, warning_days=7, tz=UTC)


def test_warning_at_t_minus_7_and_breach_at_t_0() -> None:
    plan = classify(request(), request(request_id="R-30", due_at=RUN_AFTER))
    assert [(a.request_id, a.kind, a.days_left) for a in plan.alerts] == [
        ("DEL-20261101-00000001", "warning", 7), ("R-30", "breach", 0)]
    assert classify(request(due_at=RUN_AFTER + timedelta(days=7, seconds=1))).alerts == ()


def test_finished_and_preview_requests_are_not_watched() -> None:
    plan = classify(request(state="completed"), request(state="rejected"), request(mode="preview"))
    assert plan.alerts == () and plan.retriggers == () and plan.open_requests == 0


def test_breach_repeats_daily_warning_once() -> None:
    day = date(2026, 11, 28)
    alerts = [sla.Alert("A", "warning", 6), sla.Alert("B", "breach", -1)]
    sent = {("A", "warning", day - timedelta(days=1)), ("B", "breach", day - timedelta(days=1))}
    assert sla.due_alerts(alerts, day, sent) == [sla.Alert("B", "breach", -1)]
    assert sla.due_alerts(alerts, day, sent | {("B", "breach", day)}) == []


def test_failed_and_stalled_requests_are_retriggered_without_their_subject() -> None:
    plan = classify(
        request(request_id="F", state="failed", lease_until=None),
        request(request_id="F-running", state="failed"),  # its run still holds it (retrying)
        request(request_id="S", state="in_progress", lease_until=RUN_AFTER - timedelta(minutes=1)),
        request(request_id="OK", state="in_progress"),
    )
    assert {(r.request_id, r.reason) for r in plan.retriggers} == {("F", "failed"), ("S", "stalled")}
    for r in plan.retriggers:
        assert r.conf["resume"] is True and "subject_id" not in r.conf and r.conf["mode"] == "execute"
        assert r.trigger_run_id == f"sla_retrigger__{r.request_id}__20261128"


def test_alert_mails_carry_the_request_id_and_days_left_only() -> None:
    for alert in (sla.Alert("DEL-1", "warning", 7), sla.Alert("DEL-1", "breach", -2)):
        text = alert.subject + alert.html
        assert "DEL-1" in text and str(alert.days_left) in text
        assert "1600123" not in text and PHONE not in text and "TKT" not in text


# --------------------------------------------------------------------------- certificates


def step(name: str, store: str, kind: str = KIND_PURGE, deleted: int = 3, **values: Any) -> Step:
    category, _, target = name.partition(".")
    return Step(request_id="DEL-1", category=category, target=target, store=store, kind=kind, state="verified",
                   planned=deleted, deleted=deleted, verified_remaining=0, run_id="manual__a", error=None,
                   updated_at=RUN_AFTER, verified_at=RUN_AFTER, location=f"somewhere in {store}", method="m",
                   attempts=1, details=values)


def certificate(policy: Policy) -> dict[str, Any]:
    req = request(request_id="DEL-1", state="verifying", subject_type="agent", due_at=RUN_AFTER + timedelta(days=30),
                  subject_hash=KEYS.subject_hash("1600123", "agent", "a1"))
    steps = [step("call_data.call_records", "mysql"), step("call_data.recordings", "cos", KIND_KEYS, 2),
             step("call_data.call_data_backups", "cos", KIND_EXPIRY, 0,
                  backups_expire_by=(RUN_AFTER + timedelta(days=29)).isoformat())]
    body = build(policy, req, steps, [], verified_at=RUN_AFTER, issued_at=RUN_AFTER)
    return sign(body, KEYS)


def test_a_certificate_verifies_and_any_edit_breaks_it(policy: Policy) -> None:
    doc = certificate(policy)
    assert verify_document(doc, KEYS).ok
    assert doc["certificate"]["outcome"]["records_deleted"] == 5
    assert doc["certificate"]["backups"]["expire_before_due"] is True
    for path, value in ((("outcome", "records_deleted"), 4), (("request", "tenant_id"), "1600124")):
        forged = json.loads(json.dumps(doc))
        forged["certificate"][path[0]][path[1]] = value
        assert not verify_document(forged, KEYS).ok
    late = json.loads(json.dumps(doc))
    late["certificate"]["backups"]["expire_before_due"] = False
    late["signature"] = sign(late["certificate"], KEYS)["signature"]
    assert "backups outlive the due date" in str(verify_document(late, KEYS))
    other = RetentionCrypto(b"x", b"y", b"another-certificate-key")
    result = verify_document(doc, other)
    assert not result.ok and "another key" in str(result)


def test_the_signature_is_an_hmac_of_the_canonical_json(policy: Policy) -> None:
    import hashlib
    import hmac

    doc = certificate(policy)
    canonical = json.dumps(doc["certificate"], sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    assert doc["signature"]["value"] == hmac.new(KEYS.certificate_key, canonical, hashlib.sha256).hexdigest()


def test_renderings_hold_no_raw_subject(policy: Policy) -> None:
    doc = certificate(policy)
    text = render_markdown(doc) + render_html(doc) + json.dumps(doc)
    assert "keyed hash" in text and '"a1"' not in text and "subject_id" not in text
    assert "| call_data.recordings | cos |" in render_markdown(doc)
