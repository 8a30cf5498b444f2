"""Termination and deletion requests: validation, the ledger rows, the state machine, the steps.

A request arrives as the conf of a ``deletion_requests`` DAG run (trigger form or REST API).
Everything here runs inside that run's tasks:

1. :func:`submit` validates the conf *before anything is deleted* and records the request in
   the ledger, or a ``rejected`` row with the reasons. The ``reference`` (the ticket id) is
   the idempotency key: the same reference again is the same request (a retry), never a
   second one.
2. :func:`claim` lets one run at a time work on a request (a lease that ends with the run's
   ``dagrun_timeout``).
3. :func:`plan_request` writes one step per (category, store target) and counts each; a
   subject's recording keys are resolved from MySQL here, before any row is deleted.
4. :func:`execute_store` purges one store's steps and verifies each at once; a step that is
   already ``verified`` is never touched again, so a rerun resumes where the last one failed.
5. :func:`verify_request` re-counts every step independently; all zero moves the request to
   ``verifying``, and the certificate (``certificates.py``) completes it.

States: ``received -> planned -> in_progress -> verifying -> completed``; ``failed`` can be
retried (a new run, or the SLA monitor's re-trigger); ``rejected`` ends a request.

No raw subject id is ever written to the ledger, a log line or an XCom: the ledger keeps a
keyed hash and, for the daily sweep of late-arriving data, a Fernet token.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

from include.retention.facts import LegalHold
from include.retention.ledger.db import LEDGER_CONN_ID, connect, plain_cursor
from include.retention.ledger.holds import list_holds
from include.retention.ledger.requests import (
    Event,
    Request,
    Step,
    StepSpec,
    _insert_request,
    claim,
    ensure_steps,
    find_by_reference,
    forget_closed_subjects,
    get_request,
    list_events,
    list_requests,
    list_steps,
    new_request_id,
    record_event,
    release,
    store_keys,
    stored_keys,
    transition,
    update_step,
)
from include.retention.timeutil import UTC, days_left, to_naive_utc, wall_clock
from include.retention.request_states import (
    KIND_EXPIRY,
    KIND_KEYS,
    KIND_PURGE,
    MODES,
    OPEN_STATES,
    STATES,
    STEP_FAILED,
    STEP_PENDING,
    STEP_RUNNING,
    STEP_VERIFIED,
    TERMINAL_STATES,
    TRANSITIONS,
    InvalidTransition,
    allowed_from,
    check_transition,
)
from include.retention.identifiers import IdentifierError
from include.retention.policy import (
    REQUEST_TYPES,
    CosTarget,
    ElasticsearchTarget,
    MySqlTarget,
    Policy,
    RedisTarget,
    Target,
)

if TYPE_CHECKING:
    from include.retention.airflow_context import RunRef
    from include.retention.crypto import RetentionCrypto
    from include.retention.stores.base import RetentionStore
    from include.retention.selections import Selection, SubjectSelection

log = logging.getLogger(__name__)

DAG_ID = "deletion_requests"
MYSQL_CONN_ID = "retention_mysql"

REFERENCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,127}$"
REQUESTED_BY_PATTERN = r"^[^\x00-\x1f\x7f]{1,128}$"
STORE_ORDER = ("mysql", "redis", "cos", "elasticsearch")


# --------------------------------------------------------------------------- errors


class RequestRejected(ValueError):
    """The request is refused before anything is deleted. The message never holds a subject id.

    :param problems: every reason, each one sentence that says how to fix it.
    :param fields: the fields that did validate (for the ``rejected`` ledger row).
    """

    def __init__(self, problems: Sequence[str], fields: Mapping[str, Any] | None = None) -> None:
        self.problems = tuple(problems)
        self.fields = dict(fields or {})
        super().__init__("request rejected: " + " ".join(f"({i}) {p}" for i, p in enumerate(self.problems, 1)))


class RequestConflict(ValueError):
    """A reference already names a different request."""


class RequestBlocked(RuntimeError):
    """A legal hold placed after the request was accepted stops its purges."""


class RequestStepFailed(RuntimeError):
    """One or more steps failed; the request is ``failed`` and a rerun resumes it."""


class RequestIncomplete(RuntimeError):
    """Verification found steps not verified or records left: the request is ``failed``."""


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class ValidRequest:
    """A request that passed validation. ``subject_id`` is personal data: never log it."""

    request_type: str
    tenant_id: str
    subject_type: str | None
    subject_id: str | None = field(repr=False)
    categories: tuple[str, ...]
    received_at: datetime
    due_at: datetime
    reference: str
    requested_by: str
    mode: str
    received_at_given: bool = False


@dataclass(frozen=True)
class Submission:
    """What :func:`submit` did: ``new``, ``duplicate`` (same reference again), ``rejected``."""

    request: Request
    outcome: str
    message: str


# --------------------------------------------------------------------------- time


def due_at_for(policy: Policy, received_at: datetime) -> datetime:
    return received_at + timedelta(days=policy.request_window_days)


# --------------------------------------------------------------------------- validation


def default_categories(policy: Policy, request_type: str, subject_type: str | None = None) -> tuple[str, ...]:
    """Every category the policy lets this request type reach (for a deletion: that holds
    data addressed by the subject type)."""
    out = []
    for name, category in policy.categories.items():
        if request_type not in category.requests:
            continue
        if request_type == "deletion" and not any(subject_type in t.subject_types for t in category.targets):
            continue
        out.append(name)
    return tuple(out)


def parse_received_at(value: object, run_after: datetime) -> tuple[datetime, bool]:
    """``received_at`` as an aware instant (default: the run's ``run_after``), and whether it was given."""
    if value is None or value == "":
        return run_after, False
    if isinstance(value, datetime):
        instant = value
    elif isinstance(value, str):
        try:
            instant = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"received_at {value!r:.40} is not an ISO 8601 date-time (e.g. 2026-11-01T09:30:00+08:00)"
            ) from None
    else:
        raise ValueError(f"received_at must be an ISO 8601 string, got {type(value).__name__}")
    if instant.tzinfo is None:
        raise ValueError("received_at must carry a time zone offset (e.g. 2026-11-01T09:30:00+08:00 or ...Z)")
    return instant.astimezone(UTC), True


def validate(
    policy: Policy,
    conf: Mapping[str, Any],
    *,
    run_after: datetime,
    tenant_exists: Callable[[str], bool],
    active_holds: Callable[[str], Sequence[LegalHold]],
    subject_hash: Callable[[str, str, str], str],
) -> ValidRequest:
    """Validate a request's conf; raise :class:`RequestRejected` with every problem found.

    Pure apart from the three look-ups it is given. Checks, in order: request type, mode,
    reference, requested_by, tenant (format, then existence), subject (none for a
    termination; for a deletion a known type and an id of its format, never a pattern),
    categories (known, and open to this request type), ``received_at`` (a time zone, not
    in the future), and last, when all else is valid, legal holds.
    """
    problems: list[str] = []
    fields: dict[str, Any] = {}
    if run_after.tzinfo is None:
        raise ValueError("run_after must be timezone-aware")

    request_type = conf.get("request_type")
    if request_type not in REQUEST_TYPES:
        problems.append(f"request_type must be one of {', '.join(REQUEST_TYPES)}, got {request_type!r:.40}.")
        request_type = None
    else:
        fields["request_type"] = request_type

    mode = conf.get("mode") or "preview"
    if mode not in MODES:
        problems.append(f"mode must be preview or execute, got {mode!r:.40}.")
    else:
        fields["mode"] = mode

    reference = conf.get("reference")
    if not isinstance(reference, str) or not re.fullmatch(REFERENCE_PATTERN, reference):
        problems.append(
            "reference (the ticket id, also the idempotency key) must be 1-128 letters, digits or . _ : / # -, "
            "starting with a letter or digit."
        )
    else:
        fields["reference"] = reference

    requested_by = conf.get("requested_by")
    if not isinstance(requested_by, str) or not requested_by.strip() or not re.fullmatch(
        REQUESTED_BY_PATTERN, requested_by
    ) or not requested_by.isprintable():  # also C1 controls and bidi overrides, which would disguise a certificate
        problems.append("requested_by (who asked) must be 1-128 printable characters.")
    else:
        fields["requested_by"] = requested_by.strip()

    tenant = None
    try:
        tenant = policy.validate_tenant_id(conf.get("tenant_id"))
    except IdentifierError as exc:
        problems.append(f"tenant_id: {exc}.")
    if tenant is not None:
        if not tenant_exists(tenant):
            problems.append(f"unknown tenant {tenant}: it is not in the contact center's tenants table.")
        else:
            fields["tenant_id"] = tenant

    subject_type, subject_id = conf.get("subject_type"), conf.get("subject_id")
    if request_type == "termination":
        if subject_type not in (None, "") or subject_id not in (None, ""):
            problems.append("a termination covers a whole tenant: leave subject_type and subject_id empty.")
        subject_type = subject_id = None
    elif request_type == "deletion":
        if subject_type in (None, "") or subject_id in (None, ""):
            problems.append("a deletion names one subject: give subject_type and subject_id.")
            subject_type = subject_id = None
        else:
            try:
                # never echoes the id: it may be a phone number
                subject_id = policy.validate_subject(subject_type, subject_id)
                fields["subject_type"] = subject_type
            except IdentifierError as exc:
                problems.append(f"subject_id: {exc}.")
                if subject_type in policy.subject_formats:
                    fields["subject_type"] = subject_type
                subject_id = None

    categories_raw = conf.get("categories")
    categories: tuple[str, ...] = ()
    if request_type is not None:
        if categories_raw in (None, [], ()):
            if request_type == "termination" or subject_type in policy.subject_formats:
                categories = default_categories(policy, request_type, subject_type)
        elif not isinstance(categories_raw, (list, tuple)) or not all(isinstance(c, str) for c in categories_raw):
            problems.append("categories must be a list of category names.")
        else:
            chosen: list[str] = []
            for name in dict.fromkeys(categories_raw):
                if name not in policy.categories:
                    problems.append(f"unknown category {name!r:.40}; the policy has {', '.join(policy.categories)}.")
                    continue
                category = policy.categories[name]
                if request_type not in category.requests:
                    allowed = ", ".join(sorted(category.requests)) or "none"
                    problems.append(
                        f"category {name} takes no {request_type} requests (the policy allows: {allowed})"
                        + ("; configuration data has no per-subject deletion." if request_type == "deletion" else ".")
                    )
                    continue
                if request_type == "deletion" and subject_type in policy.subject_formats and not any(
                    subject_type in t.subject_types for t in category.targets
                ):
                    problems.append(f"category {name} holds no data addressed by {subject_type}.")
                    continue
                chosen.append(name)
            categories = tuple(chosen)
        if not categories and not problems:
            problems.append(f"no category of the policy takes this {request_type} request.")
    fields["categories"] = categories

    try:
        received_at, given = parse_received_at(conf.get("received_at"), run_after)
        if received_at > run_after:
            problems.append(
                f"received_at {received_at.isoformat()} is in the future (the run started {run_after.isoformat()})."
            )
            received_at = run_after
        fields["received_at"] = received_at
    except ValueError as exc:
        problems.append(f"{exc}.")
        received_at, given = run_after, False

    if not problems and tenant is not None:
        for hold in active_holds(tenant):
            if request_type == "termination":
                scope = "the tenant" if hold.whole_tenant else f"a {hold.subject_type} of the tenant"
                problems.append(
                    f"legal hold #{hold.id} is active on {scope}: a termination would delete held data. "
                    "It is refused; submit it again under a new reference once the hold is released."
                )
            elif hold.whole_tenant or (
                subject_type == hold.subject_type and subject_id is not None
                and hold.subject_hash == subject_hash(tenant, str(subject_type), subject_id)
            ):
                problems.append(
                    f"legal hold #{hold.id} is active on {'the tenant' if hold.whole_tenant else 'this subject'}: "
                    "the deletion is refused; submit it again under a new reference once the hold is released."
                )

    if problems:
        raise RequestRejected(problems, fields)
    assert request_type is not None and tenant is not None
    return ValidRequest(
        request_type=str(request_type),
        tenant_id=tenant,
        subject_type=str(subject_type) if subject_type else None,
        subject_id=subject_id,
        categories=categories,
        received_at=received_at,
        due_at=due_at_for(policy, received_at),
        reference=str(reference),
        requested_by=str(fields["requested_by"]),
        mode=str(mode),
        received_at_given=given,
    )


def submit(
    policy: Policy,
    conf: Mapping[str, Any],
    *,
    run_after: datetime,
    run_id: str,
    keys: RetentionCrypto,
    tenant_exists: Callable[[str], bool] | None = None,
    conn_id: str = LEDGER_CONN_ID,
) -> Submission:
    """Validate and record a request, or recognise it as one already recorded.

    - A new reference: validated; recorded as ``received``, or as ``rejected`` with every
      reason (the run then fails with the same message).
    - A known reference: the same request. Its conf must name the same type, tenant, subject
      and categories (else :class:`RequestConflict`); the first ``received_at`` stands. A
      ``preview`` request submitted again with ``mode: execute`` is promoted to execute.
    - ``resume: true`` with a known reference: the ledger's request, whatever else the conf
      holds (the SLA monitor re-triggers failed and stalled requests this way, so that no
      subject id travels in its conf).
    """
    exists = tenant_exists or (lambda tenant: tenant_in_contact_center(tenant))
    reference = conf.get("reference")
    existing = find_by_reference(reference, conn_id=conn_id) if isinstance(reference, str) else None
    if conf.get("resume"):
        if existing is None:
            raise LookupError(f"resume: no request has the reference {reference!r:.130}")
        if conf.get("tenant_id") not in (None, existing.tenant_id) or conf.get("request_type") not in (
            None, existing.request_type
        ):
            raise RequestConflict(f"resume: reference {existing.reference} names request {existing.request_id} "
                                  "of another tenant or type")
        if existing.state == "rejected":
            return Submission(existing, "rejected", f"request {existing.request_id} was rejected; nothing to resume")
        record_event(existing.request_id, "resubmitted", run_id=run_id, message="resumed", conn_id=conn_id)
        return Submission(existing, "duplicate", f"resuming request {existing.request_id} ({existing.state})")
    if existing is not None:
        return _same_request(policy, existing, conf, run_after=run_after, run_id=run_id, keys=keys,
                             tenant_exists=exists, conn_id=conn_id)

    def holds(tenant: str) -> list[LegalHold]:
        return list_holds(tenant_id=tenant, conn_id=conn_id)

    try:
        valid = validate(policy, conf, run_after=run_after, tenant_exists=exists, active_holds=holds,
                         subject_hash=keys.subject_hash)
    except RequestRejected as rejection:
        return _record_rejection(policy, conf, rejection, run_after=run_after, run_id=run_id, keys=keys,
                                 conn_id=conn_id)
    subject_hash = subject_enc = None
    if valid.subject_type and valid.subject_id:
        subject_hash = keys.subject_hash(valid.tenant_id, valid.subject_type, valid.subject_id)
        subject_enc = keys.encrypt_subject(valid.subject_id)
    request_id = new_request_id(valid.request_type, valid.received_at)
    inserted = _insert_request(
        request_id, reference=valid.reference, request_type=valid.request_type, tenant_id=valid.tenant_id,
        subject_type=valid.subject_type, subject_hash=subject_hash, subject_enc=subject_enc,
        categories=valid.categories, received_at=valid.received_at, due_at=valid.due_at, state="received",
        requested_by=valid.requested_by, mode=valid.mode, error=None, run_id=run_id, conn_id=conn_id,
    )
    if not inserted:  # a concurrent submission of the same reference won the insert
        existing = find_by_reference(valid.reference, conn_id=conn_id)
        assert existing is not None
        return _same_request(policy, existing, conf, run_after=run_after, run_id=run_id, keys=keys,
                             tenant_exists=exists, conn_id=conn_id)
    request = get_request(request_id, conn_id=conn_id)
    assert request is not None
    log.info("Request %s (%s, tenant %s, %s) received at %s, due %s", request_id, valid.request_type,
             valid.tenant_id, valid.mode, valid.received_at.isoformat(), valid.due_at.isoformat())
    return Submission(request, "new", f"{valid.request_type} request {request_id} received, due {valid.due_at.isoformat()}")


def _record_rejection(
    policy: Policy,
    conf: Mapping[str, Any],
    rejection: RequestRejected,
    *,
    run_after: datetime,
    run_id: str,
    keys: RetentionCrypto,
    conn_id: str,
) -> Submission:
    f = rejection.fields
    received_at = f.get("received_at") or run_after
    request_id = new_request_id(f.get("request_type"), received_at)
    reference = f.get("reference") or f"rejected:{request_id}"
    message = str(rejection)
    inserted = _insert_request(
        request_id, reference=reference, request_type=f.get("request_type") or "invalid",
        tenant_id=f.get("tenant_id") or "", subject_type=f.get("subject_type"), subject_hash=None,
        subject_enc=None, categories=f.get("categories") or (), received_at=received_at,
        due_at=due_at_for(policy, received_at), state="rejected", requested_by=f.get("requested_by") or "unknown",
        mode=f.get("mode") or "preview", error=message[:4000], run_id=run_id, conn_id=conn_id,
    )
    if not inserted:  # raced with a valid submission of the same reference
        existing = find_by_reference(reference, conn_id=conn_id)
        assert existing is not None
        return _same_request(policy, existing, conf, run_after=run_after, run_id=run_id, keys=keys,
                             tenant_exists=lambda _t: True, conn_id=conn_id)
    request = get_request(request_id, conn_id=conn_id)
    assert request is not None
    log.warning("Request %s rejected: %s", request_id, message)
    return Submission(request, "rejected", message)


def _same_request(
    policy: Policy,
    existing: Request,
    conf: Mapping[str, Any],
    *,
    run_after: datetime,
    run_id: str,
    keys: RetentionCrypto,
    tenant_exists: Callable[[str], bool],
    conn_id: str,
) -> Submission:
    """The reference is known: check the conf names the same request, then return it."""
    if existing.state == "rejected":
        record_event(existing.request_id, "resubmitted", run_id=run_id, message="refused again: rejected",
                     conn_id=conn_id)
        return Submission(existing, "rejected",
                          f"reference {existing.reference} was rejected ({existing.error}); a rejected request "
                          "stays rejected: correct it and submit it under a new reference")
    differences: list[str] = []
    if conf.get("request_type") != existing.request_type:
        differences.append("request_type")
    if str(conf.get("tenant_id")) != existing.tenant_id:
        differences.append("tenant_id")
    subject_type, subject_id = conf.get("subject_type") or None, conf.get("subject_id") or None
    if (subject_type or None) != existing.subject_type:
        differences.append("subject_type")
    elif subject_type and (
        not isinstance(subject_id, str) or keys.subject_hash(existing.tenant_id, subject_type, subject_id)
        != existing.subject_hash
    ):
        differences.append("subject_id")
    wanted = conf.get("categories") or None
    if wanted is not None and sorted(set(wanted)) != sorted(existing.categories):
        differences.append("categories")
    if differences:
        message = (f"reference {existing.reference} already names request {existing.request_id}, which differs in "
                   f"{', '.join(differences)}; one reference is one request: use a new reference for a new request")
        record_event(existing.request_id, "conflict", run_id=run_id, message=message, conn_id=conn_id)
        raise RequestConflict(message)
    notes = []
    if conf.get("received_at"):
        try:
            given, _ = parse_received_at(conf.get("received_at"), run_after)
            if given != existing.received_at:
                notes.append(f"received_at of the first submission ({existing.received_at.isoformat()}) stands")
        except ValueError:
            notes.append("the received_at given is not valid; the first submission's stands")
    request = existing
    if conf.get("mode") == "execute" and existing.mode == "preview":
        with connect(conn_id) as conn:
            cur = plain_cursor(conn)
            cur.execute("UPDATE requests SET mode = 'execute', updated_at = %s WHERE request_id = %s AND mode = 'preview'",
                        (to_naive_utc(wall_clock()), existing.request_id))
        notes.append("promoted from preview to execute")
        request = get_request(existing.request_id, conn_id=conn_id) or existing
    record_event(existing.request_id, "resubmitted", run_id=run_id,
                 message="same reference submitted again" + (f": {'; '.join(notes)}" if notes else ""), conn_id=conn_id)
    log.info("Reference %s is request %s (%s): a duplicate submission, not a new request",
             existing.reference, existing.request_id, existing.state)
    return Submission(request, "duplicate", f"duplicate of request {existing.request_id} ({existing.state})"
                      + (f"; {'; '.join(notes)}" if notes else ""))


def tenant_in_contact_center(tenant_id: str, *, mysql_conn_id: str = MYSQL_CONN_ID) -> bool:
    """Whether the tenant exists in the contact center's ``tenants`` table."""
    from airflow.providers.mysql.hooks.mysql import MySqlHook

    conn = MySqlHook(mysql_conn_id=mysql_conn_id).get_conn()
    try:
        cur = plain_cursor(conn)
        cur.execute("SELECT 1 FROM tenants WHERE tenant_id = %s LIMIT 1", (tenant_id,))
        return cur.fetchone() is not None
    finally:
        conn.close()


# --------------------------------------------------------------------------- steps (pure)


def _location(target: Target, tenant: str, subject_type: str | None) -> str:
    """Where a step deletes, for people: rendered with the tenant, never with a subject id."""
    subject = "the subject" if subject_type else None
    if isinstance(target, MySqlTarget):
        where = f"{target.tenant_column} = {tenant}"
        if subject_type:
            where += f" and {target.subject_columns[subject_type]} = {subject}"
        return f"MySQL table {target.table} ({where})"
    if isinstance(target, RedisTarget):
        assert target.key is not None
        return f"Redis keys {target.key.text.replace('{tenant}', tenant)}*"
    if isinstance(target, CosTarget):
        assert target.prefix is not None
        return f"COS objects under {target.prefix.text.replace('{tenant}', tenant)}"
    if isinstance(target, ElasticsearchTarget):
        assert target.index is not None
        where = f" (documents with {target.subject_fields[subject_type]} = {subject})" if subject_type else ""
        return f"Elasticsearch indices {target.index.text.replace('{tenant}', tenant)}{where}"
    return target.qualified_name


def plan_steps(
    policy: Policy, request_type: str, tenant: str, subject_type: str | None, categories: Iterable[str]
) -> tuple[list[StepSpec], list[str]]:
    """The steps a request takes, in policy order, and notes on targets it does not reach.

    A termination purges every target of each category, tenant-wide. A deletion purges the
    subject in each target that addresses its type; a COS target whose keys live in a MySQL
    column (recordings) gets the keys that column holds for the subject; a dated target that
    cannot address the subject (backups) gets an ``expiry`` step.
    """
    steps: list[StepSpec] = []
    notes: list[str] = []
    for name in categories:
        category = policy.category(name)
        for target in category.targets:
            if request_type == "termination":
                steps.append(StepSpec(name, target.name, target.store, KIND_PURGE, _location(target, tenant, None)))
                continue
            assert subject_type is not None
            if isinstance(target, CosTarget) and target.subject_keys_from and subject_type in target.subject_types_via:
                source = policy.target(f"{name}.{target.subject_keys_from.target}")
                steps.append(StepSpec(
                    name, target.name, target.store, KIND_KEYS,
                    _location(target, tenant, None) + f" referenced by {source.name}.{target.subject_keys_from.column}",
                    source=source.name, column=target.subject_keys_from.column,
                ))
            elif subject_type in target.subject_types:
                steps.append(StepSpec(name, target.name, target.store, KIND_PURGE,
                                      _location(target, tenant, subject_type)))
            elif is_backup_target(target):
                steps.append(StepSpec(name, target.name, target.store, KIND_EXPIRY,
                                      _location(target, tenant, None) + " (backups)"))
            else:
                notes.append(f"{target.qualified_name} holds no data addressed by {subject_type}")
    return steps, notes


def is_backup_target(target: Target) -> bool:
    """A dated COS target kept for days that names no subject: backups, which expire by date."""
    return (isinstance(target, CosTarget) and target.is_dated and target.retention.days is not None
            and not target.subject_types)


def backup_expiry(target: CosTarget, day: date, tz: tzinfo) -> datetime:
    """When the daily purge deletes the ``day`` unit of a day-retained target: the first
    midnight (policy zone) whose cut-off (``N`` days back) is at or after the unit's end."""
    from include.retention.timeutil import start_of_day

    assert target.retention.days is not None
    return start_of_day(day + timedelta(days=1 + target.retention.days), tz)


def backup_days_to_purge(target: CosTarget, last_day: date, due_at: datetime, tz: tzinfo) -> list[date]:
    """Days up to ``last_day`` whose backups would outlive ``due_at``, oldest first."""
    out: list[date] = []
    day = last_day
    while backup_expiry(target, day, tz) > due_at:
        out.append(day)
        day -= timedelta(days=1)
    return sorted(out)


# --------------------------------------------------------------------------- carrying it out


@dataclass
class Runner:
    """Carries out one request inside one run: plan, purge per store, verify.

    :param run: the Airflow run and task doing the work (for the audit and the ledger).
    :param run_after: the run's instant; decisions use it, never the worker's clock.
    :param stores: store back ends by name (tests pass their own); built lazily otherwise.
    """

    policy: Policy
    keys: RetentionCrypto
    run: RunRef
    run_after: datetime
    conn_id: str = LEDGER_CONN_ID
    stores: dict[str, RetentionStore] = field(default_factory=dict)  # type: ignore[type-arg]

    # ------------------------------------------------------------------ helpers

    def store(self, name: str) -> RetentionStore:  # type: ignore[type-arg]
        if name not in self.stores:
            from include.retention.stores import store_for

            self.stores[name] = store_for(name, self.policy.timezone)
        return self.stores[name]

    def request(self, request_id: str) -> Request:
        request = get_request(request_id, conn_id=self.conn_id)
        if request is None:
            raise LookupError(f"no request {request_id} in the ledger")
        return request

    def specs(self, request: Request) -> tuple[list[StepSpec], list[str]]:
        return plan_steps(self.policy, request.request_type, request.tenant_id, request.subject_type,
                          request.categories)

    def selection(self, request: Request) -> Selection:
        from include.retention.selections import SubjectSelection, TenantSelection

        if request.request_type == "termination":
            return TenantSelection(request.tenant_id)
        if not request.subject_enc or not request.subject_type or not request.subject_hash:
            raise LookupError(f"request {request.request_id} no longer holds its subject (window closed?)")
        subject_id = self.keys.decrypt_subject(request.subject_enc)
        if self.keys.subject_hash(request.tenant_id, request.subject_type, subject_id) != request.subject_hash:
            raise ValueError(f"request {request.request_id}: the subject token does not match its hash")
        # Records that also name another held subject of the tenant stay (a hold wins over an
        # erasure); a hold on this subject itself blocks the request (blocking_holds).
        others_held = frozenset(
            (hold.tenant_id, hold.subject_type, held_id)
            for hold in list_holds(tenant_id=request.tenant_id, conn_id=self.conn_id)
            if hold.subject_type and hold.subject_hash != request.subject_hash
            and (held_id := hold.opened(self.keys).subject_id) is not None
        )
        return SubjectSelection(request.tenant_id, request.subject_type, subject_id, request.subject_hash, others_held)

    def held_keys(self, target: Target, selection: Selection) -> set[str]:
        """Object keys of the subject's rows that also name another held subject: they stay."""
        from include.retention.subject_keys import held_object_keys
        from include.retention.selections import SubjectSelection

        if not isinstance(selection, SubjectSelection) or not selection.exclude_subjects:
            return set()
        assert isinstance(target, CosTarget)
        return held_object_keys(self.policy, target, selection, self.store("mysql"))

    def step_keys(self, request: Request, qualified_name: str, held: set[str]) -> Iterator[str]:
        """The keys a keys step purges: those resolved at planning, less the held ones."""
        return (k for k in stored_keys(request.request_id, qualified_name, conn_id=self.conn_id) if k not in held)

    def withheld(self, target: Target, selection: Selection, remaining: int, held_keys: set[str]) -> int:
        """Records of the subject kept because they also name another held subject (0 without such holds)."""
        from include.retention.selections import SubjectSelection

        if not isinstance(selection, SubjectSelection) or not selection.exclude_subjects:
            return 0
        if isinstance(target, CosTarget) and target.subject_keys_from is not None:
            return int(self.store("cos").count_keys(target, selection.tenant, sorted(held_keys))) if held_keys else 0  # type: ignore[attr-defined]
        return self.store(target.store).count(target, selection.without_holds()) - remaining

    def blocking_holds(self, request: Request) -> list[LegalHold]:
        """Active holds that forbid this request's purges (checked again right before deleting)."""
        out = []
        for hold in list_holds(tenant_id=request.tenant_id, conn_id=self.conn_id):
            if request.request_type == "termination" or hold.whole_tenant or hold.subject_hash == request.subject_hash:
                out.append(hold)
        return out

    def fail(self, request: Request, step: str | None, message: str) -> Request:
        return transition(request.request_id, "failed", run_id=self.run.run_id, error=message[:4000],
                          failed_step=step, conn_id=self.conn_id)

    # ------------------------------------------------------------------ plan

    def plan(self, request_id: str) -> dict[str, Any]:
        """Write the steps, resolve object keys, count what each step would delete; ``planned``."""
        request = self.request(request_id)
        holds = self.blocking_holds(request)
        if holds:
            ids = ", ".join(f"#{h.id}" for h in holds)
            self.fail(request, None, f"blocked by legal hold {ids}: nothing was deleted; the request resumes when "
                                     "the hold is released")
            raise RequestBlocked(f"request {request_id} is blocked by legal hold {ids}; nothing was deleted")
        specs, notes = self.specs(request)
        ensure_steps(request_id, specs, conn_id=self.conn_id)
        steps = {s.qualified_name: s for s in list_steps(request_id, conn_id=self.conn_id)}
        selection = self.selection(request)
        out_steps = []
        try:
            for spec in specs:
                step = steps[spec.qualified_name]
                if step.state == STEP_VERIFIED:
                    out_steps.append({**step.as_dict(), "skipped": "verified earlier"})
                    continue
                planned = self._count(request, spec, selection, resolve=True)
                update_step(request_id, spec.qualified_name, planned=planned, conn_id=self.conn_id)
                out_steps.append({"step": spec.qualified_name, "store": spec.store, "kind": spec.kind,
                                  "location": spec.location, "planned": planned, "state": step.state})
        except Exception as exc:
            from include.retention.redaction import scrub

            message = scrub(f"planning failed: {type(exc).__name__}: {exc}", selection)
            self.fail(request, None, message + " (nothing was deleted)")
            raise
        transition(request_id, "planned", run_id=self.run.run_id, conn_id=self.conn_id,
                   message=f"{len(specs)} step(s) planned" + (" (preview: nothing is deleted)"
                                                               if request.mode == "preview" else ""))
        if request.mode == "preview":
            release(request_id, conn_id=self.conn_id)  # a preview run is done with the request here
        total = sum(s["planned"] or 0 for s in out_steps if "skipped" not in s)
        log.info("Request %s: %d step(s), %d record(s) to delete%s", request_id, len(specs), total,
                 " (preview)" if request.mode == "preview" else "")
        return {
            "request_id": request_id,
            "mode": request.mode,
            "request_type": request.request_type,
            "tenant_id": request.tenant_id,
            "subject_type": request.subject_type,
            "subject_hash": request.subject_hash,
            "due_at": request.due_at.isoformat(),
            "steps": out_steps,
            "planned_total": total,
            "not_applicable": notes,
            "stores": sorted({s.store for s in specs}, key=STORE_ORDER.index),
        }

    def _resolve_keys(self, request: Request, spec: StepSpec, selection: Selection) -> None:
        """Remember the object keys the subject's rows point at, before those rows are deleted."""
        from include.retention.selections import SubjectSelection

        target = self.policy.target(spec.qualified_name)
        source = self.policy.target(f"{spec.category}.{spec.source}")
        assert isinstance(target, CosTarget) and target.prefix is not None and isinstance(source, MySqlTarget)
        mysql = self.store("mysql")
        template, tenant = target.prefix, request.tenant_id
        bad = 0

        def good_keys() -> Iterator[str]:
            nonlocal bad
            # Every key of the subject, held calls' too: the held ones are left out at purge time,
            # so that they go on a rerun once the hold is released.
            everything = selection.without_holds() if isinstance(selection, SubjectSelection) else selection
            for value in mysql.fetch_column(source, everything, str(spec.column)):  # type: ignore[attr-defined]
                key = value.decode() if isinstance(value, bytes) else str(value)
                if not key:
                    continue
                values = template.parse(key)
                if values is None or values.get("tenant") != tenant:
                    bad += 1
                    continue
                yield key

        n = store_keys(request.request_id, spec.qualified_name, good_keys(), conn_id=self.conn_id)
        if bad:
            raise ValueError(
                f"{bad} key(s) in {source.qualified_name}.{spec.column} of this subject are not objects of tenant "
                f"{tenant} under {template.text}: correct those rows, then retry"
            )
        log.info("Request %s: %d object key(s) of %s resolved from %s", request.request_id, n,
                 spec.qualified_name, source.qualified_name)

    def _count(self, request: Request, spec: StepSpec, selection: Selection, *, resolve: bool) -> int:
        target = self.policy.target(spec.qualified_name)
        if spec.kind == KIND_KEYS:
            if resolve:
                self._resolve_keys(request, spec, selection)
            held = self.held_keys(target, selection)
            return self.store("cos").count_keys(  # type: ignore[attr-defined]
                target, request.tenant_id, self.step_keys(request, spec.qualified_name, held)
            )
        if spec.kind == KIND_EXPIRY:
            late = self._late_backups(request, target)
            return self.store("cos").count(target, late) if late is not None else 0
        return self.store(spec.store).count(target, selection)

    # ------------------------------------------------------------------ expiry (backups)

    def _expiry_units(self, request: Request, target: Target) -> tuple[datetime, list[str], list[date]]:
        """(when the backups holding the subject are gone, units to purge now, their days)."""
        assert isinstance(target, CosTarget) and target.prefix is not None
        from include.retention.timeutil import local_day

        tz = self.policy.timezone
        # Backups of days up to the run's day may hold the subject; later ones do not.
        last_day = local_day(self.run_after, tz)
        days = backup_days_to_purge(target, last_day, request.due_at, tz)
        first_kept = (days[0] if days else last_day + timedelta(days=1)) - timedelta(days=1)
        expire_by = backup_expiry(target, first_kept, tz)
        units = [target.prefix.render(tenant=request.tenant_id, date=d) for d in days]
        return expire_by, units, days

    def _late_backups(self, request: Request, target: Target, days: Sequence[date] | None = None) -> Selection | None:
        """The backups that would outlive the due date, as a selection of whole day units."""
        from include.retention.timeutil import start_of_day
        from include.retention.selections import ExpiredSelection

        assert isinstance(target, CosTarget) and target.prefix is not None
        if days is None:
            days = self._expiry_units(request, target)[2]
        if not days:
            return None
        units = tuple(target.prefix.render(tenant=request.tenant_id, date=d) for d in days)
        return ExpiredSelection(before=start_of_day(max(days) + timedelta(days=1), self.policy.timezone),
                                tenant=request.tenant_id, units=units)

    def _run_expiry(self, request: Request, target: Target, step: Step) -> tuple[int, int, str, dict[str, Any]]:
        tenant_holds = [h for h in list_holds(tenant_id=request.tenant_id, conn_id=self.conn_id)]
        if tenant_holds:
            ids = ", ".join(f"#{h.id}" for h in tenant_holds)
            raise RequestBlocked(
                f"backups of tenant {request.tenant_id} are kept whole while legal hold {ids} is active, so they "
                "do not expire; the request completes once the hold is released"
            )
        expire_by, _units, days = self._expiry_units(request, target)
        details: dict[str, Any] = {"backups_expire_by": expire_by.astimezone(UTC).isoformat(),
                                   "due_at": request.due_at.astimezone(UTC).isoformat(),
                                   "retention_days": target.retention.days}
        selection = self._late_backups(request, target, days)
        if selection is None:
            return 0, 0, "expires_by_date", details
        store = self.store("cos")
        result = self._audited_purge(target, selection, lambda: store.purge(target, selection),
                                     lambda: store.count(target, selection))
        remaining = store.verify(target, selection)
        details.update({"purged_backup_days": [days[0].isoformat(), days[-1].isoformat()],
                        "why": "these backups would have outlived the due date"})
        return result.deleted, remaining, "purge_late_backups", details

    # ------------------------------------------------------------------ purge

    def _audited_purge(
        self, target: Target, selection: Selection, purge: Callable[[], Any], matched: Callable[[], int]
    ) -> Any:
        from include.retention.ledger import audit

        return audit.audited_purge(purge, matched=matched, dry_run=False, run_id=self.run.run_id,
                                   dag_id=self.run.dag_id, task_id=self.run.task_id, target=target,
                                   selection=selection, ledger_conn_id=self.conn_id)

    def _run_step(self, request: Request, step: Step, selection: Selection) -> tuple[int, int, str, dict[str, Any]]:
        """Purge one step and re-count it at once: (deleted, remaining, method, details)."""
        target = self.policy.target(step.qualified_name)
        if step.kind == KIND_EXPIRY:
            return self._run_expiry(request, target, step)
        held_keys: set[str] = set()
        if step.kind == KIND_KEYS:
            cos = self.store("cos")
            held_keys = self.held_keys(target, selection)

            def keys() -> Iterator[str]:
                return self.step_keys(request, step.qualified_name, held_keys)

            result = self._audited_purge(target, selection,
                                         lambda: cos.purge_keys(target, request.tenant_id, keys()),  # type: ignore[attr-defined]
                                         lambda: cos.count_keys(target, request.tenant_id, keys()))  # type: ignore[attr-defined]
            remaining = cos.count_keys(target, request.tenant_id, keys())  # type: ignore[attr-defined]
            details: dict[str, Any] = {"keys": sum(1 for _ in keys())}
        else:
            store = self.store(step.store)
            result = self._audited_purge(target, selection, lambda: store.purge(target, selection),
                                         lambda: store.count(target, selection))
            remaining = store.verify(target, selection)
            details = {k: v for k, v in (result.details or {}).items() if k in ("indices", "partitions", "versioned")}
        withheld = self.withheld(target, selection, remaining, held_keys)
        if withheld:
            details["withheld_for_hold"] = withheld  # a count: the held subject is not named
        return result.deleted, remaining, result.method, details

    def execute_store(self, request_id: str, store: str) -> dict[str, Any]:
        """Purge and verify this store's steps that are not verified yet; raise if any fails."""
        from include.retention.redaction import scrub
        from include.retention.results import PartialPurgeError

        request = self.request(request_id)
        steps = [s for s in self.ordered_steps(request) if s.store == store]
        todo = [s for s in steps if s.state != STEP_VERIFIED]
        skipped = [s.qualified_name for s in steps if s.state == STEP_VERIFIED]
        if not todo:
            return {"store": store, "done": [], "skipped_verified": skipped}
        holds = self.blocking_holds(request)
        if holds:
            ids = ", ".join(f"#{h.id}" for h in holds)
            self.fail(request, todo[0].qualified_name, f"blocked by legal hold {ids}: nothing more was deleted")
            raise RequestBlocked(f"request {request_id} is blocked by legal hold {ids}")
        if request.state != "in_progress":
            request = transition(request_id, "in_progress", run_id=self.run.run_id, conn_id=self.conn_id)
        selection = self.selection(request)
        done, failures = [], []
        for step in todo:
            name = step.qualified_name
            update_step(request_id, name, state=STEP_RUNNING, run_id=self.run.run_id, add_attempt=True,
                        conn_id=self.conn_id)
            try:
                deleted, remaining, method, details = self._run_step(request, step, selection)
            except Exception as exc:  # noqa: BLE001 - recorded on the step, re-raised below
                partial = exc.deleted if isinstance(exc, PartialPurgeError) else 0
                message = scrub(f"{type(exc).__name__}: {exc}", selection)
                update_step(request_id, name, state=STEP_FAILED, error=message, add_deleted=partial,
                            conn_id=self.conn_id)
                record_event(request_id, "step_failed", run_id=self.run.run_id, message=f"{name}: {message}",
                             conn_id=self.conn_id)
                log.error("Request %s: step %s failed: %s", request_id, name, message)
                failures.append((name, message))
                continue
            state = STEP_VERIFIED if remaining == 0 else STEP_FAILED
            error = None if remaining == 0 else f"{remaining} record(s) remain after the purge"
            update_step(request_id, name, state=state, verified_remaining=remaining, method=method, error=error,
                        verified_at=wall_clock() if remaining == 0 else None, add_deleted=deleted,
                        details=details, conn_id=self.conn_id)
            log.info("Request %s: %s deleted %d, %d remain", request_id, name, deleted, remaining)
            done.append({"step": name, "deleted": deleted, "remaining": remaining, "method": method})
            if remaining:
                failures.append((name, str(error)))
        if failures:
            first, message = failures[0]
            self.fail(request, first, f"step {first} failed: {message}"
                      + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""))
            raise RequestStepFailed(
                f"request {request_id}: {len(failures)} step(s) of {store} failed, first {first}: {message}. "
                "Verified steps are kept; a rerun resumes the rest."
            )
        return {"store": store, "done": done, "skipped_verified": skipped}

    # ------------------------------------------------------------------ verify

    def ordered_steps(self, request: Request) -> list[Step]:
        """The request's steps in the policy's order."""
        order = {spec.qualified_name: i for i, spec in enumerate(self.specs(request)[0])}
        steps = list_steps(request.request_id, conn_id=self.conn_id)
        return sorted(steps, key=lambda s: (order.get(s.qualified_name, len(order)), s.qualified_name))

    def verify(self, request_id: str) -> dict[str, Any]:
        """Independent re-count of every step; all verified and zero: ``verifying``."""
        request = self.request(request_id)
        steps = self.ordered_steps(request)
        expected = {spec.qualified_name for spec in self.specs(request)[0]}
        missing = sorted(expected - {s.qualified_name for s in steps})
        if missing:
            message = f"step(s) never planned: {', '.join(missing)}"
            self.fail(request, missing[0], message)
            release(request_id, conn_id=self.conn_id)
            raise RequestIncomplete(f"request {request_id} failed: {message}. A rerun plans them.")
        unfinished = [s for s in steps if s.state != STEP_VERIFIED]
        if unfinished:
            failed = [s for s in unfinished if s.state == STEP_FAILED] or unfinished
            first = failed[0]
            message = (f"{len(unfinished)} step(s) not verified; first {first.qualified_name} ({first.state}"
                       + (f": {first.error}" if first.error else "") + ")")
            self.fail(request, first.qualified_name, message)
            release(request_id, conn_id=self.conn_id)
            raise RequestIncomplete(f"request {request_id} failed: {message}. A rerun resumes it.")
        transition(request_id, "verifying", run_id=self.run.run_id, conn_id=self.conn_id)
        selection = self.selection(request)
        checked, leftovers = [], []
        for step in steps:
            target = self.policy.target(step.qualified_name)
            if step.kind == KIND_EXPIRY:
                expire_by = datetime.fromisoformat(step.details["backups_expire_by"])
                remaining = 0 if expire_by <= request.due_at else 1
                purged = step.details.get("purged_backup_days")
                if purged:
                    first, last = (date.fromisoformat(d) for d in purged)
                    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
                    late = self._late_backups(request, target, days)
                    assert late is not None
                    remaining += self.store("cos").verify(target, late)
            elif step.kind == KIND_KEYS:
                remaining = self.store("cos").count_keys(  # type: ignore[attr-defined]
                    target, request.tenant_id,
                    self.step_keys(request, step.qualified_name, self.held_keys(target, selection)))
            else:
                remaining = self.store(step.store).verify(target, selection)
            checked.append({"step": step.qualified_name, "remaining": remaining})
            if remaining:
                leftovers.append(step.qualified_name)
                update_step(request_id, step.qualified_name, state=STEP_PENDING, verified_remaining=remaining,
                            error=f"{remaining} record(s) found at the final verification", conn_id=self.conn_id)
        if leftovers:
            message = f"final verification found records in {', '.join(leftovers)}"
            self.fail(request, leftovers[0], message)
            release(request_id, conn_id=self.conn_id)
            raise RequestIncomplete(f"request {request_id} failed: {message}; a rerun purges them")
        verified_at = wall_clock()
        record_event(request_id, "verified", run_id=self.run.run_id, conn_id=self.conn_id,
                     message=f"{len(steps)} step(s) re-counted: 0 records remain")
        return {"request_id": request_id, "verified_at": verified_at.isoformat(), "steps": checked}


# --------------------------------------------------------------------------- for the demo and tests


def run_request_via_dag_test(
    conf: Mapping[str, Any], *, run_after: datetime | None = None, dags_folder: str | None = None
) -> dict[str, Any]:
    """Process one request in-process with ``dag.test()`` and return its ledger outcome.

    Needs a migrated Airflow metadata DB (``airflow db migrate``) and the store connections
    as usual; the pools ``retention_<store>`` are created when missing. Returns the request's summary, its steps, the
    DAG run's state, and its certificate (signed JSON and Markdown) when it completed.
    """
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag
    from include.retention.pools import ensure_store_pools

    ensure_store_pools(only_missing=True)  # dag.test() waits forever on a task whose pool does not exist
    folder = dags_folder or str(Path(__file__).resolve().parents[2] / "dags" / "deletion_requests.py")
    bag = DagBag(dag_folder=folder)
    if DAG_ID not in bag.dags:
        raise RuntimeError(f"{DAG_ID} did not load: {bag.import_errors}")
    dag = bag.dags[DAG_ID]
    # dag.test() of Airflow 3.3.2 fails at the end of a successful run of a DAG with a
    # Deadline Alert (it looks the alert up by an id only the DAG processor assigns); the
    # scheduler is unaffected. In-process runs go without it.
    dag.deadline = None
    kwargs: dict[str, Any] = {"logical_date": None, "run_conf": dict(conf)}
    if run_after is not None:
        kwargs["run_after"] = run_after
    dag_run = dag.test(**kwargs)
    out: dict[str, Any] = {"run_id": dag_run.run_id, "dag_run_state": str(dag_run.state)}
    reference = conf.get("reference")
    request = find_by_reference(reference) if isinstance(reference, str) else None
    if request is None:
        out["request"] = None
        return out
    out["request"] = request.summary()
    out["steps"] = [s.as_dict() for s in list_steps(request.request_id)]
    from include.retention import certificates

    stored = certificates.load(request.request_id)
    out["certificate"] = stored.document if stored else None
    out["markdown"] = certificates.render_markdown(stored.document) if stored else None
    return out
