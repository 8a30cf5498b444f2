"""
### Termination and deletion requests (on demand)

One run carries out one request: the **termination** of a tenant (every category it has, in
every store: MySQL rows, Redis keys, recordings, its COS backups and its Elasticsearch
indices), or the **deletion** of one subject (an agent, a phone number) in every category
the policy lets a deletion reach. Each request is due 30 days after it was received.

**Submit** with *Trigger* (fill request type, tenant, reference and requested by; for a
deletion also subject type and id; each field explains itself) or the REST API
(`POST /api/v2/dags/deletion_requests/dagRuns` with `{"logical_date": null, "conf": {...}}`,
see docs/REQUESTS.md). Start with `mode: preview`: it plans and counts, and deletes nothing.
Then submit the same `reference` with `mode: execute`. A malformed field is refused at
Trigger, above the form; a request the policy refuses fails its run with the reason as the
run's note. Then find it under **Retention** (times there are in the policy's zone, the
run pages' in the UI's, UTC by default).

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

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from include.retention.airflow_context import default_args
from include.retention.policy import STORES, load_policy
from include.retention.request_states import MODES, REQUESTS_DAG_ID
from include.retention.requests.approval import RequestApproval
from include.retention.requests.validation import (
    REFERENCE_PATTERN,
    category_labels,
    subject_id_pattern,
    subject_type_pattern,
)

POLICY = load_policy()  # the one file read at parse time: the policy next to the code
RUN_TIMEOUT = timedelta(hours=6)  # also the lease a run holds on its request

#: The trigger form. Airflow marks a field required when its type has no "null" (and a Param
#: without a default must be filled); 3.3's form checks required fields before Trigger, the
#: api-server checks every pattern at Trigger (a 400 naming the field, no run), and the
#: register task checks the rest against the policy.
PARAMS = {
    "request_type": Param(
        type="string", enum=["termination", "deletion"], title="Request type",
        values_display={"termination": "termination: a whole tenant", "deletion": "deletion: one subject of a tenant"},
        description="termination: a whole tenant, every category. deletion: one subject of a tenant.",
    ),
    "tenant_id": Param(
        type="string", pattern=POLICY.tenant_format.pattern, minLength=1, title="Tenant id",
        description="The contact center's application id (SdkAppId), digits only, no wildcards; it must exist.",
    ),
    "subject_type": Param(
        None, type=["null", "string"], pattern=subject_type_pattern(POLICY), examples=list(POLICY.subject_formats),
        title="Subject type",
        description=f"For a deletion: {' or '.join(POLICY.subject_formats)}. Leave empty for a termination.",
    ),
    "subject_id": Param(
        None, type=["null", "string"], pattern=subject_id_pattern(POLICY), maxLength=128, title="Subject id",
        description="For a deletion: the exact id (E.164 such as +6581234567 for a phone number, the agent id "
                    "for an agent). No wildcards or patterns. Leave empty for a termination.",
    ),
    "categories": Param(
        [], type=["null", "array"], items={"type": "string", "enum": list(POLICY.categories)}, uniqueItems=True,
        examples=list(POLICY.categories), values_display=category_labels(POLICY), title="Categories",
        description="Empty: every category the policy lets this request type reach. Configuration data takes "
                    "no per-subject deletion.",
    ),
    "received_at": Param(
        None, type=["null", "string"], format="date-time", title="Received at",
        description="When the request was received; empty: now (the run's time). Never in the future; due "
                    f"{POLICY.request_window_days} days later. The picker uses the time zone the Airflow UI is set "
                    "to (UTC unless you chose another); in a JSON conf give an offset, e.g. "
                    "2026-11-01T09:30:00+08:00. The dashboard shows times in the policy's zone, "
                    f"{POLICY.timezone_name}.",
    ),
    "reference": Param(
        type="string", pattern=REFERENCE_PATTERN, minLength=1, maxLength=128, title="Reference",
        description="The ticket id. Also the idempotency key: the same reference again is the same request.",
    ),
    "requested_by": Param(
        type="string", minLength=1, maxLength=128, title="Requested by", description="Who asked (for the record).",
    ),
    "mode": Param(
        "preview", type="string", enum=list(MODES), title="Mode",
        values_display={"preview": "preview: plan and count, delete nothing", "execute": "execute: carry it out"},
        description="preview: plan and count, delete nothing. execute: carry the request out.",
    ),
    "resume": Param(
        False, type=["null", "boolean"], title="Resume (automation)", section="Automation: leave as it is",
        description="Resume the request with this reference from the ledger (a failed or stalled one); the "
                    "subject is taken from the ledger. Set by the SLA monitor when it re-triggers a request.",
    ),
}


@dag(
    dag_id=REQUESTS_DAG_ID,
    description="Termination and deletion requests: validate, purge every store, verify, certify",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2000, 1, 1, tz=POLICY.timezone_name),  # before any data: a run dated earlier would silently do nothing
    catchup=False,
    max_active_runs=4,  # independent requests run side by side; one request is held by one run
    dagrun_timeout=RUN_TIMEOUT,
    default_args=default_args(retry_delay=timedelta(minutes=2), max_retry_delay=timedelta(minutes=30),
                              execution_timeout=timedelta(hours=1)),
    tags=["retention", "requests", "termination", "deletion"],
    params=PARAMS,
    # No Deadline Alert: in Airflow 3.3.2 a DAG with one fails every `airflow dags test` at the
    # end of a successful run, and a QUEUED_AT deadline breaks Clear (apache/airflow#70368).
    # A deadline watches one run; the 30-day window is the SLA monitor's (T-7, T-0, re-triggers
    # of failed and stalled requests), and dagrun_timeout ends a run that hangs.
)
def deletion_requests() -> None:
    @task(execution_timeout=timedelta(minutes=10))
    def register() -> dict[str, Any]:
        """Validate and record the request (or find it by its reference); claim it for this run."""
        from include.retention.requests import tasks

        return tasks.register(POLICY, get_current_context(), lease=RUN_TIMEOUT)

    @task(execution_timeout=timedelta(minutes=30))
    def plan(registration: dict[str, Any]) -> dict[str, Any]:
        """One step per category and store target, each counted; nothing is deleted here."""
        from include.retention.requests import tasks

        return tasks.plan(POLICY, registration, get_current_context())

    def purge_task(store: str) -> Any:
        @task(task_id=f"purge_{store}", pool=f"retention_{store}", execution_timeout=timedelta(hours=2))
        def purge(the_plan: dict[str, Any]) -> dict[str, Any]:
            """Purge and verify this store's steps that are not verified yet."""
            from include.retention.requests import tasks

            return tasks.purge(POLICY, store, the_plan, get_current_context())

        return purge

    @task(trigger_rule="all_done", execution_timeout=timedelta(hours=1))
    def verify() -> dict[str, Any]:
        """Independent re-count of every step. Runs whatever the purges did: it decides the state."""
        from include.retention.requests import tasks

        return tasks.verify(POLICY, get_current_context())

    @task(execution_timeout=timedelta(minutes=10))
    def certificate(verified: dict[str, Any]) -> dict[str, Any]:
        """Sign and store the certificate; the request is ``completed`` once it is stored."""
        from include.retention.requests import tasks

        return tasks.certificate(POLICY, verified, get_current_context())

    @task(execution_timeout=timedelta(minutes=5))
    def existing_certificate() -> dict[str, Any]:
        """For a completed request submitted again: report its certificate."""
        from include.retention.requests import tasks

        return tasks.existing_certificate(get_current_context())

    registration = register()
    planned = plan(registration)
    # Four eyes: waits for another Airflow user's approval when the policy's request_approval
    # names the request type (execute only); otherwise it completes at once.
    approved = RequestApproval(task_id="approve", policy=POLICY)
    planned >> approved
    checked = verify()
    for store in STORES:
        approved >> purge_task(store)(planned) >> checked
    certificate(checked)
    registration >> existing_certificate()


deletion_requests()
