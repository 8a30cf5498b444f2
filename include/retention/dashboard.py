"""Read-only queries and the view model of the operator dashboard (``plugins/retention_dashboard.py``).

Everything here reads; nothing writes. Ledger reads go through a connection whose session is
``READ ONLY`` (MySQL/MariaDB refuse any write on it), and the Airflow metadata is read
through the ORM inside the api-server.

What the dashboard shows:

- **requests**: open termination and deletion requests (or those of one state), their
  tenant and reference, and the days left to ``due_at`` as a bar: green, amber from T-7
  (``policy.sla_warning_days``), red at the breach. Breached requests come first.
- **purges**: rows deleted per category per day (policy calendar) over the last 90 days,
  from ``purge_audit`` (real purges only; dry runs delete nothing).
- **daily DAGs**: the last run of each ``retention_<category>`` DAG and its recent failures.
- **certificates**: the requests' deletion certificates, to download.

No subject id, subject hash or encrypted subject is ever selected.
"""

from __future__ import annotations

import json
import logging
import math
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence

from include.retention.ledger.db import LEDGER_CONN_ID, connect, plain_cursor
from include.retention.policy import Policy

log = logging.getLogger(__name__)

UTC = timezone.utc
PURGE_WINDOW_DAYS = 90
FAILURE_WINDOW_DAYS = 30
MAX_FAILURES_SHOWN = 10
MAX_REQUESTS_SHOWN = 500
#: States after which a request is no longer open (issue 5: completed ends it, rejected ends it).
CLOSED_STATES = frozenset({"completed", "rejected"})
#: The request states of the request flow, in lifecycle order (others found in the ledger are added).
KNOWN_STATES = ("received", "planned", "in_progress", "verifying", "failed", "completed", "rejected")
STATE_OPEN = "open"
STATE_ALL = "all"
_STATE = re.compile(r"^[a-z][a-z_]{0,31}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")

Status = Literal["ok", "warning", "breached", "closed", "preview"]


class FilterError(ValueError):
    """A dashboard filter is malformed; the message says what is allowed."""


# --------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class Filters:
    """What the operator narrowed the page to: a tenant, a request state (``open`` by default)."""

    tenant: str | None = None
    state: str = STATE_OPEN

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
        state = (state or "").strip() or STATE_OPEN
        if not _STATE.match(state):
            raise FilterError(
                f"state filter must be '{STATE_OPEN}', '{STATE_ALL}' or a request state such as "
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
    days are left; days counted as ``requests.days_left`` does (whole days, rounded up).
    A closed request, or a preview (which deletes nothing and has no SLA), is grey.
    """
    if due_at.tzinfo is None or now.tzinfo is None:
        raise ValueError("due_at and now must be timezone-aware")
    remaining = due_at - now
    days_left = math.ceil(remaining.total_seconds() / 86_400)
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
    return Deadline(days_left=days_left, status=status, bar_fraction=round(fraction, 4))


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


def order_requests(rows: Sequence[RequestRow]) -> list[RequestRow]:
    """Breached first (most overdue first), then open ones by due date, then previews, then closed ones."""
    rank = {"breached": 0, "warning": 1, "ok": 1, "preview": 2, "closed": 3}
    return sorted(rows, key=lambda r: (rank[r.deadline.status], r.due_at, r.reference))


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None else None


def _categories(raw: object) -> tuple[str, ...]:
    try:
        parsed = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    except ValueError:
        return ()
    return tuple(str(c) for c in parsed) if isinstance(parsed, list) else ()


def read_requests(
    cur: Any, policy: Policy, filters: Filters, now: datetime, *, certified: frozenset[str] = frozenset()
) -> list[RequestRow]:
    """Requests matching the filters, ordered breached first; at most MAX_REQUESTS_SHOWN."""
    clauses: list[str] = []
    params: list[Any] = []
    if filters.state == STATE_OPEN:
        clauses.append(f"state NOT IN ({', '.join(['%s'] * len(CLOSED_STATES))})")
        params.extend(sorted(CLOSED_STATES))
    elif filters.state != STATE_ALL:
        clauses.append("state = %s")
        params.append(filters.state)
    if filters.tenant:
        clauses.append("tenant_id = %s")
        params.append(filters.tenant)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    # Breached first is a property of now; the SQL order (due date) already puts them first
    # among open requests, and order_requests settles the rest.
    cur.execute(
        "SELECT request_id, reference, request_type, tenant_id, subject_type, categories, state, mode,"
        " received_at, due_at, updated_at, completed_at, error, failed_step FROM requests"
        f"{where} ORDER BY due_at, reference LIMIT %s",
        (*params, MAX_REQUESTS_SHOWN),
    )
    rows: list[RequestRow] = []
    for r in cur.fetchall():
        state = str(r[6])
        due_at = _aware(r[9])
        assert due_at is not None
        rows.append(
            RequestRow(
                request_id=str(r[0]), reference=str(r[1]), request_type=str(r[2]), tenant_id=str(r[3]),
                subject_type=r[4], categories=_categories(r[5]), state=state, mode=str(r[7]),
                received_at=_aware(r[8]), due_at=due_at, updated_at=_aware(r[10]),  # type: ignore[arg-type]
                completed_at=_aware(r[11]), error=r[12], failed_step=r[13],
                deadline=deadline(
                    due_at, now, window_days=policy.request_window_days, warning_days=policy.sla_warning_days,
                    closed=state in CLOSED_STATES, preview=str(r[7]) != "execute",
                ),
                has_certificate=str(r[0]) in certified,
            )
        )
    return order_requests(rows)


def read_states(cur: Any) -> tuple[str, ...]:
    """The known request states, then any other state found in the ledger."""
    cur.execute("SELECT DISTINCT state FROM requests")
    found = {str(r[0]) for r in cur.fetchall()}
    return KNOWN_STATES + tuple(sorted(found - set(KNOWN_STATES)))


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
        local_day = hour.replace(tzinfo=UTC).astimezone(zone).date()
        i = index.get(local_day)
        if i is None:
            continue
        deleted[category][i] += int(n_deleted or 0)
        failed[i] += int(n_failed or 0)
    return PurgeVolumes(
        days=tuple(days), categories=names, deleted={c: tuple(v) for c, v in deleted.items()},
        failed=tuple(failed), timezone=zone_name,
    )


def read_purge_volumes(
    cur: Any, policy: Policy, now: datetime, *, tenant: str | None = None, days: int = PURGE_WINDOW_DAYS
) -> PurgeVolumes:
    """Real purges (not dry runs) per category per policy-calendar day, over ``days`` days to today.

    With ``tenant``, only audit rows attributed to that tenant count (its requests and
    overrides); the daily sweeps across all tenants carry no tenant.
    """
    zone = policy.timezone
    window = purge_window(now.astimezone(zone).date(), days)
    start = datetime.combine(window[0], time(0), tzinfo=zone).astimezone(UTC).replace(tzinfo=None)
    end = datetime.combine(window[-1] + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC).replace(tzinfo=None)
    sql = (
        "SELECT category, DATE_FORMAT(finished_at, '%%Y-%%m-%%d %%H:00:00') AS hour, SUM(deleted),"
        " SUM(outcome IN ('failed', 'interrupted')) FROM purge_audit"
        " WHERE dry_run = 0 AND finished_at >= %s AND finished_at < %s"
    )
    params: list[Any] = [start, end]
    if tenant:
        sql += " AND tenant_id = %s"
        params.append(tenant)
    cur.execute(sql + " GROUP BY category, hour", tuple(params))
    rows = [
        (str(c), datetime.strptime(str(h), "%Y-%m-%d %H:%M:%S"), int(d or 0), int(f or 0))
        for c, h, d, f in cur.fetchall()
    ]
    return bucket_volumes(rows, days=window, categories=list(policy.categories), zone=zone,
                          zone_name=policy.timezone_name)


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
_NO_SUCH_TABLE = 1146


def list_certificates(cur: Any, *, tenant: str | None = None, limit: int = MAX_REQUESTS_SHOWN) -> list[CertificateInfo]:
    """The certificates in the ledger (``certificates``, migration 4), newest first.

    A ledger not yet migrated that far has none.
    """
    import MySQLdb

    sql = (
        "SELECT c.request_id, c.certificate_id, c.issued_at, c.key_id, c.cos_key, r.reference, r.tenant_id,"
        " r.request_type, r.state FROM certificates c JOIN requests r ON r.request_id = c.request_id"
    )
    params: list[Any] = []
    if tenant:
        sql += " WHERE r.tenant_id = %s"
        params.append(tenant)
    try:
        cur.execute(sql + " ORDER BY c.issued_at DESC, c.request_id LIMIT %s", (*params, limit))
    except MySQLdb.ProgrammingError as exc:
        if exc.args and exc.args[0] == _NO_SUCH_TABLE:
            return []
        raise
    return [
        CertificateInfo(
            request_id=str(r[0]), certificate_id=str(r[1]), issued_at=_aware(r[2]), key_id=str(r[3]),
            cos_key=r[4], reference=str(r[5]), tenant_id=str(r[6]), request_type=str(r[7]), state=str(r[8]),
        )
        for r in cur.fetchall()
    ]


def read_certificate(cur: Any, request_id: str, fmt: str) -> CertificateBody | None:
    """One certificate in ``fmt`` (json, html or md), from the ledger's signed JSON; None when none.

    The JSON is the stored signed document, pretty-printed as in COS; HTML and Markdown are
    rendered from it by ``certificates.render_html`` / ``render_markdown``, the same
    functions that wrote the COS copies, so the three downloads match the three COS objects
    without the api-server needing COS credentials.
    """
    if fmt not in CERTIFICATE_MEDIA_TYPES:
        raise FilterError(f"certificate format must be one of {', '.join(CERTIFICATE_MEDIA_TYPES)}")
    import MySQLdb

    try:
        cur.execute("SELECT certificate_id, document FROM certificates WHERE request_id = %s", (request_id,))
    except MySQLdb.ProgrammingError as exc:
        if exc.args and exc.args[0] == _NO_SUCH_TABLE:
            return None
        raise
    row = cur.fetchone()
    if row is None:
        return None
    certificate_id, raw = str(row[0]), row[1]
    document = json.loads(raw)
    if fmt == "json":
        text = json.dumps(document, indent=2, sort_keys=True)
    else:
        from include.retention import certificates

        text = certificates.render_html(document) if fmt == "html" else certificates.render_markdown(document)
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


def airflow_dag_runs(
    dag_ids: Sequence[str], now: datetime
) -> dict[str, tuple[DagRunInfo | None, tuple[DagRunInfo, ...], int]]:
    """Last run, recent failed runs and their count per DAG, from Airflow's metadata DB (ORM).

    Runs inside the api-server, whose ORM session is configured; reads only.
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    since = now - timedelta(days=FAILURE_WINDOW_DAYS)
    out: dict[str, tuple[DagRunInfo | None, tuple[DagRunInfo, ...], int]] = {}

    def info(run: Any, failed_tasks: tuple[str, ...] = ()) -> DagRunInfo:
        return DagRunInfo(
            dag_id=run.dag_id, run_id=run.run_id, state=str(run.state), run_type=str(run.run_type),
            run_after=run.run_after, start_date=run.start_date, end_date=run.end_date, failed_tasks=failed_tasks,
        )

    with create_session() as session:
        for dag_id in dag_ids:
            last = session.scalars(
                select(DagRun).where(DagRun.dag_id == dag_id)
                .order_by(DagRun.run_after.desc(), DagRun.id.desc()).limit(1)
            ).first()
            failed_filter = (DagRun.dag_id == dag_id, DagRun.state == "failed", DagRun.run_after >= since)
            count = session.scalar(select(func.count()).select_from(DagRun).where(*failed_filter)) or 0
            failed_runs = session.scalars(
                select(DagRun).where(*failed_filter).order_by(DagRun.run_after.desc()).limit(MAX_FAILURES_SHOWN)
            ).all()
            failures = []
            for run in failed_runs:
                tasks = session.scalars(
                    select(TaskInstance.task_id).where(
                        TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id, TaskInstance.state == "failed"
                    ).order_by(TaskInstance.task_id)
                ).all()
                failures.append(info(run, tuple(dict.fromkeys(tasks))))
            last_tasks: tuple[str, ...] = ()
            if last is not None and str(last.state) == "failed":
                last_tasks = next((f.failed_tasks for f in failures if f.run_id == last.run_id), ())
            out[dag_id] = (info(last, last_tasks) if last is not None else None, tuple(failures), int(count))
    return out


def read_dag_status(policy: Policy, now: datetime, reader: DagRunReader | None = None) -> list[DagStatus]:
    """One DagStatus per category, in policy order; a metadata DB error is shown, not raised."""
    ids = daily_dag_ids(policy)
    try:
        runs = (reader or airflow_dag_runs)(list(ids.values()), now)
        error = None
    except Exception as exc:  # the dashboard still shows the ledger when Airflow's DB is unreachable
        log.warning("Could not read the daily DAG runs: %s", type(exc).__name__)
        runs, error = {}, f"could not read Airflow's metadata DB ({type(exc).__name__})"
    statuses = []
    for category, dag_id in ids.items():
        last, failures, count = runs.get(dag_id, (None, (), 0))
        statuses.append(DagStatus(category, dag_id, last, tuple(failures), count, error))
    return statuses


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


@contextmanager
def read_only_cursor(conn_id: str = LEDGER_CONN_ID) -> Iterator[Any]:
    """A plain cursor on a ledger connection whose session refuses writes (READ ONLY)."""
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute("SET SESSION TRANSACTION READ ONLY")
        yield cur


def build_view(
    policy: Policy,
    filters: Filters,
    now: datetime,
    *,
    ledger_conn_id: str = LEDGER_CONN_ID,
    dag_runs: DagRunReader | None = None,
) -> DashboardView:
    """Everything the page shows, read in one short read-only ledger session."""
    with read_only_cursor(ledger_conn_id) as cur:
        certificates = list_certificates(cur, tenant=filters.tenant)
        requests = read_requests(cur, policy, filters, now,
                                 certified=frozenset(c.request_id for c in certificates))
        purges = read_purge_volumes(cur, policy, now, tenant=filters.tenant)
        states = read_states(cur)
    counts = {
        "shown": len(requests),
        "breached": sum(r.deadline.status == "breached" for r in requests),
        "warning": sum(r.deadline.status == "warning" for r in requests),
        "ok": sum(r.deadline.status == "ok" for r in requests),
    }
    return DashboardView(
        generated_at=now, filters=filters, states=states, requests=tuple(requests), purges=purges,
        dags=tuple(read_dag_status(policy, now, dag_runs)), certificates=tuple(certificates),
        window_days=policy.request_window_days, warning_days=policy.sla_warning_days, counts=counts,
    )


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
    }
