"""Taking a request in: the one place that creates a request in the ledger.

:func:`submit` validates the conf *before anything is deleted* and records the request as
``received``, or as ``rejected`` with every reason. The ``reference`` (the ticket id) is the
idempotency key: the same reference again is the same request (a retry), never a second one.
No raw subject id is ever written: the ledger keeps a keyed hash and a Fernet token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Mapping

from include.retention.facts import LegalHold
from include.retention.ledger.db import LEDGER_CONN_ID, plain_cursor
from include.retention.ledger.holds import list_holds
from include.retention.ledger.requests import (
    Request,
    find_by_reference,
    get_request,
    insert_request,
    new_request_id,
    promote_to_execute,
    record_event,
)
from include.retention.policy import Policy
from include.retention.requests.validation import RequestRejected, due_at_for, parse_received_at, validate

if TYPE_CHECKING:
    from include.retention.crypto import RetentionCrypto

log = logging.getLogger(__name__)

_NO_SUCH_TABLE, _NO_SUCH_COLUMN = 1146, 1054  # MySQL error codes

#: The contact center's own database, where its tenants are listed.
MYSQL_CONN_ID = "retention_mysql"


class RequestConflict(ValueError):
    """A reference already names a different request."""


@dataclass(frozen=True)
class Submission:
    """What :func:`submit` did: ``new``, ``duplicate`` (same reference again), ``rejected``."""

    request: Request
    outcome: str
    message: str


def submit(
    policy: Policy,
    conf: Mapping[str, Any],
    *,
    run_after: datetime,
    run_id: str,
    crypto: RetentionCrypto,
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
    exists = tenant_exists or (lambda tenant: tenant_in_contact_center(policy, tenant))
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
        return _same_request(policy, existing, conf, run_after=run_after, run_id=run_id, crypto=crypto,
                             tenant_exists=exists, conn_id=conn_id)

    def holds(tenant: str) -> list[LegalHold]:
        return list_holds(tenant_id=tenant, conn_id=conn_id)

    try:
        valid = validate(policy, conf, run_after=run_after, tenant_exists=exists, active_holds=holds,
                         subject_hash=crypto.subject_hash)
    except RequestRejected as rejection:
        return _record_rejection(policy, conf, rejection, run_after=run_after, run_id=run_id, crypto=crypto,
                                 conn_id=conn_id)
    subject_hash = subject_enc = None
    if valid.subject_type and valid.subject_id:
        subject_hash = crypto.subject_hash(valid.tenant_id, valid.subject_type, valid.subject_id)
        subject_enc = crypto.encrypt_subject(valid.subject_id)
    request_id = new_request_id(valid.request_type, valid.received_at)
    inserted = insert_request(
        request_id, reference=valid.reference, request_type=valid.request_type, tenant_id=valid.tenant_id,
        subject_type=valid.subject_type, subject_hash=subject_hash, subject_enc=subject_enc,
        categories=valid.categories, received_at=valid.received_at, due_at=valid.due_at, state="received",
        requested_by=valid.requested_by, mode=valid.mode, error=None, run_id=run_id, conn_id=conn_id,
    )
    if not inserted:  # a concurrent submission of the same reference won the insert
        existing = find_by_reference(valid.reference, conn_id=conn_id)
        assert existing is not None
        return _same_request(policy, existing, conf, run_after=run_after, run_id=run_id, crypto=crypto,
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
    crypto: RetentionCrypto,
    conn_id: str,
) -> Submission:
    f = rejection.fields
    received_at = f.get("received_at") or run_after
    request_id = new_request_id(f.get("request_type"), received_at)
    reference = f.get("reference") or f"rejected:{request_id}"
    message = str(rejection)
    inserted = insert_request(
        request_id, reference=reference, request_type=f.get("request_type") or "invalid",
        tenant_id=f.get("tenant_id") or "", subject_type=f.get("subject_type"), subject_hash=None,
        subject_enc=None, categories=f.get("categories") or (), received_at=received_at,
        due_at=due_at_for(policy, received_at), state="rejected", requested_by=f.get("requested_by") or "unknown",
        mode=f.get("mode") or "preview", error=message[:4000], run_id=run_id, conn_id=conn_id,
    )
    if not inserted:  # raced with a valid submission of the same reference
        existing = find_by_reference(reference, conn_id=conn_id)
        assert existing is not None
        return _same_request(policy, existing, conf, run_after=run_after, run_id=run_id, crypto=crypto,
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
    crypto: RetentionCrypto,
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
        not isinstance(subject_id, str) or crypto.subject_hash(existing.tenant_id, subject_type, subject_id)
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
        promote_to_execute(existing.request_id, conn_id=conn_id)
        notes.append("promoted from preview to execute")
        request = get_request(existing.request_id, conn_id=conn_id) or existing
    record_event(existing.request_id, "resubmitted", run_id=run_id,
                 message="same reference submitted again" + (f": {'; '.join(notes)}" if notes else ""), conn_id=conn_id)
    log.info("Reference %s is request %s (%s): a duplicate submission, not a new request",
             existing.reference, existing.request_id, existing.state)
    return Submission(request, "duplicate", f"duplicate of request {existing.request_id} ({existing.state})"
                      + (f"; {'; '.join(notes)}" if notes else ""))


class TenantRegistryMissing(LookupError):
    """The policy's tenant registry table or column does not exist in the contact center's database."""


def tenant_in_contact_center(policy: Policy, tenant_id: str, *, mysql_conn_id: str = MYSQL_CONN_ID) -> bool:
    """Whether the tenant is in the contact center's tenant registry (the policy's ``tenant_registry``).

    :raises TenantRegistryMissing: the registry's table or column does not exist, with the fix.
    """
    import MySQLdb
    from airflow.providers.mysql.hooks.mysql import MySqlHook

    registry = policy.tenant_registry  # identifiers validated by the policy loader
    conn = MySqlHook(mysql_conn_id=mysql_conn_id).get_conn()
    try:
        cur = plain_cursor(conn)
        try:
            cur.execute(f"SELECT 1 FROM `{registry.table}` WHERE `{registry.column}` = %s LIMIT 1", (tenant_id,))
        except (MySQLdb.ProgrammingError, MySQLdb.OperationalError) as exc:
            if exc.args and exc.args[0] in (_NO_SUCH_TABLE, _NO_SUCH_COLUMN):
                raise TenantRegistryMissing(
                    f"the tenant registry {registry.table}({registry.column}) named by the policy's tenant_registry "
                    f"is not in the contact center's database ({exc.args[1]}): point tenant_registry at your "
                    "table of tenants and its id column, or create it"
                ) from None
            raise
        return cur.fetchone() is not None
    finally:
        conn.close()
