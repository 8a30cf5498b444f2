"""A person's approval before a destructive step: a conditional Airflow approval and the four-eyes rule.

:class:`ConditionalApproval` is the standard provider's ``ApprovalOperator`` (Approve or
Reject under "Required actions", or ``PATCH .../taskInstances/{task_id}/-1/hitlDetails``)
that asks only when its ``ask`` callable says so::

    ConditionalApproval(
        task_id="approve",
        ask=lambda context: ApprovalAsk(scope, subject, body, details) or None,  # None: go ahead at once
        on_decision=lambda context, ask, decision: ...,  # optional: the caller's own bookkeeping
        on_ask=lambda context, ask: ...,                 # optional: just before it starts waiting
        response_timeout=timedelta(hours=4),
        assigned_users=[{"id": "bob", "name": "bob"}],   # optional: who may answer (the api-server checks it)
    )

- ``ask`` returns ``None``: the task succeeds at once, without waiting (``not_required``).
- Otherwise the task waits (``awaiting_input``). Its answer is a :class:`Decision`:
  ``approved`` (the task succeeds; its XCom is ``Decision.as_dict()``), or ``rejected``,
  ``refused`` (the responder is the user who triggered the run: :func:`four_eyes_refusal`) or
  ``timed_out`` (no answer within ``response_timeout``). Those three fail the task without a
  retry (``AirflowFailException``), with the reason, so nothing downstream runs. Any other
  error is retried as usual, and the retry asks again (``ask`` may then return None, e.g. when
  the ledger already holds an approval of the scope).
- Every decision is written to the ledger's ``approvals`` table (``ledger/approvals.py``)
  before ``on_decision`` runs and before the task ends; so is each ask (``asked``, with who
  triggered the run): whoever triggered any run of a scope cannot approve it.

The body is Markdown built by :func:`approval_body`: counts, never personal data. A reason
the responder types goes in the form's ``reason`` field.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping, Sequence

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict

from include.retention.ledger.approvals import decisions, record_decision

log = logging.getLogger(__name__)

APPROVED, REJECTED, REFUSED, TIMED_OUT, NOT_REQUIRED = "approved", "rejected", "refused", "timed_out", "not_required"
#: Recorded when a run starts waiting: who triggered it, so that they cannot approve a later run of the scope either.
ASKED = "asked"
_ASK_XCOM_KEY = "approval_ask"
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class ApprovalAsk:
    """What a person is asked to approve.

    :param scope: what is approved, for the ledger (``request:TRM-...``, ``daily:call_data``).
    :param details: JSON for the ledger (the counts shown); no personal data.
    :param assigned_users: Airflow user names that may answer; empty: anyone with access.
    """

    scope: str
    subject: str
    body: str
    details: Mapping[str, Any] = field(default_factory=dict)
    assigned_users: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"scope": self.scope, "subject": self.subject, "body": self.body, "details": dict(self.details),
                "assigned_users": list(self.assigned_users)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ApprovalAsk:
        return cls(str(raw["scope"]), str(raw["subject"]), str(raw["body"]), dict(raw.get("details") or {}),
                   tuple(raw.get("assigned_users") or ()))


@dataclass(frozen=True)
class Decision:
    """The answer (or its absence), as the ledger and the next tasks see it."""

    outcome: str
    triggered_by: str | None
    responded_by: str | None = None
    responded_at: datetime | None = None
    reason: str | None = None

    @property
    def approved(self) -> bool:
        return self.outcome in (APPROVED, NOT_REQUIRED)

    def message(self, scope: str) -> str:
        """One line for the log, the ledger and the failed task."""
        who = f" by {self.responded_by}" if self.responded_by else ""
        when = f" at {self.responded_at.isoformat()}" if self.responded_at else ""
        why = f": {self.reason}" if self.reason else ""
        return {
            APPROVED: f"{scope} approved{who}{when}{why}",
            REJECTED: f"{scope} rejected{who}{when}{why}; nothing was deleted",
            REFUSED: f"{scope}: the approval{who}{when} is refused{why}; nothing was deleted",
            TIMED_OUT: f"{scope}: no approval{why}; nothing was deleted",
            NOT_REQUIRED: f"{scope}: no approval required",
        }[self.outcome]

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "approved": self.approved, "triggered_by": self.triggered_by,
                "responded_by": self.responded_by,
                "responded_at": self.responded_at.isoformat() if self.responded_at else None, "reason": self.reason}


# --------------------------------------------------------------------------- pure parts


def _cell(value: object) -> str:
    """A Markdown table cell: no pipe or line break can break the table."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def approval_body(facts: Sequence[tuple[str, object]], headers: Sequence[str], rows: Sequence[Sequence[object]],
                  *, note: str = "") -> str:
    """Markdown for the approver: ``facts`` as a list, then ``rows`` as a table (the counts), then ``note``."""
    lines = [f"- **{_cell(name)}:** {_cell(value)}" for name, value in facts]
    if rows:
        lines += ["", "| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    if note:
        lines += ["", note]
    return "\n".join(lines)


def four_eyes_refusal(responder: Mapping[str, Any] | None, triggered_by: str | None,
                      earlier: Sequence[str] = ()) -> str | None:
    """Why this responder may not approve, or None: nobody approves a run they triggered themselves,
    nor another run of the same scope that they triggered before (a re-triggered run runs as no one).

    Airflow user names are compared case-insensitively, by name and by id.

    :param earlier: users who triggered earlier runs that asked for the same scope.
    """
    if not responder:
        return "the answer names no user"
    names = {str(responder.get(key) or "").strip().casefold() for key in ("name", "id")} - {""}
    who = responder.get("name") or responder.get("id")
    if triggered_by and triggered_by.strip().casefold() in names:
        return f"{who} triggered this run and cannot approve it: another Airflow user must approve"
    if any(user.strip().casefold() in names for user in earlier if user):
        return f"{who} triggered an earlier run of it and cannot approve it: another Airflow user must approve"
    return None


def clean_reason(params_input: Mapping[str, Any] | None) -> str | None:
    """The responder's ``reason``, one line, at most ``MAX_REASON_CHARS``; None when empty."""
    text = " ".join(str((params_input or {}).get("reason") or "").split())
    return text[:MAX_REASON_CHARS] or None


def triggering_user(context: Mapping[str, Any]) -> str | None:
    """The Airflow user who triggered this run (``dag_run.triggering_user_name``; ``dag_test`` in ``dag.test()``)."""
    name = getattr(context["dag_run"], "triggering_user_name", None)
    return str(name) if name else None


def decide(event: Mapping[str, Any], triggered_by: str | None, options: tuple[str, str],
           earlier: Sequence[str] = ()) -> Decision:
    """The decision an answer event carries. Pure.

    :param options: the (approve, reject) labels.
    :param earlier: users who triggered earlier runs asking for the same scope (they cannot approve either).
    """
    reason = clean_reason(event.get("params_input"))
    if "error" in event:
        if event.get("error_type") == "timeout":
            return Decision(TIMED_OUT, triggered_by, reason="no answer in time")
        raise RuntimeError(f"the approval could not be read: {event.get('error_type')}: {event.get('error')}")
    responder = event.get("responded_by_user")
    responded_at = event.get("responded_at")
    if isinstance(responded_at, str):
        responded_at = datetime.fromisoformat(responded_at)
    name = str(responder.get("name") or responder.get("id")) if responder else None
    if responder is None and event.get("timedout"):
        return Decision(TIMED_OUT, triggered_by, responded_at=responded_at, reason="no answer in time")
    refusal = four_eyes_refusal(responder, triggered_by, earlier)
    if refusal:
        return Decision(REFUSED, triggered_by, name, responded_at, refusal)
    chosen = list(event.get("chosen_options") or [])
    approve, reject = options
    if chosen == [approve]:
        return Decision(APPROVED, triggered_by, name, responded_at, reason)
    if chosen == [reject]:
        return Decision(REJECTED, triggered_by, name, responded_at, reason)
    raise RuntimeError(f"the approval chose {chosen!r}; expected {approve!r} or {reject!r}")


# --------------------------------------------------------------------------- the operator

AskFn = Callable[[Mapping[str, Any]], ApprovalAsk | None]
OnAskFn = Callable[[Mapping[str, Any], ApprovalAsk], None]
OnDecisionFn = Callable[[Mapping[str, Any], ApprovalAsk, Decision], None]


class ConditionalApproval(ApprovalOperator):
    """An ``ApprovalOperator`` that waits only when ``ask(context)`` returns an :class:`ApprovalAsk`.

    :param ask: what to ask, or None when no approval is needed (the task then succeeds at once).
    :param on_ask: called just before the task starts waiting.
    :param on_decision: called with every decision of a person (or its timeout), after the ledger row.
    :param response_timeout: how long to wait; no answer by then fails the task (``timed_out``).
    """

    def __init__(self, *, ask: AskFn, on_ask: OnAskFn | None = None, on_decision: OnDecisionFn | None = None,
                 response_timeout: timedelta, **kwargs: Any) -> None:
        kwargs.setdefault("subject", "Approval")  # the real subject and body come from ask() at run time
        # The form's one field. Airflow has merged the DAG's params into kwargs by now (and the
        # HITL operator keeps only task-level ones), so it is added here, marked as the task's.
        params = ParamsDict(kwargs.pop("params", None) or {})
        reason = Param("", type=["null", "string"], maxLength=MAX_REASON_CHARS, title="Reason",
                       description="Why you approve or reject (for the audit).", source="task")
        params.update({"reason": reason})
        kwargs["params"] = params
        # A deferred task's trigger times out at the earlier of its own timeout and the task's
        # execution_timeout: the wait must not be cut short by a default meant for work.
        least = response_timeout + timedelta(minutes=10)
        if kwargs.get("execution_timeout") is None or kwargs["execution_timeout"] < least:
            kwargs["execution_timeout"] = least
        super().__init__(response_timeout=response_timeout, **kwargs)
        self.ask = ask
        self.on_ask = on_ask
        self.on_decision = on_decision

    def execute(self, context: Any) -> Any:
        ask = self.ask(context)
        if ask is None:
            return Decision(NOT_REQUIRED, triggering_user(context)).as_dict()
        self.subject, self.body = ask.subject, ask.body
        if ask.assigned_users:
            self.assigned_users = [{"id": name, "name": name} for name in ask.assigned_users]
        context["ti"].xcom_push(key=_ASK_XCOM_KEY, value=ask.as_dict())
        self._record(context, ask, Decision(ASKED, triggering_user(context)))  # who triggered: never its approver
        if self.on_ask is not None:
            self.on_ask(context, ask)
        log.info("Waiting for an approval of %s (at most %s)", ask.scope, self.response_timeout)
        return super().execute(context)  # parks the task in awaiting_input

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from airflow.sdk.exceptions import AirflowFailException

        ask = ApprovalAsk.from_dict(context["ti"].xcom_pull(task_ids=self.task_id, key=_ASK_XCOM_KEY))
        earlier = [d.triggered_by for d in decisions(ask.scope) if d.triggered_by]
        decision = decide(event, triggering_user(context), (self.APPROVE, self.REJECT), earlier)
        if decision.outcome == TIMED_OUT:
            decision = Decision(TIMED_OUT, decision.triggered_by, reason=f"no answer within {self.response_timeout}")
        self._record(context, ask, decision)
        if self.on_decision is not None:
            self.on_decision(context, ask, decision)
        message = decision.message(ask.scope)
        if not decision.approved:
            log.error("%s", message)
            raise AirflowFailException(message)
        log.info("%s", message)
        return decision.as_dict()

    @staticmethod
    def _record(context: Any, ask: ApprovalAsk, decision: Decision) -> None:
        ti = context["ti"]
        record_decision(scope=ask.scope, dag_id=str(ti.dag_id), run_id=str(context["run_id"]),
                        task_id=str(ti.task_id), outcome=decision.outcome, triggered_by=decision.triggered_by,
                        responded_by=decision.responded_by, responded_at=decision.responded_at,
                        reason=decision.reason, details=ask.details)
