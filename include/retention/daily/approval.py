"""A person's approval of a large daily purge: the ``approve`` task between ``plan`` and the purges.

When the circuit breaker trips and the policy says ``circuit_breaker.on_trip: ask`` (or the
run's ``on_breaker_trip`` param does), ``plan`` does not fail: it records the lines over the
limit, and this step waits under "Required actions" with the numbers per target and tenant
(share, counts, cut-off). The operator approves with a reason, or rejects.

- approved: the purges run; the approver and the reason go into every audit row of the run
  (``approved_by``, ``override_reason``) and into the ``approvals`` table;
- rejected, refused (the user who triggered the run answered), or no answer within
  ``circuit_breaker.approval_timeout_minutes``: the task fails without a retry and nothing is
  deleted; a timeout also e-mails the SLA address.

A run whose breaker did not trip (or that was let through with ``allow_large_purge``) goes
ahead at once: the step succeeds without waiting.
"""

from __future__ import annotations

import functools
import logging
from datetime import timedelta
from typing import Any, Mapping, Sequence

from include.retention.approvals import TIMED_OUT, ApprovalAsk, ConditionalApproval, Decision, approval_body
from include.retention.daily.breaker import describe_line
from include.retention.policy import Policy

log = logging.getLogger(__name__)

APPROVE_TASK_ID = "approve"


def daily_scope(category: str, run_id: str) -> str:
    return f"daily:{category}:{run_id}"


def build_ask(policy: Policy, the_plan: Mapping[str, Any], run_id: str) -> ApprovalAsk | None:
    """What to ask about a plan whose breaker tripped, or None when it did not. Pure."""
    tripped: Sequence[Mapping[str, Any]] = the_plan.get("needs_approval") or ()
    if not tripped:
        return None
    category = str(the_plan["category"])
    cutoffs: dict[str, str] = {}
    for spec in the_plan["specs"]:
        cut = spec["selection"].get("before")
        if cut and spec["target"] not in cutoffs:
            cutoffs[spec["target"]] = str(cut)
    rows = [(line["target"], line.get("tenant") or "all", line["planned"], line["total"], f"{line['share']:.1%}",
             cutoffs.get(str(line["target"]), "")) for line in tripped]
    body = approval_body(
        [("Category", category), ("As of", the_plan["as_of"]), ("Limit", f"{the_plan['max_share']:.0%} of a target "
                                                                        "or of one tenant's records in it")],
        ["Target", "Tenant", "Would delete", "Holds now", "Share", "Cut-off"], rows,
        note="Approve only if this is intended (a first run over a backlog, a tenant's first run after "
             "onboarding). Rejecting deletes nothing. Your name and reason go into the audit.",
    )
    return ApprovalAsk(
        scope=daily_scope(category, run_id),
        subject=f"Large purge of {category}: {len(tripped)} line(s) over the circuit breaker",
        body=body,
        details={"category": category, "as_of": the_plan["as_of"], "lines": [dict(line) for line in tripped]},
        assigned_users=tuple(policy.circuit_breaker.approvers),
    )


def ask(policy: Policy, context: Mapping[str, Any]) -> ApprovalAsk | None:
    the_plan = context["ti"].xcom_pull(task_ids="plan")
    return build_ask(policy, the_plan, str(context["run_id"]))


def settle(policy: Policy, context: Mapping[str, Any], asked: ApprovalAsk, decision: Decision) -> None:
    """Log every decision; e-mail the SLA address when nobody answered."""
    log.info("%s", decision.message(asked.scope))
    if decision.outcome == TIMED_OUT:
        _alert_unanswered(asked, context)


def _alert_unanswered(asked: ApprovalAsk, context: Mapping[str, Any]) -> None:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    from include.retention import sla

    try:
        SmtpNotifier(
            to=sla.recipient(), from_email=sla.DEFAULT_FROM, smtp_conn_id=sla.SMTP_CONN_ID,
            subject=f"[retention] {asked.subject}: not approved in time, nothing was deleted",
            html_content=f"<p>Nobody approved this purge in time; its run failed and nothing was deleted.</p>"
                         f"<p>Scope: <b>{asked.scope}</b></p>{_html_lines(asked)}",
        ).notify(dict(context))  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - the run fails with the reason whether or not the e-mail goes
        log.warning("The unanswered approval of %s could not be e-mailed: %s: %s", asked.scope, type(exc).__name__, exc)


def _html_lines(asked: ApprovalAsk) -> str:
    from html import escape

    return "<ul>" + "".join(f"<li>{escape(describe_line(line))}</li>" for line in asked.details.get("lines", ())) + "</ul>"


def approved_by(decision: Mapping[str, Any] | None) -> tuple[str, str]:
    """(approver, audit reason) of the approve task's XCom; empty when nobody had to approve."""
    if not decision or decision.get("outcome") != "approved":
        return "", ""
    who = str(decision.get("responded_by") or "")
    return who, f"approved by {who}" + (f": {decision['reason']}" if decision.get("reason") else "")


class LargePurgeApproval(ConditionalApproval):
    """The ``approve`` task of a daily DAG: asks only when the breaker tripped and the run asks for approval."""

    def __init__(self, *, policy: Policy, **kwargs: Any) -> None:
        kwargs.setdefault("task_id", APPROVE_TASK_ID)
        super().__init__(
            ask=functools.partial(ask, policy),
            on_decision=functools.partial(settle, policy),
            response_timeout=timedelta(minutes=policy.circuit_breaker.approval_timeout_minutes),
            **kwargs,
        )
