"""The dashboard's view model: filters, where requests stand against their due date, purge
volumes on the policy's calendar, certificates, daily-DAG status, and their JSON. Pure: rows
in, values out; ``queries`` does the reading.

What the dashboard shows:

- **requests**: open termination and deletion requests (or those of one state), their
  tenant and reference, and the days left to ``due_at`` as a bar: green, amber from T-7
  (``policy.sla_warning_days``), red at the breach. Breached requests come first.
- **purges**: rows deleted per category per day (policy calendar) over the last 90 days,
  from ``purge_audit`` (real purges only; dry runs delete nothing).
- **daily DAGs**: the last run of each ``retention_<category>`` DAG and its recent failures.
- **certificates**: the requests' deletion certificates, to download.
- **coverage**: the last coverage run's totals and the items no policy target names (names,
  personal-data flags and counts; never a sampled value).

No subject id, subject hash or encrypted subject is ever shown: none is selected.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence

from include.retention.certificates.render import render_html, render_markdown
from include.retention.policy import Policy
from include.retention.reasons import describe_rule, describe_withheld
from include.retention.request_states import OPEN_STATES, STATES, TERMINAL_STATES
from include.retention.timeutil import UTC, days_left, from_naive_utc, local_day

if TYPE_CHECKING:
    from include.retention.ledger.certificates import CertificateListing
    from include.retention.ledger.coverage import CoverageItemRow, CoverageRun
    from include.retention.ledger.requests import Request

PURGE_WINDOW_DAYS = 90
FAILURE_WINDOW_DAYS = 30
MAX_FAILURES_SHOWN = 10
MAX_REQUESTS_SHOWN = 500
#: States after which a request is no longer open: the request flow's terminal states.
CLOSED_STATES = TERMINAL_STATES
#: The request states as the state filter lists them: the open ones in lifecycle order, then the closed ones.
KNOWN_STATES = OPEN_STATES + tuple(s for s in STATES if s not in OPEN_STATES)
STATE_OPEN = "open"
STATE_ALL = "all"
#: The default: open requests and those closed in the last RECENT_CLOSED_DAYS, so the request
#: an operator has just completed (or that was rejected) stays in view.
STATE_RECENT = "recent"
RECENT_CLOSED_DAYS = 30
#: The state filter's choices before the single states, with their labels.
STATE_GROUPS = {STATE_RECENT: f"recent (open, and closed in the last {RECENT_CLOSED_DAYS} days)",
                STATE_OPEN: "open", STATE_ALL: "all"}
_STATE = re.compile(r"^[a-z][a-z_]{0,31}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")

Status = Literal["ok", "warning", "breached", "closed", "preview"]


class FilterError(ValueError):
    """A dashboard filter is malformed; the message says what is allowed."""


# --------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class Filters:
    """What the operator narrowed the page to: a tenant, a request state (``recent`` by default)."""

    tenant: str | None = None
    state: str = STATE_RECENT

    @classmethod
    def parse(cls, policy: Policy, tenant: str | None = None, state: str | None = None) -> Filters:
        """Validate raw query parameters; empty values mean no filter.

        :raises FilterError: a tenant id not of the policy's format, or a malformed state.
        """
        tenant = (tenant or "").strip() or None
        if tenant is not None:
            try:
                policy.validate_tenant_id(tenant)
            except ValueError as exc:
                raise FilterError(f"tenant filter: {exc}") from None
        state = (state or "").strip() or STATE_RECENT
        if not _STATE.match(state):
            raise FilterError(
                f"state filter must be '{STATE_RECENT}', '{STATE_OPEN}', '{STATE_ALL}' or a request state such as "
                f"{', '.join(KNOWN_STATES)}"
            )
        return cls(tenant=tenant, state=state)

    def as_query(self) -> dict[str, str]:
        query = {"state": self.state}
        if self.tenant:
            query["tenant"] = self.tenant
        return query


def valid_request_id(value: str) -> str:
    """``value`` if it looks like a request id (used in a download URL), else FilterError."""
    if not _REQUEST_ID.match(value or ""):
        raise FilterError("request id must be 1-64 letters, digits, '.', '_', ':' or '-'")
    return value


# --------------------------------------------------------------------------- days left


@dataclass(frozen=True)
class Deadline:
    """Where a request stands against its due date."""

    days_left: int  # whole days to due_at, rounded up as the SLA e-mails count them: 5.5 -> 6, -3.5 -> -3
    status: Status
    bar_fraction: float  # share of the request window still left, 0..1 (1 when breached: a full red bar)


def deadline(
    due_at: datetime, now: datetime, *, window_days: int, warning_days: int, closed: bool = False,
    preview: bool = False,
) -> Deadline:
    """Days left to ``due_at`` and the bar colour: green, amber from T-``warning_days``, red at the breach.

    The same rules as the SLA monitor (``sla.classify``), so the page and the alert e-mails
    agree: breached from the instant ``now >= due_at``; amber once at most ``warning_days``
    days are left; days counted as ``timeutil.days_left`` does (whole days, rounded up).
    A closed request, or a preview (which deletes nothing and has no SLA), is grey.
    """
    if due_at.tzinfo is None or now.tzinfo is None:
        raise ValueError("due_at and now must be timezone-aware")
    remaining = due_at - now
    if closed:
        status: Status = "closed"
    elif preview:
        status = "preview"
    elif remaining <= timedelta(0):
        status = "breached"
    elif remaining <= timedelta(days=warning_days):
        status = "warning"
    else:
        status = "ok"
    if status in ("breached", "closed"):
        fraction = 1.0
    else:
        fraction = min(1.0, max(0.0, remaining / timedelta(days=window_days)))
    return Deadline(days_left=days_left(due_at, now), status=status, bar_fraction=round(fraction, 4))


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class RequestRow:
    """One request as the dashboard shows it (no subject id, hash or token)."""

    request_id: str
    reference: str
    request_type: str
    tenant_id: str
    subject_type: str | None
    categories: tuple[str, ...]
    state: str
    mode: str
    received_at: datetime
    due_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    error: str | None
    failed_step: str | None
    deadline: Deadline
    has_certificate: bool = False

    @property
    def is_open(self) -> bool:
        return self.state not in CLOSED_STATES


def request_row(listing: Request, policy: Policy, now: datetime, *, certified: frozenset[str]) -> RequestRow:
    """A ledger request as shown (never its subject), with where it stands against its due date at ``now``."""
    return RequestRow(
        request_id=listing.request_id, reference=listing.reference, request_type=listing.request_type,
        tenant_id=listing.tenant_id, subject_type=listing.subject_type, categories=listing.categories,
        state=listing.state, mode=listing.mode, received_at=listing.received_at, due_at=listing.due_at,
        updated_at=listing.updated_at, completed_at=listing.completed_at, error=listing.error,
        failed_step=listing.failed_step,
        deadline=deadline(
            listing.due_at, now, window_days=policy.request_window_days, warning_days=policy.sla_warning_days,
            closed=listing.state in CLOSED_STATES, preview=listing.mode != "execute",
        ),
        has_certificate=listing.request_id in certified,
    )


def order_requests(rows: Sequence[RequestRow]) -> list[RequestRow]:
    """Breached first (most overdue first), then open ones by due date, then previews, then closed ones."""
    rank = {"breached": 0, "warning": 1, "ok": 1, "preview": 2, "closed": 3}
    return sorted(rows, key=lambda r: (rank[r.deadline.status], r.due_at, r.reference))


def state_choices(in_use: set[str]) -> tuple[str, ...]:
    """The known request states, then any other state found in the ledger."""
    return KNOWN_STATES + tuple(sorted(in_use - set(KNOWN_STATES)))


# --------------------------------------------------------------------------- purge volumes


@dataclass(frozen=True)
class PurgeVolumes:
    """Rows (keys, objects, documents) deleted per category per day on the policy's calendar."""

    days: tuple[date, ...]
    categories: tuple[str, ...]
    deleted: Mapping[str, tuple[int, ...]]  # category -> one count per day
    failed: tuple[int, ...]  # failed purges per day (all categories)
    timezone: str

    def total(self, category: str) -> int:
        return sum(self.deleted[category])

    def day_total(self, index: int) -> int:
        return sum(series[index] for series in self.deleted.values())

    @property
    def peak(self) -> int:
        return max((self.day_total(i) for i in range(len(self.days))), default=0)

    def as_json(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone,
            "days": [d.isoformat() for d in self.days],
            "categories": list(self.categories),
            "deleted": {c: list(v) for c, v in self.deleted.items()},
            "failed": list(self.failed),
            "totals": {c: self.total(c) for c in self.categories},
        }


@dataclass(frozen=True)
class PurgeReason:
    """One recent purge and why: its rule, what it kept out, who let it past the breaker."""

    finished_at: datetime
    category: str
    target: str
    tenant_id: str | None
    deleted: int
    rule: str
    kept: str
    approved_by: str | None
    override_reason: str | None


def purge_reason(row: Sequence[Any]) -> PurgeReason:
    finished, category, target, tenant, deleted, rule, withheld, approved_by, override_reason = row
    return PurgeReason(
        finished_at=from_naive_utc(finished) or finished, category=str(category), target=str(target),
        tenant_id=str(tenant) if tenant is not None else None, deleted=int(deleted),
        rule=describe_rule(json.loads(rule) if rule else None) or "(recorded before reasons were kept)",
        kept=describe_withheld(json.loads(withheld) if withheld else None),
        approved_by=approved_by, override_reason=override_reason,
    )


def purge_window(today: date, days: int = PURGE_WINDOW_DAYS) -> tuple[date, ...]:
    """The ``days`` calendar days ending with ``today``, oldest first."""
    return tuple(today - timedelta(days=days - 1 - i) for i in range(days))


def bucket_volumes(
    rows: Sequence[tuple[str, datetime, int, int]],
    *,
    days: Sequence[date],
    categories: Sequence[str],
    zone: tzinfo,
    zone_name: str,
) -> PurgeVolumes:
    """Sum (category, UTC hour, deleted, failed) rows into per-day counts on ``zone``'s calendar.

    Hours are UTC and naive, as the ledger stores them; an hour belongs to the local day its
    start falls on (exact for zones on whole-hour offsets, such as Asia/Singapore).
    """
    index = {d: i for i, d in enumerate(days)}
    extra = sorted({r[0] for r in rows} - set(categories))  # a category since removed from the policy
    names = tuple(categories) + tuple(extra)
    deleted = {c: [0] * len(days) for c in names}
    failed = [0] * len(days)
    for category, hour, n_deleted, n_failed in rows:
        i = index.get(local_day(from_naive_utc(hour), zone))  # type: ignore[arg-type]
        if i is None:
            continue
        deleted[category][i] += int(n_deleted or 0)
        failed[i] += int(n_failed or 0)
    return PurgeVolumes(
        days=tuple(days), categories=names, deleted={c: tuple(v) for c, v in deleted.items()},
        failed=tuple(failed), timezone=zone_name,
    )


# --------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class CertificateInfo:
    """A request's deletion certificate, as listed (the body is read on download)."""

    request_id: str
    certificate_id: str
    reference: str
    tenant_id: str
    request_type: str
    state: str
    issued_at: datetime | None
    key_id: str
    cos_key: str | None  # where the same certificate lies in COS (json; .md and .html beside it)
    formats: tuple[str, ...] = ("json", "html", "md")


@dataclass(frozen=True)
class CertificateBody:
    request_id: str
    certificate_id: str
    fmt: str
    media_type: str
    content: bytes


CERTIFICATE_MEDIA_TYPES = {"json": "application/json", "html": "text/html; charset=utf-8",
                           "md": "text/markdown; charset=utf-8"}


def certificate_info(listing: CertificateListing) -> CertificateInfo:
    return CertificateInfo(
        request_id=listing.request_id, certificate_id=listing.certificate_id, reference=listing.reference,
        tenant_id=listing.tenant_id, request_type=listing.request_type, state=listing.state,
        issued_at=listing.issued_at, key_id=listing.key_id, cos_key=listing.cos_key,
    )


def check_certificate_format(fmt: str) -> None:
    if fmt not in CERTIFICATE_MEDIA_TYPES:
        raise FilterError(f"certificate format must be one of {', '.join(CERTIFICATE_MEDIA_TYPES)}")


def certificate_body(request_id: str, certificate_id: str, document: Mapping[str, Any], fmt: str) -> CertificateBody:
    """A signed certificate in ``fmt`` (json, html or md).

    The JSON is the signed document, pretty-printed as in COS; HTML and Markdown are rendered
    from it by ``certificates.render``, the functions that wrote the COS copies, so the three
    downloads match the three COS objects without the api-server needing COS credentials.
    """
    check_certificate_format(fmt)
    if fmt == "json":
        text = json.dumps(document, indent=2, sort_keys=True)
    else:
        text = render_html(document) if fmt == "html" else render_markdown(document)
    return CertificateBody(request_id, certificate_id, fmt, CERTIFICATE_MEDIA_TYPES[fmt], text.encode("utf-8"))


# --------------------------------------------------------------------------- daily DAGs


@dataclass(frozen=True)
class DagRunInfo:
    dag_id: str
    run_id: str
    state: str
    run_type: str
    run_after: datetime | None
    start_date: datetime | None
    end_date: datetime | None
    failed_tasks: tuple[str, ...] = ()


@dataclass(frozen=True)
class DagStatus:
    """The last run of one category's daily DAG and its failed runs over FAILURE_WINDOW_DAYS."""

    category: str
    dag_id: str
    last_run: DagRunInfo | None
    failures: tuple[DagRunInfo, ...]
    failure_count: int
    error: str | None = None  # the metadata DB could not be read


DagRunReader = Callable[[Sequence[str], datetime], Mapping[str, tuple[DagRunInfo | None, tuple[DagRunInfo, ...], int]]]


def daily_dag_ids(policy: Policy) -> dict[str, str]:
    """Category -> DAG id of its daily purge (``dags/retention_daily.py``)."""
    return {name: f"retention_{name}" for name in policy.categories}


# --------------------------------------------------------------------------- coverage

MAX_COVERAGE_ITEMS_SHOWN = 100


@dataclass(frozen=True)
class CoverageItem:
    """An unknown item of the last coverage run: its scrubbed name, flags and counts (no values)."""

    item_id: str
    store: str
    kind: str
    name: str
    flags: tuple[str, ...]
    members: int
    sampled: int
    e164_matches: int
    email_matches: int
    first_seen_at: datetime
    likely_personal: bool


@dataclass(frozen=True)
class CoveragePanel:
    """The last coverage run (``retention_coverage``): its totals and its unknown items."""

    run_id: str
    as_of: datetime
    items: int
    covered: int
    exempt: int
    unknown: int
    likely_personal: int
    new_unknown: int
    unknown_items: tuple[CoverageItem, ...]
    limited_mysql_view: bool = False


def coverage_panel(run: CoverageRun | None, rows: Sequence[CoverageItemRow]) -> CoveragePanel | None:
    if run is None:
        return None
    mysql = run.stores.get("mysql") or {}
    return CoveragePanel(
        run.run_id, run.as_of, run.items, run.covered, run.exempt, run.unknown, run.likely_personal, run.new_unknown,
        tuple(CoverageItem(r.item_id, r.store, r.kind, r.name, r.flags, r.members, r.sampled, r.e164_matches,
                           r.email_matches, r.first_seen_at, r.likely_personal) for r in rows),
        limited_mysql_view=bool(mysql) and not mysql.get("full_view", True),
    )


# --------------------------------------------------------------------------- the whole page


@dataclass(frozen=True)
class DashboardView:
    generated_at: datetime
    filters: Filters
    states: tuple[str, ...]
    requests: tuple[RequestRow, ...]
    purges: PurgeVolumes
    dags: tuple[DagStatus, ...]
    certificates: tuple[CertificateInfo, ...]
    window_days: int
    warning_days: int
    counts: Mapping[str, int] = field(default_factory=dict)
    reasons: tuple[PurgeReason, ...] = ()
    coverage: CoveragePanel | None = None


def status_counts(requests: Sequence[RequestRow]) -> dict[str, int]:
    return {
        "shown": len(requests),
        "breached": sum(r.deadline.status == "breached" for r in requests),
        "warning": sum(r.deadline.status == "warning" for r in requests),
        "ok": sum(r.deadline.status == "ok" for r in requests),
    }


# --------------------------------------------------------------------------- JSON


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def request_json(row: RequestRow) -> dict[str, Any]:
    data = asdict(row)
    data["days_left"] = row.deadline.days_left
    data["status"] = row.deadline.status
    data["bar_fraction"] = row.deadline.bar_fraction
    del data["deadline"]
    return _jsonable(data)


def dag_status_json(status: DagStatus) -> dict[str, Any]:
    return _jsonable(asdict(status))


def certificate_json(info: CertificateInfo) -> dict[str, Any]:
    return _jsonable(asdict(info))


def view_json(view: DashboardView) -> dict[str, Any]:
    return {
        "generated_at": _jsonable(view.generated_at),
        "filters": {"tenant": view.filters.tenant, "state": view.filters.state},
        "window_days": view.window_days,
        "warning_days": view.warning_days,
        "counts": dict(view.counts),
        "requests": [request_json(r) for r in view.requests],
        "purges": view.purges.as_json(),
        "daily_dags": [dag_status_json(d) for d in view.dags],
        "certificates": [certificate_json(c) for c in view.certificates],
        "recent_purges": [_jsonable(asdict(r)) for r in view.reasons],
        "coverage": _jsonable(asdict(view.coverage)) if view.coverage else None,
    }
