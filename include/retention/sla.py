"""The SLA monitor's logic: which open requests get a warning, a breach alert, a re-trigger.

A request is *open* when it was accepted for execution and is not finished (``received``,
``planned``, ``awaiting_approval``, ``in_progress``, ``verifying`` or ``failed``): its 30 days
run on while it waits for an approval. Each daily monitor run, as of its own instant:

- **warning** once, when the due date is ``sla_warning_days`` (7) days away or less;
- **breach** when the due date has passed (T-0), and again every day after, until the
  request completes;
- **re-trigger** of a ``failed`` request whose run is over, and of a *stalled* one: a request
  whose run's lease has ended (the run is gone) but which never reached an end state.

E-mails go through Airflow's ``SmtpNotifier`` on the ``retention_smtp`` connection to the
address in the ``RETENTION_SLA_EMAIL`` environment variable or the ``retention_sla_email``
Airflow Variable, read at run time. They carry the request id and the days left, nothing
else: no tenant, reference, subject or requester.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, Iterable, Mapping, Sequence

from include.retention.ledger.requests import Request
from include.retention.request_states import OPEN_STATES
from include.retention.timeutil import days_left, local_day

log = logging.getLogger(__name__)

SMTP_CONN_ID = "retention_smtp"
EMAIL_ENV = "RETENTION_SLA_EMAIL"
EMAIL_VARIABLE = "retention_sla_email"
FROM_ENV = "RETENTION_SLA_FROM"
DEFAULT_FROM = "retention-sla@localhost"
RETRIGGER_BY = "retention_sla_monitor"
DEFAULT_STALL_AFTER = timedelta(hours=6)


@dataclass(frozen=True)
class Alert:
    """One e-mail to send: ``warning`` (T-7), ``breach`` (T-0 and every day after), or ``approval``
    (a request's approval step got no answer in time; sent by the request run itself)."""

    request_id: str
    kind: str
    days_left: int

    @property
    def subject(self) -> str:
        if self.kind == "copies":
            return f"[retention SLA] request {self.request_id}: a derived copy outlives its due date"
        if self.kind == "approval":
            return f"[retention SLA] request {self.request_id} was not approved in time ({self.days_left} day(s) left)"
        if self.kind == "breach":
            late = -self.days_left
            when = "is due today" if late <= 0 else f"is {late} day(s) overdue"
            return f"[retention SLA] BREACH: request {self.request_id} {when}"
        return f"[retention SLA] warning: request {self.request_id} has {self.days_left} day(s) left"

    @property
    def html(self) -> str:
        headline = {"breach": "The 30-day window of this request has ended and it is not complete.",
                    "approval": "Nobody approved this request in time: its run failed and nothing was deleted. "
                                "Another Airflow user than the one who triggered it must approve its next run.",
                    "copies": "This request is complete, but its certificate states a derived copy (a binary log, "
                              "a snapshot) that may outlive its due date. See the certificate's derived copies.",
                    }.get(self.kind, "This request is not complete and its due date is near.")
        return (
            f"<p>{headline}</p>"
            f"<p>Request: <b>{self.request_id}</b><br>Days left: <b>{self.days_left}</b></p>"
            "<p>Open the deletion_requests DAG runs of this request in Airflow to see its state and failing step.</p>"
        )


@dataclass(frozen=True)
class Retrigger:
    """A request to run again: ``failed`` (its run ended) or ``stalled`` (its run is gone)."""

    request_id: str
    reason: str
    conf: Mapping[str, Any]
    trigger_run_id: str


@dataclass(frozen=True)
class SweepPlan:
    alerts: tuple[Alert, ...]
    retriggers: tuple[Retrigger, ...]
    open_requests: int


def retrigger_conf(request: Request) -> dict[str, Any]:
    """The conf that resumes a request from the ledger; it carries no subject id."""
    return {
        "resume": True,
        "reference": request.reference,
        "request_type": request.request_type,
        "tenant_id": request.tenant_id,
        "requested_by": RETRIGGER_BY,
        "mode": "execute",
    }


def is_stalled(request: Request, as_of: datetime, stall_after: timedelta = DEFAULT_STALL_AFTER) -> bool:
    """Unfinished, and no run holds it any more (its lease ended, or it never had one for long)."""
    if request.state in ("failed", "completed", "rejected"):
        return False
    if request.lease_until is not None:
        return request.lease_until <= as_of
    return request.updated_at <= as_of - stall_after


def classify(
    requests: Iterable[Request],
    as_of: datetime,
    *,
    warning_days: int,
    tz: tzinfo,
    stall_after: timedelta = DEFAULT_STALL_AFTER,
) -> SweepPlan:
    """What the monitor owes each open request as of ``as_of``. Pure: no clock, no I/O."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    alerts: list[Alert] = []
    retriggers: list[Retrigger] = []
    count = 0
    day = local_day(as_of, tz)
    for request in requests:
        if request.mode != "execute" or request.state not in OPEN_STATES:
            continue
        count += 1
        left = days_left(request.due_at, as_of)
        remaining = request.due_at - as_of
        if remaining <= timedelta(0):
            alerts.append(Alert(request.request_id, "breach", left))
        elif remaining <= timedelta(days=warning_days):
            alerts.append(Alert(request.request_id, "warning", left))
        reason = None
        if request.state == "failed" and (request.lease_until is None or request.lease_until <= as_of):
            reason = "failed"
        elif is_stalled(request, as_of, stall_after):
            reason = "stalled"
        if reason:
            retriggers.append(Retrigger(request.request_id, reason, retrigger_conf(request),
                                        f"sla_retrigger__{request.request_id}__{day:%Y%m%d}"))
    return SweepPlan(tuple(alerts), tuple(retriggers), count)


# --------------------------------------------------------------------------- which alerts are due


def due_alerts(alerts: Sequence[Alert], day: date, sent: set[tuple[str, str, date]]) -> list[Alert]:
    """Alerts not sent yet: a warning once per request, a breach once per request per day."""
    once = {(r, k) for r, k, _ in sent if k in ("warning", "copies")}
    out = []
    for alert in alerts:
        if alert.kind in ("warning", "copies") and (alert.request_id, alert.kind) in once:
            continue
        if alert.kind == "breach" and (alert.request_id, "breach", day) in sent:
            continue
        out.append(alert)
    return out


def copies_alerts(certificates: Iterable[tuple[str, Mapping[str, Any]]], as_of: datetime) -> list[Alert]:
    """A ``copies`` alert (sent once) for each signed certificate, by request id, whose derived
    copies outlive its due date (``certificate.derived_copies.outlive_due``). Pure."""
    out = []
    for request_id, document in certificates:
        body = document.get("certificate") or {}
        copies = body.get("derived_copies") or {}
        if copies.get("outlive_due") is True:
            due = datetime.fromisoformat(str(copies.get("due_at") or body["request"]["due_at"]).replace("Z", "+00:00"))
            out.append(Alert(request_id, "copies", days_left(due, as_of)))
    return out


# --------------------------------------------------------------------------- e-mail


def recipient() -> str:
    """The SLA address: ``$RETENTION_SLA_EMAIL``, else the ``retention_sla_email`` Variable."""
    address = os.environ.get(EMAIL_ENV, "").strip()
    if not address:
        from airflow.sdk import Variable

        address = str(Variable.get(EMAIL_VARIABLE, default="") or "").strip()
    if not address:
        raise ValueError(f"no SLA address: set the Airflow Variable {EMAIL_VARIABLE} or ${EMAIL_ENV}")
    return address


def send(alert: Alert, context: Mapping[str, Any], *, to: str, smtp_conn_id: str = SMTP_CONN_ID) -> None:
    """Send one alert through Airflow's SmtpNotifier."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    from airflow.sdk import BaseHook

    sender = os.environ.get(FROM_ENV) or BaseHook.get_connection(smtp_conn_id).extra_dejson.get("from_email")
    notifier = SmtpNotifier(
        to=to,
        from_email=sender or DEFAULT_FROM,
        subject=alert.subject,
        html_content=alert.html,
        smtp_conn_id=smtp_conn_id,
    )
    notifier.notify(dict(context))  # type: ignore[arg-type]
    log.info("Sent SLA %s for request %s (%d day(s) left)", alert.kind, alert.request_id, alert.days_left)
