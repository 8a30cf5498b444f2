"""The bodies of the ``deletion_requests`` DAG's tasks, and every decision they make.

Each reads what it needs from its Airflow context and calls one step of the request path:
whether a run certifies, skips or carries a request out; what a run does when planning
never finished; when a last failed try of the certificate marks the request failed. The
DAG file only wires these together. Airflow's exceptions are imported inside the functions
so that this module loads without Airflow's task machinery.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any, Mapping

from include.retention.airflow_context import RunRef, run_after_from_context
from include.retention.certificates.issue import issue, load
from include.retention.crypto import RetentionCrypto
from include.retention.ledger.requests import (
    claim,
    find_by_reference,
    get_request,
    list_events,
    release,
    transition,
)
from include.retention.policy import Policy
from include.retention.requests.approval import APPROVE_TASK_ID
from include.retention.requests.intake import RequestConflict, submit
from include.retention.requests.runner import RequestBlocked, RequestIncomplete, Runner

log = logging.getLogger(__name__)

#: The request's fields, as the DAG's params name them (its trigger form).
PARAM_NAMES = ("request_type", "tenant_id", "subject_type", "subject_id", "categories", "received_at",
               "reference", "requested_by", "mode", "resume")


def _runner(policy: Policy, context: Mapping[str, Any]) -> Runner:
    return Runner(policy, RetentionCrypto.from_connection(), RunRef.from_context(context),
                  run_after_from_context(context))


def _registration(context: Mapping[str, Any]) -> dict[str, Any] | None:
    return context["ti"].xcom_pull(task_ids="register")


def register(policy: Policy, context: Mapping[str, Any], *, lease: timedelta) -> dict[str, Any]:
    """Validate and record the request (or find it by its reference); claim it for this run.

    :param lease: how long this run holds the request (the run's ``dagrun_timeout``).
    :returns: the request and the ``action`` the run takes: ``run``, ``skip`` or ``certificate``.
    """
    from airflow.sdk.exceptions import AirflowFailException

    params = context["params"]
    conf = {name: params.get(name) for name in PARAM_NAMES}
    run_after = run_after_from_context(context)
    run_id = str(context["run_id"])
    try:
        submission = submit(policy, conf, run_after=run_after, run_id=run_id, crypto=RetentionCrypto.from_connection())
    except (RequestConflict, LookupError) as exc:
        raise AirflowFailException(str(exc)) from None
    request = submission.request
    out = {"request_id": request.request_id, "outcome": submission.outcome, "state": request.state,
           "mode": request.mode, "due_at": request.due_at.isoformat(), "message": submission.message}
    if submission.outcome == "rejected":
        reason = f"Request {request.request_id} refused, nothing was deleted. {submission.message}"
        note_on_run(context, reason)
        raise AirflowFailException(reason)
    if request.state == "completed":
        return {**out, "action": "certificate"}
    if params.get("mode") == "preview" and request.mode == "execute" and not params.get("resume"):
        return {**out, "action": "skip",
                "message": f"request {request.request_id} is already accepted for execution ({request.state}); "
                           "a preview changes nothing"}
    if not claim(request.request_id, run_id=run_id, run_after=run_after, lease=lease):
        holder = get_request(request.request_id)
        return {**out, "action": "skip",
                "message": f"request {request.request_id} is being carried out by run "
                           f"{holder.run_id if holder else '?'}; this run does nothing"}
    return {**out, "action": "run"}


def note_on_run(context: Mapping[str, Any], text: str) -> bool:
    """Write ``text`` as the run's note, which the UI shows under the run's header: where an
    operator who triggered the run looks first (the reason is also the task's failure).

    Through Airflow's REST API with the connection ``retention_airflow_api`` (a task cannot
    write its run otherwise); without it, or if the call fails, only logged. ``text`` holds no
    subject id (a refusal never echoes one).
    """
    from airflow.sdk.exceptions import AirflowSkipException

    from include.retention.airflow_runs import AirflowApi

    try:
        AirflowApi.from_connection().set_run_note(str(context["ti"].dag_id), str(context["run_id"]), text)
        return True
    except AirflowSkipException:  # the connection is not defined
        log.info("No run note: the connection retention_airflow_api is not defined")
    except Exception as exc:  # noqa: BLE001 - the note is a courtesy; the failure itself carries the reason
        log.warning("Could not set the run's note: %s", type(exc).__name__)
    return False


def plan(policy: Policy, registration: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """One step per category and store target, each counted; nothing is deleted here."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    if registration["action"] != "run":
        raise AirflowSkipException(registration["message"])
    try:
        result = _runner(policy, context).plan(registration["request_id"])
    except RequestBlocked as exc:
        raise AirflowFailException(str(exc)) from None
    log.info("Plan: %s", json.dumps(result, sort_keys=True, default=str))
    return result


def purge(policy: Policy, store: str, the_plan: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Purge and verify this store's steps that are not verified yet."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    if the_plan["mode"] != "execute":
        raise AirflowSkipException("preview: nothing is deleted")
    if store not in the_plan["stores"]:
        raise AirflowSkipException(f"this request has no {store} steps")
    try:
        return _runner(policy, context).execute_store(the_plan["request_id"], store)
    except RequestBlocked as exc:
        raise AirflowFailException(str(exc)) from None


def verify(policy: Policy, context: Mapping[str, Any]) -> dict[str, Any]:
    """Independent re-count of every step. Runs whatever the purges did: it decides the state."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    registration = _registration(context)
    if not registration:  # register failed: the run must fail too, whatever was skipped
        raise AirflowFailException(_why_not_registered(context))
    if registration.get("action") != "run":
        raise AirflowSkipException("nothing to verify")
    request_id = registration["request_id"]
    runner = _runner(policy, context)
    request = runner.request(request_id)
    if request.mode != "execute":
        raise AirflowSkipException("preview: nothing to verify")
    if request.state == "rejected" or (request.state == "failed" and request.failed_step == APPROVE_TASK_ID):
        # The approval step said no (or nobody did): nothing was deleted, and its reason stands.
        raise AirflowFailException(f"request {request_id} was not approved: {request.error}")
    if request.state == "awaiting_approval":
        runner.fail(request, APPROVE_TASK_ID, "the approval step did not finish; nothing was deleted")
        release(request_id)
        raise AirflowFailException(f"request {request_id}: the approval step did not finish")
    if context["ti"].xcom_pull(task_ids="plan") is None:
        if request.state != "failed":
            runner.fail(request, None, "planning did not finish; nothing was verified")
        release(request_id)
        raise AirflowFailException(f"request {request_id}: planning did not finish")
    try:
        return runner.verify(request_id)
    except RequestIncomplete as exc:
        raise AirflowFailException(str(exc)) from None


def _why_not_registered(context: Mapping[str, Any]) -> str:
    """Why ``register`` returned nothing: the ledger's refusal when this run's request was
    rejected (its reasons, not "not registered"), else a pointer to the register task's log."""
    reference, run_id = context["params"].get("reference"), str(context["run_id"])
    request = find_by_reference(reference) if isinstance(reference, str) else None
    if request is not None and request.state == "rejected" and (
        request.run_id == run_id or any(e.run_id == run_id for e in list_events(request.request_id))
    ):
        return f"request {request.request_id} was rejected at intake, nothing was deleted: {request.error}"
    return "the register task failed before the request was accepted (see its log); nothing was deleted"


def certificate(policy: Policy, verified: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Sign and store the certificate; the request is ``completed`` once it is stored.

    A last try that fails marks the request ``failed`` in the ledger, so that it shows.
    """
    request_id = verified["request_id"]
    try:
        stored = issue(policy, request_id, crypto=RetentionCrypto.from_connection(), run=RunRef.from_context(context),
                       verified_at=datetime.fromisoformat(verified["verified_at"]))
    except Exception as exc:
        ti = context["ti"]
        if ti.try_number > (ti.task.retries or 0):  # the last attempt: say so in the ledger
            transition(request_id, "failed", run_id=str(context["run_id"]), failed_step="certificate",
                       error=f"the certificate could not be stored: {type(exc).__name__}", release=True)
        raise
    doc = stored.document["certificate"]
    return {"request_id": request_id, "certificate_id": stored.certificate_id,
            "cos": f"s3://{stored.cos_bucket}/{stored.cos_key}", "signature": stored.signature,
            "records_deleted": doc["outcome"]["records_deleted"]}


def existing_certificate(context: Mapping[str, Any]) -> dict[str, Any]:
    """For a completed request submitted again: report its certificate."""
    from airflow.sdk.exceptions import AirflowSkipException

    registration = _registration(context)
    if not registration or registration.get("action") != "certificate":
        raise AirflowSkipException("not a completed request")
    stored = load(registration["request_id"])
    if stored is None:
        raise RuntimeError(f"request {registration['request_id']} is completed but has no certificate")
    return {"request_id": stored.request_id, "certificate_id": stored.certificate_id,
            "cos": f"s3://{stored.cos_bucket}/{stored.cos_key}", "signature": stored.signature}
