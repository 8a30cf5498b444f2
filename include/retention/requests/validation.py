"""Whether a request may be accepted: its conf checked against the policy, before anything is deleted.

Pure apart from the three look-ups :func:`validate` is given (does the tenant exist, its
active legal holds, the subject's keyed hash): no I/O of its own. A refusal lists every
problem found, each one sentence that says how to fix it, and never echoes a subject id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping, Sequence

from include.retention.facts import LegalHold
from include.retention.identifiers import IdentifierError
from include.retention.policy import REQUEST_TYPES, Policy
from include.retention.request_states import MODES
from include.retention.timeutil import UTC

REFERENCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,127}$"
REQUESTED_BY_PATTERN = r"^[^\x00-\x1f\x7f]{1,128}$"


class RequestRejected(ValueError):
    """The request is refused before anything is deleted. The message never holds a subject id.

    :param problems: every reason, each one sentence that says how to fix it.
    :param fields: the fields that did validate (for the ``rejected`` ledger row).
    """

    def __init__(self, problems: Sequence[str], fields: Mapping[str, Any] | None = None) -> None:
        self.problems = tuple(problems)
        self.fields = dict(fields or {})
        super().__init__("request rejected: " + " ".join(f"({i}) {p}" for i, p in enumerate(self.problems, 1)))


@dataclass(frozen=True)
class ValidRequest:
    """A request that passed validation, its fields in the order :func:`validate` checks them.
    ``subject_id`` is personal data: never log it."""

    request_type: str
    mode: str
    reference: str
    requested_by: str
    tenant_id: str
    subject_type: str | None
    subject_id: str | None = field(repr=False)
    categories: tuple[str, ...]
    received_at: datetime
    due_at: datetime
    received_at_given: bool = False


def subject_type_pattern(policy: Policy) -> str:
    """A regex of exactly the policy's subject type names (for the trigger form)."""
    return "^(?:" + "|".join(re.escape(name) for name in policy.subject_formats) + ")$"


def subject_id_pattern(policy: Policy) -> str:
    """A regex that admits an id of any of the policy's subject formats, and nothing else.

    The trigger refuses what no format admits (``*``, a space, a quote) before a run exists;
    which format applies depends on the subject type, so :func:`validate` checks that at intake.
    """
    return "^(?:" + "|".join(f"(?:{fmt.body})" for fmt in policy.subject_formats.values()) + ")$"


def category_labels(policy: Policy) -> dict[str, str]:
    """Each category's name with what it holds and which request types reach it (the form's labels)."""
    return {
        name: f"{name}: {category.description}" + ("" if "deletion" in category.requests else " (terminations only)")
        for name, category in policy.categories.items()
    }


def due_at_for(policy: Policy, received_at: datetime) -> datetime:
    """When a request received at ``received_at`` is due: the policy's request window later."""
    return received_at + timedelta(days=policy.request_window_days)


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
