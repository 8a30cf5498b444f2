"""The dashboard's reads: the ledger in a ``READ ONLY`` session, Airflow's metadata through the ORM.

Everything here reads; nothing writes. The ledger's SQL lives with its tables
(``ledger/requests.py``, ``ledger/audit.py``, ``ledger/certificates.py``); this module opens
the read-only session, asks them, and turns their rows into the view (``view.py``). No subject
id, subject hash or encrypted subject is ever selected.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Iterator, Sequence

from include.retention.dashboard.view import (
    CLOSED_STATES,
    FAILURE_WINDOW_DAYS,
    MAX_FAILURES_SHOWN,
    MAX_REQUESTS_SHOWN,
    PURGE_WINDOW_DAYS,
    RECENT_CLOSED_DAYS,
    STATE_GROUPS,
    STATE_OPEN,
    STATE_RECENT,
    MAX_COVERAGE_ITEMS_SHOWN,
    CertificateBody,
    CertificateInfo,
    CoveragePanel,
    DagRunInfo,
    DagRunReader,
    DagStatus,
    DashboardView,
    Filters,
    PurgeVolumes,
    RequestRow,
    bucket_volumes,
    purge_reason,
    certificate_body,
    certificate_info,
    check_certificate_format,
    coverage_panel,
    daily_dag_ids,
    order_requests,
    purge_window,
    request_row,
    state_choices,
    status_counts,
)
from include.retention.ledger import certificates as ledger_certificates
from include.retention.ledger import coverage as ledger_coverage
from include.retention.ledger import requests as ledger_requests
from include.retention.ledger.audit import deleted_per_hour, recent_reasons
from include.retention.ledger.db import LEDGER_CONN_ID, connect, plain_cursor
from include.retention.policy import Policy
from include.retention.timeutil import local_day, start_of_day

log = logging.getLogger(__name__)


@contextmanager
def read_only_cursor(conn_id: str = LEDGER_CONN_ID) -> Iterator[Any]:
    """A plain cursor on a ledger connection whose session refuses writes (READ ONLY)."""
    with connect(conn_id) as conn:
        cur = plain_cursor(conn)
        cur.execute("SET SESSION TRANSACTION READ ONLY")
        yield cur


# --------------------------------------------------------------------------- requests


def read_requests(
    cur: Any, policy: Policy, filters: Filters, now: datetime, *, certified: frozenset[str] = frozenset()
) -> list[RequestRow]:
    """Requests matching the filters, ordered breached first; at most MAX_REQUESTS_SHOWN."""
    # Breached first is a property of now; the SQL order (due date) already puts them first
    # among open requests, and order_requests settles the rest.
    listings = ledger_requests.list_for_dashboard(
        cur,
        exclude_states=CLOSED_STATES if filters.state == STATE_OPEN else (),
        closed_since=now - timedelta(days=RECENT_CLOSED_DAYS) if filters.state == STATE_RECENT else None,
        state=filters.state if filters.state not in STATE_GROUPS else None,
        tenant_id=filters.tenant,
        limit=MAX_REQUESTS_SHOWN,
    )
    return order_requests([request_row(r, policy, now, certified=certified) for r in listings])


def read_states(cur: Any) -> tuple[str, ...]:
    """The known request states, then any other state found in the ledger."""
    return state_choices(ledger_requests.states_in_use(cur))


# --------------------------------------------------------------------------- purge volumes


def read_purge_volumes(
    cur: Any, policy: Policy, now: datetime, *, tenant: str | None = None, days: int = PURGE_WINDOW_DAYS
) -> PurgeVolumes:
    """Real purges (not dry runs) per category per policy-calendar day, over ``days`` days to today.

    With ``tenant``, only audit rows attributed to that tenant count (its requests and
    overrides); the daily sweeps across all tenants carry no tenant.
    """
    zone = policy.timezone
    window = purge_window(local_day(now, zone), days)
    rows = deleted_per_hour(cur, start_of_day(window[0], zone), start_of_day(window[-1] + timedelta(days=1), zone),
                            tenant=tenant)
    return bucket_volumes(rows, days=window, categories=list(policy.categories), zone=zone,
                          zone_name=policy.timezone_name)


# --------------------------------------------------------------------------- certificates


def list_certificates(cur: Any, *, tenant: str | None = None, limit: int = MAX_REQUESTS_SHOWN) -> list[CertificateInfo]:
    """The certificates in the ledger (``certificates``, migration 4), newest first.

    A ledger not yet migrated that far has none.
    """
    return [certificate_info(c) for c in ledger_certificates.list_certificates(cur, tenant=tenant, limit=limit)]


def read_certificate(cur: Any, request_id: str, fmt: str) -> CertificateBody | None:
    """One certificate in ``fmt`` (json, html or md), from the ledger's signed JSON; None when none."""
    check_certificate_format(fmt)
    found = ledger_certificates.read_document(cur, request_id)
    if found is None:
        return None
    certificate_id, document = found
    return certificate_body(request_id, certificate_id, document, fmt)


# --------------------------------------------------------------------------- coverage


def read_coverage(cur: Any) -> CoveragePanel | None:
    """The last coverage run and its unknown items (migration 10); None before the first run."""
    run = ledger_coverage.latest_run(cur)
    rows = ledger_coverage.run_items(cur, run.run_id, limit=MAX_COVERAGE_ITEMS_SHOWN) if run else []
    return coverage_panel(run, rows)


# --------------------------------------------------------------------------- daily DAGs


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
        reasons = tuple(purge_reason(row) for row in recent_reasons(cur, tenant=filters.tenant))
        coverage = read_coverage(cur)
    return DashboardView(
        generated_at=now, filters=filters, states=states, requests=tuple(requests), purges=purges,
        dags=tuple(read_dag_status(policy, now, dag_runs)), certificates=tuple(certificates),
        window_days=policy.request_window_days, warning_days=policy.sla_warning_days, counts=status_counts(requests),
        reasons=reasons, coverage=coverage,
    )
