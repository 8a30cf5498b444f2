"""
### Termination and deletion requests (on demand)

One run carries out one request: the **termination** of a tenant (every category it has, in
every store: MySQL rows, Redis keys, recordings, its COS backups and its Elasticsearch
indices), or the **deletion** of one subject (an agent, a phone number) in every category
the policy lets a deletion reach. Each request is due 30 days after it was received.

**Submit** with *Trigger DAG w/ config* (the form below explains each field) or the REST
API (`POST /api/v2/dags/deletion_requests/dagRuns` with `{"logical_date": null, "conf": {...}}`,
see docs/REQUESTS.md). Start with `mode: preview`: it plans and counts, and deletes nothing.
Then submit the same `reference` with `mode: execute`.

**Tasks:** `register` (validate before anything is deleted; a refused request is recorded
as `rejected` and the run fails with the reasons) → `plan` (one step per category and store
target, counted; a subject's recording keys are read from MySQL before its rows go) →
`purge_<store>` (each in its store's pool; every step is verified by a re-count as soon as
it is purged) → `verify` (an independent re-count of every step) → `certificate` (signed
JSON + Markdown + HTML in COS under `certificates/`, and in the ledger; then `completed`).

**The same `reference` twice is one request.** A run of a request that failed resumes it:
verified steps are skipped, the rest run again. The daily SLA monitor re-triggers failed and
stalled requests by itself (`resume: true`). A request on **legal hold** is refused at
intake; a hold placed later stops its purges and fails it until the hold is released.

**Privacy:** the subject id travels only in this run's conf; the ledger, logs, XComs,
audit rows and certificates carry its keyed hash.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pendulum
from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference, Param, dag, get_current_context, task

from include.retention.policy import load_policy
from include.retention.requests.legacy import DAG_ID, MODES, REFERENCE_PATTERN, STORE_ORDER

POLICY = load_policy()  # the one file read at parse time: the policy next to the code
RUN_TIMEOUT = timedelta(hours=6)  # also the lease a run holds on its request
RUN_DEADLINE = timedelta(hours=2)  # a run still going after this is reported (Deadline Alert)
PARAM_NAMES = ("request_type", "tenant_id", "subject_type", "subject_id", "categories", "received_at",
               "reference", "requested_by", "mode", "resume")

DEFAULT_ARGS = {
    "owner": "data-retention",
    "retries": 3,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(hours=1),
}

PARAMS = {
    "request_type": Param(
        type="string", enum=["termination", "deletion"], title="Request type",
        description="termination: a whole tenant, every category. deletion: one subject of a tenant.",
    ),
    "tenant_id": Param(
        type="string", pattern=POLICY.tenant_format.pattern, title="Tenant id",
        description="The contact center's application id (SdkAppId), digits only; it must exist.",
    ),
    "subject_type": Param(
        None, type=["null", "string"], enum=[None, *POLICY.subject_formats], title="Subject type",
        description="For a deletion: what kind of subject. Leave empty for a termination.",
    ),
    "subject_id": Param(
        None, type=["null", "string"], maxLength=128, title="Subject id",
        description="For a deletion: the exact id (E.164 such as +6581234567 for a phone number, the agent id "
                    "for an agent). No wildcards or patterns. Leave empty for a termination.",
    ),
    "categories": Param(
        [], type="array", items={"type": "string", "enum": list(POLICY.categories)}, uniqueItems=True,
        title="Categories",
        description="Empty: every category the policy lets this request type reach. Configuration data takes "
                    "no per-subject deletion.",
    ),
    "received_at": Param(
        None, type=["null", "string"], format="date-time", title="Received at",
        description="When the request was received (ISO 8601 with a time zone); empty: now (the run's time). "
                    "Never in the future. The request is due 30 days after it.",
    ),
    "reference": Param(
        type="string", pattern=REFERENCE_PATTERN, title="Reference",
        description="The ticket id. Also the idempotency key: the same reference again is the same request.",
    ),
    "requested_by": Param(
        type="string", minLength=1, maxLength=128, title="Requested by", description="Who asked (for the record).",
    ),
    "mode": Param(
        "preview", type="string", enum=list(MODES), title="Mode",
        description="preview: plan and count, delete nothing. execute: carry the request out.",
    ),
    "resume": Param(
        False, type="boolean", title="Resume",
        description="Resume the request with this reference from the ledger (a failed or stalled one); the "
                    "subject is taken from the ledger. Set by the SLA monitor.",
    ),
}


def _run_after(context: Any) -> datetime:
    value = context["dag_run"].run_after
    instant = datetime.fromisoformat(value.isoformat()) if hasattr(value, "isoformat") else value
    if instant.tzinfo is None:
        raise ValueError("the run has no time zone")
    return instant


def _runner(context: Any) -> Any:
    from include.retention.airflow_context import RunRef
    from include.retention.crypto import RetentionCrypto
    from include.retention.requests.legacy import Runner

    return Runner(POLICY, RetentionCrypto.from_connection(), RunRef.from_context(context), _run_after(context))


def _registration(context: Any) -> dict[str, Any] | None:
    return context["ti"].xcom_pull(task_ids="register")


@dag(
    dag_id=DAG_ID,
    description="Termination and deletion requests: validate, purge every store, verify, certify",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz=POLICY.timezone_name),
    catchup=False,
    max_active_runs=4,  # independent requests run side by side; one request is held by one run
    dagrun_timeout=RUN_TIMEOUT,
    default_args=DEFAULT_ARGS,
    tags=["retention", "requests", "termination", "deletion"],
    params=PARAMS,
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=RUN_DEADLINE,
        callback=AsyncCallback("include.retention.sla.request_run_overdue",
                               kwargs={"hours": RUN_DEADLINE.total_seconds() / 3600}),
    ),
)
def deletion_requests() -> None:
    @task(execution_timeout=timedelta(minutes=10))
    def register() -> dict[str, Any]:
        """Validate and record the request (or find it by its reference); claim it for this run."""
        from airflow.sdk.exceptions import AirflowFailException

        from include.retention.requests import legacy as rq
        from include.retention.crypto import RetentionCrypto

        context = get_current_context()
        params = context["params"]
        conf = {name: params.get(name) for name in PARAM_NAMES}
        run_after = _run_after(context)
        run_id = str(context["run_id"])
        try:
            submission = rq.submit(POLICY, conf, run_after=run_after, run_id=run_id,
                                   keys=RetentionCrypto.from_connection())
        except (rq.RequestConflict, LookupError) as exc:
            raise AirflowFailException(str(exc)) from None
        request = submission.request
        out = {"request_id": request.request_id, "outcome": submission.outcome, "state": request.state,
               "mode": request.mode, "due_at": request.due_at.isoformat(), "message": submission.message}
        if submission.outcome == "rejected":
            raise AirflowFailException(f"{request.request_id}: {submission.message}")
        if request.state == "completed":
            return {**out, "action": "certificate"}
        if params.get("mode") == "preview" and request.mode == "execute" and not params.get("resume"):
            return {**out, "action": "skip",
                    "message": f"request {request.request_id} is already accepted for execution ({request.state}); "
                               "a preview changes nothing"}
        if not rq.claim(request.request_id, run_id=run_id, run_after=run_after, lease=RUN_TIMEOUT):
            holder = rq.get_request(request.request_id)
            return {**out, "action": "skip",
                    "message": f"request {request.request_id} is being carried out by run "
                               f"{holder.run_id if holder else '?'}; this run does nothing"}
        return {**out, "action": "run"}

    @task(execution_timeout=timedelta(minutes=30))
    def plan(registration: dict[str, Any]) -> dict[str, Any]:
        """One step per category and store target, each counted; nothing is deleted here."""
        import json
        import logging

        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from include.retention.requests.legacy import RequestBlocked

        if registration["action"] != "run":
            raise AirflowSkipException(registration["message"])
        try:
            result = _runner(get_current_context()).plan(registration["request_id"])
        except RequestBlocked as exc:
            raise AirflowFailException(str(exc)) from None
        logging.getLogger(__name__).info("Plan: %s", json.dumps(result, sort_keys=True, default=str))
        return result

    def purge_task(store: str) -> Any:
        @task(task_id=f"purge_{store}", pool=f"retention_{store}", execution_timeout=timedelta(hours=2))
        def purge(the_plan: dict[str, Any]) -> dict[str, Any]:
            """Purge and verify this store's steps that are not verified yet."""
            from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

            from include.retention.requests.legacy import RequestBlocked

            if the_plan["mode"] != "execute":
                raise AirflowSkipException("preview: nothing is deleted")
            if store not in the_plan["stores"]:
                raise AirflowSkipException(f"this request has no {store} steps")
            try:
                return _runner(get_current_context()).execute_store(the_plan["request_id"], store)
            except RequestBlocked as exc:
                raise AirflowFailException(str(exc)) from None

        return purge

    @task(trigger_rule="all_done", execution_timeout=timedelta(hours=1))
    def verify() -> dict[str, Any]:
        """Independent re-count of every step. Runs whatever the purges did: it decides the state."""
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from include.retention.requests import legacy as rq

        context = get_current_context()
        registration = _registration(context)
        if not registration:  # register failed: the run must fail too, whatever was skipped
            raise AirflowFailException("the request was not registered (see the register task)")
        if registration.get("action") != "run":
            raise AirflowSkipException("nothing to verify")
        request_id = registration["request_id"]
        runner = _runner(context)
        request = runner.request(request_id)
        if request.mode != "execute":
            raise AirflowSkipException("preview: nothing to verify")
        if context["ti"].xcom_pull(task_ids="plan") is None:
            if request.state != "failed":
                runner.fail(request, None, "planning did not finish; nothing was verified")
            rq.release(request_id)
            raise AirflowFailException(f"request {request_id}: planning did not finish")
        try:
            return runner.verify(request_id)
        except rq.RequestIncomplete as exc:
            raise AirflowFailException(str(exc)) from None

    @task(execution_timeout=timedelta(minutes=10))
    def certificate(verified: dict[str, Any]) -> dict[str, Any]:
        """Sign and store the certificate; the request is ``completed`` once it is stored."""
        from include.retention import certificates
        from include.retention.requests import legacy as rq
        from include.retention.airflow_context import RunRef
        from include.retention.crypto import RetentionCrypto

        context = get_current_context()
        request_id = verified["request_id"]
        try:
            stored = certificates.issue(POLICY, request_id, keys=RetentionCrypto.from_connection(),
                                        run=RunRef.from_context(context),
                                        verified_at=datetime.fromisoformat(verified["verified_at"]))
        except Exception as exc:
            ti = context["ti"]
            if ti.try_number > (ti.task.retries or 0):  # the last attempt: say so in the ledger
                rq.transition(request_id, "failed", run_id=str(context["run_id"]), failed_step="certificate",
                              error=f"the certificate could not be stored: {type(exc).__name__}", release=True)
            raise
        doc = stored.document["certificate"]
        return {"request_id": request_id, "certificate_id": stored.certificate_id,
                "cos": f"s3://{stored.cos_bucket}/{stored.cos_key}", "signature": stored.signature,
                "records_deleted": doc["outcome"]["records_deleted"]}

    @task(execution_timeout=timedelta(minutes=5))
    def existing_certificate() -> dict[str, Any]:
        """For a completed request submitted again: report its certificate."""
        from airflow.sdk.exceptions import AirflowSkipException

        from include.retention import certificates

        registration = _registration(get_current_context())
        if not registration or registration.get("action") != "certificate":
            raise AirflowSkipException("not a completed request")
        stored = certificates.load(registration["request_id"])
        if stored is None:
            raise RuntimeError(f"request {registration['request_id']} is completed but has no certificate")
        return {"request_id": stored.request_id, "certificate_id": stored.certificate_id,
                "cos": f"s3://{stored.cos_bucket}/{stored.cos_key}", "signature": stored.signature}

    registration = register()
    planned = plan(registration)
    checked = verify()
    for store in STORE_ORDER:
        purge_task(store)(planned) >> checked
    certificate(checked)
    registration >> existing_certificate()


deletion_requests()
