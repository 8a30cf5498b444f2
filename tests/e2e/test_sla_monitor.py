"""The SLA monitor end to end: ``dag.test()`` of ``retention_sla_monitor`` against the ledger,
sending through ``SmtpNotifier`` to a real SMTP server the test starts (aiosmtpd, the ``inbox``
fixture of ``tests/e2e/conftest.py``)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.e2e.conftest import RECIPIENT, Inbox, Stores, load_dag, task_states

pytestmark = [pytest.mark.servers, pytest.mark.slow]

UTC = timezone.utc
PHONE = "+6581239999"


@pytest.fixture(scope="module")
def monitor(airflow_db: Any) -> Any:
    return load_dag("retention_sla_monitor", "retention_sla_monitor")


def open_request(stores: Stores, *, received_days_ago: float, as_of: datetime, state: str = "received") -> Any:
    """An accepted deletion request received that long before ``as_of`` (never run)."""
    from include.retention.ledger.requests import transition
    from include.retention.requests.intake import submit
    from include.retention.crypto import RetentionCrypto
    from include.retention.policy import load_policy

    tenant = stores.new_tenant()
    stores.query("INSERT INTO tenants (tenant_id, name, region, created_at) VALUES (%s, 'SLA test', 'sg', %s)",
                 (tenant, datetime(2025, 1, 1)))
    received = as_of - timedelta(days=received_days_ago)
    conf = {"request_type": "deletion", "tenant_id": tenant, "subject_type": "phone_number", "subject_id": PHONE,
            "reference": f"SLA-{tenant}", "requested_by": "dpo@example.test", "mode": "execute",
            "received_at": received.isoformat()}
    submission = submit(load_policy(), conf, run_after=as_of, run_id="manual__sla_test",
                        crypto=RetentionCrypto.from_connection())
    assert submission.outcome == "new"
    request = submission.request
    if state == "failed":
        request = transition(request.request_id, "failed", run_id="manual__sla_test", error="S3 unreachable",
                                failed_step="call_data.recordings", release=True)
    return request


def test_warning_at_t_minus_7_and_breach_at_t_0_arrive_by_mail(
    monitor: Any, stores: Stores, inbox: Inbox
) -> None:
    from include.retention.policy import load_policy

    tz = load_policy().timezone  # the monitor's days are the policy's calendar days
    as_of = (datetime.now(tz).replace(hour=9, minute=0, second=0, microsecond=0) - timedelta(days=2)).astimezone(UTC)
    warned = open_request(stores, received_days_ago=23, as_of=as_of)
    breached = open_request(stores, received_days_ago=30, as_of=as_of)
    quiet = open_request(stores, received_days_ago=10, as_of=as_of)

    dag_run = monitor.test(logical_date=as_of)

    assert str(dag_run.state) == "success", task_states(dag_run)
    (w_subject, w_body), = inbox.about(warned.request_id)
    assert "warning" in w_subject and "7 day(s) left" in w_subject and "Days left: <b>7</b>" in w_body
    (b_subject, b_body), = inbox.about(breached.request_id)
    assert "BREACH" in b_subject and "due today" in b_subject and "Days left: <b>0</b>" in b_body
    assert inbox.about(quiet.request_id) == []
    assert all(r == [RECIPIENT] for r in inbox.recipients)
    for request in (warned, breached):
        for subject, body in inbox.about(request.request_id):
            text = subject + body
            assert PHONE not in text and request.tenant_id not in text and request.reference not in text
            assert "dpo@example.test" not in text

    # the same day again: nothing is sent twice
    before = len(inbox.messages)
    again = monitor.test(logical_date=as_of + timedelta(hours=1))
    assert str(again.state) == "success", task_states(again)
    assert len(inbox.messages) == before

    # the next day: the breach is repeated, the warning is not
    next_day = monitor.test(logical_date=as_of + timedelta(days=1))
    assert str(next_day.state) == "success", task_states(next_day)
    assert len(inbox.about(warned.request_id)) == 1
    repeated = inbox.about(breached.request_id)
    assert len(repeated) == 2 and "1 day(s) overdue" in repeated[1][0]
    sent = stores.ledger("SELECT kind, days_left FROM request_alerts WHERE request_id = %s ORDER BY alert_day",
                         (breached.request_id,))
    assert sent == [("breach", 0), ("breach", -1)]


def test_failed_requests_are_retriggered_without_their_subject(monitor: Any, stores: Stores, inbox: Inbox) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    from include.retention.ledger.requests import get_request, transition

    as_of = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    failed = open_request(stores, received_days_ago=3, as_of=as_of, state="failed")
    closed = open_request(stores, received_days_ago=40, as_of=as_of)  # completed, window closed 10 days ago
    for state in ("planned", "in_progress", "verifying", "completed"):
        transition(closed.request_id, state, run_id="manual__sla_test", completed_at=as_of - timedelta(days=35))
    assert get_request(closed.request_id).subject_enc  # type: ignore[union-attr]

    dag_run = monitor.test(logical_date=as_of)

    assert str(dag_run.state) == "success", task_states(dag_run)
    run_id = f"sla_retrigger__{failed.request_id}__{as_of.astimezone(UTC):%Y%m%d}"
    with create_session() as session:
        triggered = session.query(DagRun).filter(DagRun.dag_id == "deletion_requests", DagRun.run_id.in_(
            [run_id, f"sla_retrigger__{failed.request_id}__{(as_of + timedelta(hours=8)).astimezone(UTC):%Y%m%d}"]
        )).all()
        assert len(triggered) == 1
        conf = dict(triggered[0].conf)
    assert conf["resume"] is True and conf["reference"] == failed.reference and conf["mode"] == "execute"
    assert "subject_id" not in conf and PHONE not in json.dumps(conf)
    closed_now = get_request(closed.request_id)
    assert closed_now is not None and closed_now.subject_enc is None and closed_now.subject_hash  # forgotten, hash kept
    with create_session() as session:
        assert session.query(DagRun).filter(DagRun.run_id.like(f"sla_retrigger__{closed.request_id}__%")).count() == 0
    # a second sweep the same day does not trigger it again
    again = monitor.test(logical_date=as_of + timedelta(minutes=5))
    assert str(again.state) == "success", task_states(again)
    with create_session() as session:
        count = session.query(DagRun).filter(DagRun.dag_id == "deletion_requests",
                                             DagRun.run_id.like(f"sla_retrigger__{failed.request_id}__%")).count()
    assert count == 1
