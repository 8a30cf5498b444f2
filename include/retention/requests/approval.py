"""Four eyes on a request: what the ``approve`` task of ``deletion_requests`` asks, and what each answer does.

The step sits between ``plan`` and the first ``purge_<store>``. It asks only for an
``execute`` request whose type the policy's ``request_approval.required_for`` names (by
default terminations), and only once per request: an approval in the ledger stands for the
request, so a resumed run (the SLA monitor's, or the same reference again) goes ahead.

- asked: the request is ``awaiting_approval``; its 30 days keep running (the SLA monitor counts it open);
- approved by another Airflow user: back to ``planned``, with who, when and why in its events; the purges run;
- rejected: ``rejected`` with the reason, the lease released; nothing was deleted and the reference is spent;
- refused (the user who triggered the run answered) or no answer in time: ``failed`` with the reason
  and ``failed_step = approve``; nothing was deleted, and the next run of the request asks again.
  A timeout also e-mails the SLA address.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta
from typing import Any, Mapping

from include.retention.approvals import (
    APPROVED, REJECTED, TIMED_OUT, ApprovalAsk, ConditionalApproval, Decision, approval_body, triggering_user,
)
from include.retention.ledger.approvals import approval_of, request_scope
from include.retention.ledger.requests import get_request, record_event, transition
from include.retention.policy import Policy
from include.retention.timeutil import days_left

log = logging.getLogger(__name__)

APPROVE_TASK_ID = "approve"


def counts_by_category(the_plan: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Records each category's steps would delete (steps verified earlier count as done) and their stores."""
    out: dict[str, dict[str, Any]] = {}
    for step in the_plan.get("steps") or []:
        category = str(step["step"]).split(".", 1)[0]
        row = out.setdefault(category, {"records": 0, "stores": [], "unknown": 0})
        if step.get("store") and step["store"] not in row["stores"]:
            row["stores"].append(step["store"])
        if "skipped" in step:
            continue
        if step.get("planned") is None:
            row["unknown"] += 1
        else:
            row["records"] += int(step["planned"])
    return out


def build_ask(policy: Policy, the_plan: Mapping[str, Any], triggered_by: str | None) -> ApprovalAsk:
    """Subject and Markdown body for the approver: the tenant and the counts per category. Pure.

    A deletion's subject appears only as its keyed hash.
    """
    request_type, tenant = str(the_plan["request_type"]), str(the_plan["tenant_id"])
    counts = counts_by_category(the_plan)
    total = sum(c["records"] for c in counts.values())
    what = (f"the termination of tenant {tenant}" if request_type == "termination"
            else f"the deletion of one {the_plan.get('subject_type')} of tenant {tenant}")
    facts: list[tuple[str, object]] = [("Request", f"{the_plan['request_id']} ({request_type})"), ("Tenant", tenant)]
    if the_plan.get("subject_hash"):
        facts.append(("Subject", f"{the_plan.get('subject_type')}, keyed hash {the_plan['subject_hash']}"))
    due = datetime.fromisoformat(str(the_plan["due_at"])).astimezone(policy.timezone)
    facts += [("Due", f"{due:%Y-%m-%d %H:%M} ({policy.timezone_name})"), ("Records to delete", total),
              ("Triggered by", triggered_by or "unknown")]
    rows = [(name, ", ".join(c["stores"]), c["records"] if not c["unknown"] else f"{c['records']} + {c['unknown']} uncounted")
            for name, c in counts.items()]
    note = (f"Nothing has been deleted yet. **Approve** to delete all of this; **Reject** to close the request as "
            f"rejected. The approver must be another Airflow user than {triggered_by or 'the one who triggered the run'}.")
    return ApprovalAsk(
        scope=request_scope(str(the_plan["request_id"])),
        subject=f"Approve {what}? {total} record(s)",
        body=approval_body(facts, ("category", "stores", "records to delete"), rows, note=note),
        details={"request_id": the_plan["request_id"], "request_type": request_type, "tenant_id": tenant,
                 "records": {name: c["records"] for name, c in counts.items()}, "total": total},
        assigned_users=policy.request_approval.approvers,
    )


def ask(policy: Policy, context: Mapping[str, Any]) -> ApprovalAsk | None:
    """What to ask for this run's request, or None when it needs no approval (or has one)."""
    the_plan = context["ti"].xcom_pull(task_ids="plan")
    if not the_plan or the_plan.get("mode") != "execute":
        return None
    if not policy.request_approval.required(str(the_plan["request_type"])):
        return None
    standing = approval_of(request_scope(str(the_plan["request_id"])))
    if standing is not None:
        log.info("Request %s was approved by %s at %s (run %s); no new approval needed", the_plan["request_id"],
                 standing.responded_by, standing.responded_at, standing.run_id)
        return None
    return build_ask(policy, the_plan, triggering_user(context))


def _request_id(ask: ApprovalAsk) -> str:
    return str(ask.details["request_id"])


def waiting(policy: Policy, context: Mapping[str, Any], ask: ApprovalAsk) -> None:
    """The request waits for its approval (``awaiting_approval``)."""
    transition(_request_id(ask), "awaiting_approval", run_id=str(context["run_id"]),
               message=f"waiting up to {policy.request_approval.timeout_minutes} min for another Airflow user than "
                       f"{triggering_user(context) or 'the one who triggered the run'} to approve")


def settle(policy: Policy, context: Mapping[str, Any], ask: ApprovalAsk, decision: Decision) -> None:
    """Record the decision on the request: its event, and its state."""
    request_id, run_id = _request_id(ask), str(context["run_id"])
    message = decision.message(f"request {request_id}")
    record_event(request_id, "approval", run_id=run_id, message=f"{decision.outcome}: {message}")
    if decision.outcome == APPROVED:
        transition(request_id, "planned", run_id=run_id, message=message)
    elif decision.outcome == REJECTED:
        transition(request_id, "rejected", run_id=run_id, error=message, release=True)
    else:  # refused or timed out: a new run asks again
        transition(request_id, "failed", run_id=run_id, error=message + "; a new run of the request asks again",
                   failed_step=APPROVE_TASK_ID, release=True)
    if decision.outcome == TIMED_OUT:
        _alert_unanswered(policy, request_id, context)


def _alert_unanswered(policy: Policy, request_id: str, context: Mapping[str, Any]) -> None:
    """E-mail the SLA address that nobody answered; the failed task and request say so anyway."""
    from include.retention import sla
    from include.retention.airflow_context import run_after_from_context
    from include.retention.ledger.alerts import record_alert
    from include.retention.timeutil import local_day

    request = get_request(request_id)
    if request is None:
        return
    as_of = run_after_from_context(context)
    alert = sla.Alert(request_id, "approval", days_left(request.due_at, as_of))
    try:
        sla.send(alert, context, to=sla.recipient())
    except Exception as exc:  # noqa: BLE001 - the run fails with the reason whether or not the e-mail goes
        log.warning("Request %s: the unanswered approval could not be e-mailed: %s: %s", request_id,
                    type(exc).__name__, exc)
        return
    record_alert(request_id, "approval", alert.days_left, local_day(as_of, policy.timezone), run_id=str(context["run_id"]))


class RequestApproval(ConditionalApproval):
    """The ``approve`` task of ``deletion_requests``: asks, waits and settles as this module says.

    :param policy: the policy the DAG was built from (``request_approval``: who must approve, how long).
    """

    def __init__(self, *, policy: Policy, **kwargs: Any) -> None:
        kwargs.setdefault("task_id", APPROVE_TASK_ID)
        super().__init__(
            ask=functools.partial(ask, policy),
            on_ask=functools.partial(waiting, policy),
            on_decision=functools.partial(settle, policy),
            response_timeout=timedelta(minutes=policy.request_approval.timeout_minutes),
            **kwargs,
        )
