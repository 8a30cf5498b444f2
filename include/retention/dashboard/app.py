"""The operator dashboard as a FastAPI app, mounted in Airflow's api-server by a plugin.

``plugins/retention_dashboard.py`` mounts :data:`app` at ``/retention``. Every route is a
``GET`` that reads; the app answers any other method with 405, and its ledger session is
``READ ONLY``. Airflow mounts plugin apps **without authentication**, so every route checks
the caller itself (:func:`require_reader`): an Airflow user authenticated by the auth
manager (the UI's ``_token`` cookie) or a bearer token from ``POST /auth/token``, allowed to
read DAG runs. Anonymous callers get 401; an invalid or revoked token gets 403.

Routes (under the ``/retention`` prefix; ``tenant`` and ``state`` filter where they apply):

========================================  ======================================================
``GET /``                                 the page: requests, purge plot, daily DAGs, certificates
``GET /api``                              this list, as JSON
``GET /api/openapi.json``                 the OpenAPI document of these routes
``GET /api/summary``                      everything the page shows, as one JSON document
``GET /api/requests``                     requests (``state``: ``recent`` (default: open, and closed in the last 30 days), ``open``, ``all`` or one state)
``GET /api/purges``                       deleted per category per day (``days``: 1-366, default 90)
``GET /api/daily-dags``                   last run and recent failures of each ``retention_<category>``
``GET /api/certificates``                 the certificates in the ledger
``GET /api/certificates/{id}.{fmt}``      one certificate (``json``, ``html`` or ``md``);
                                          ``?download=1`` for an attachment
========================================  ======================================================

The page needs no JavaScript: the plot is inline SVG and the filters are a GET form, so it
works in the Airflow UI's sandboxed iframe and fetches nothing from outside.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, Template, select_autoescape
from markupsafe import Markup, escape

from include.retention.dashboard.queries import (
    build_view,
    list_certificates,
    read_certificate,
    read_dag_status,
    read_only_cursor,
    read_purge_volumes,
    read_requests,
)
from include.retention.dashboard.view import (
    CERTIFICATE_MEDIA_TYPES,
    FAILURE_WINDOW_DAYS,
    PURGE_WINDOW_DAYS,
    STATE_GROUPS,
    DashboardView,
    Deadline,
    FilterError,
    Filters,
    PurgeVolumes,
    certificate_json,
    dag_status_json,
    request_json,
    valid_request_id,
    view_json,
)
from include.retention.ledger.db import LEDGER_CONN_ID
from include.retention.policy import Policy, load_policy
from include.retention.timeutil import UTC, wall_clock

log = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
STATUS_COLOURS = {"ok": "#2e9e44", "warning": "#e8a317", "breached": "#d93025", "closed": "#9aa0a6",
                  "preview": "#c4c7c5"}
SECURITY_HEADERS = {
    # Nothing is fetched or run from anywhere: no script at all, styles and SVG inline.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


# --------------------------------------------------------------------------- authentication


async def require_reader(request: Request) -> Any:
    """The authenticated Airflow user, allowed to read DAG runs; else 401 (anonymous) or 403.

    Uses the api-server's own resolution (``airflow.api_fastapi.core_api.security.get_user``):
    an ``Authorization: Bearer`` token wins, else the user a trusted Airflow middleware
    established, else the ``_token`` cookie the UI sets at login; each token is validated by
    the auth manager (signature, expiry, revocation).
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)
    user = await get_user(request, None, credentials)
    if not get_auth_manager().is_authorized_dag(method="GET", access_entity=DagAccessEntity.RUN, user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden: the dashboard needs read access to DAG runs")
    return user


Reader = Depends(require_reader)


# --------------------------------------------------------------------------- the app


def policy() -> Policy:
    return load_policy()


def _now() -> datetime:
    return wall_clock()


app = FastAPI(
    title="Data retention dashboard",
    description=__doc__,
    version="1",
    docs_url=None,  # the interactive docs would load scripts from a CDN; openapi.json is behind auth
    redoc_url=None,
    openapi_url=None,
)
#: Tests may point the app at another ledger connection or a fake DAG-run reader.
app.state.ledger_conn_id = LEDGER_CONN_ID
app.state.dag_runs = None


@app.middleware("http")
async def read_only_methods(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Refuse every method that could change something, before any route or dependency runs."""
    if request.method not in READ_METHODS:
        return JSONResponse({"detail": "Method Not Allowed: the retention dashboard only reads"},
                            status_code=405, headers={"Allow": "GET, HEAD"})
    response = await call_next(request)
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    return response


@app.exception_handler(FilterError)
async def bad_filter(request: Request, exc: FilterError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=400)


@app.exception_handler(HTTPException)
async def http_error(request: Request, exc: HTTPException) -> Response:
    """JSON for the API; for the page, a small HTML answer with a link to Airflow's login."""
    if request.url.path.rstrip("/") == request.scope.get("root_path", "").rstrip("/") and exc.status_code in (401, 403):
        login = "/auth/login?" + urlencode({"next": str(request.url)})
        body = (f"<!doctype html><title>Data retention</title><p>{escape(str(exc.detail))}. "
                f"<a href=\"{escape(login)}\">Log in to Airflow</a>, then open this page again.</p>")
        return HTMLResponse(body, status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def _filters(tenant: str | None, state: str | None) -> Filters:
    return Filters.parse(policy(), tenant, state)


def _view(request: Request, filters: Filters) -> DashboardView:
    return build_view(policy(), filters, _now(), ledger_conn_id=request.app.state.ledger_conn_id,
                           dag_runs=request.app.state.dag_runs)


TenantQuery = Query(None, max_length=128, description="Only this tenant (the policy's tenant id format)")
StateQuery = Query(None, max_length=32,
                   description="'recent' (default: open, and closed in the last 30 days), 'open', 'all', or one request state")

ROUTES = [
    {"method": "GET", "path": "/", "returns": "text/html", "what": "the dashboard page", "params": ["tenant", "state"]},
    {"method": "GET", "path": "/api", "returns": "application/json", "what": "this list of routes"},
    {"method": "GET", "path": "/api/openapi.json", "returns": "application/json", "what": "the OpenAPI document"},
    {"method": "GET", "path": "/api/summary", "returns": "application/json",
     "what": "everything the page shows", "params": ["tenant", "state"]},
    {"method": "GET", "path": "/api/requests", "returns": "application/json",
     "what": "requests, breached first, with days_left, status and bar_fraction", "params": ["tenant", "state"]},
    {"method": "GET", "path": "/api/purges", "returns": "application/json",
     "what": "rows deleted per category per day (policy calendar), real purges only", "params": ["tenant", "days"]},
    {"method": "GET", "path": "/api/daily-dags", "returns": "application/json",
     "what": "last run and failed runs (30 days) of each retention_<category> DAG"},
    {"method": "GET", "path": "/api/certificates", "returns": "application/json",
     "what": "deletion certificates in the ledger", "params": ["tenant"]},
    {"method": "GET", "path": "/api/certificates/{request_id}.{fmt}", "returns": "json, html or md",
     "what": "one certificate; download=1 makes it an attachment", "params": ["download"]},
]


@app.get("/api", summary="The dashboard's routes", dependencies=[Reader])
def api_index(request: Request) -> dict[str, Any]:
    return {"prefix": request.scope.get("root_path", ""), "auth": "Airflow user (cookie _token) or Bearer token "
            "from POST /auth/token, with read access to DAG runs", "routes": ROUTES}


@app.get("/api/openapi.json", summary="OpenAPI document", dependencies=[Reader])
def api_openapi() -> dict[str, Any]:
    return app.openapi()


@app.get("/api/summary", summary="Everything the page shows", dependencies=[Reader])
def api_summary(request: Request, tenant: str | None = TenantQuery, state: str | None = StateQuery) -> dict[str, Any]:
    return view_json(_view(request, _filters(tenant, state)))


@app.get("/api/requests", summary="Requests, breached first", dependencies=[Reader])
def api_requests(request: Request, tenant: str | None = TenantQuery, state: str | None = StateQuery) -> dict[str, Any]:
    filters = _filters(tenant, state)
    now = _now()
    with read_only_cursor(request.app.state.ledger_conn_id) as cur:
        certified = frozenset(c.request_id for c in list_certificates(cur, tenant=filters.tenant))
        rows = read_requests(cur, policy(), filters, now, certified=certified)
    return {"generated_at": now.isoformat(), "filters": {"tenant": filters.tenant, "state": filters.state},
            "warning_days": policy().sla_warning_days, "requests": [request_json(r) for r in rows]}


@app.get("/api/purges", summary="Deleted per category per day", dependencies=[Reader])
def api_purges(
    request: Request, tenant: str | None = TenantQuery,
    days: int = Query(PURGE_WINDOW_DAYS, ge=1, le=366, description="How many days back, today included"),
) -> dict[str, Any]:
    filters = _filters(tenant, None)
    with read_only_cursor(request.app.state.ledger_conn_id) as cur:
        volumes = read_purge_volumes(cur, policy(), _now(), tenant=filters.tenant, days=days)
    return volumes.as_json()


@app.get("/api/daily-dags", summary="Daily DAGs: last run and failures", dependencies=[Reader])
def api_daily_dags(request: Request) -> dict[str, Any]:
    statuses = read_dag_status(policy(), _now(), request.app.state.dag_runs)
    return {"failure_window_days": FAILURE_WINDOW_DAYS, "daily_dags": [dag_status_json(s) for s in statuses]}


@app.get("/api/certificates", summary="Deletion certificates", dependencies=[Reader])
def api_certificates(request: Request, tenant: str | None = TenantQuery) -> dict[str, Any]:
    filters = _filters(tenant, None)
    with read_only_cursor(request.app.state.ledger_conn_id) as cur:
        certificates = list_certificates(cur, tenant=filters.tenant)
    return {"certificates": [certificate_json(c) for c in certificates]}


@app.get("/api/certificates/{request_id}.{fmt}", summary="One certificate", dependencies=[Reader])
def api_certificate(request: Request, request_id: str, fmt: str, download: bool = False) -> Response:
    request_id = valid_request_id(request_id)
    if fmt not in CERTIFICATE_MEDIA_TYPES:
        raise HTTPException(404, f"no such certificate format; use one of {', '.join(CERTIFICATE_MEDIA_TYPES)}")
    with read_only_cursor(request.app.state.ledger_conn_id) as cur:
        body = read_certificate(cur, request_id, fmt)
    if body is None:
        raise HTTPException(404, "no certificate in this format for this request")
    filename = f"{body.certificate_id}.{fmt}"
    disposition = "attachment" if download else "inline"
    return Response(
        body.content, media_type=body.media_type,
        headers={
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(filename, safe='')}",
            # A certificate shown inline is a document, never an active page of this origin.
            "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'",
        },
    )


@app.get("/", summary="The dashboard page", response_class=HTMLResponse, dependencies=[Reader])
def page(request: Request, tenant: str | None = TenantQuery, state: str | None = StateQuery) -> HTMLResponse:
    try:
        filters = _filters(tenant, state)
        problem = None
    except FilterError as exc:
        filters, problem = Filters(), str(exc)
    view = _view(request, filters)
    html = render_page(view, policy(), root=request.scope.get("root_path", ""), problem=problem)
    return HTMLResponse(html, status_code=400 if problem else 200)


# --------------------------------------------------------------------------- rendering


def _nice_ceiling(value: int) -> int:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is at least ``value``."""
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return int(step * magnitude)
    return 10 * magnitude


def category_colours(categories: tuple[str, ...]) -> dict[str, str]:
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(categories)}


def render_purge_svg(volumes: PurgeVolumes, *, width: int = 960, height: int = 260) -> Markup:
    """A stacked bar chart of rows deleted per day and category, as inline SVG (no script)."""
    left, right, top, bottom = 64, 12, 14, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(volumes.days))
    slot = plot_w / n
    bar_w = max(1.0, slot - 1.0)
    peak = _nice_ceiling(volumes.peak)
    colours = category_colours(volumes.categories)
    out = [
        f'<svg id="purge-plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-labelledby="purge-plot-title" data-peak="{volumes.peak}">',
        '<title id="purge-plot-title">Rows deleted per day and category</title>',
    ]
    for i in range(5):  # horizontal grid lines and y labels
        value = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        label = f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6ea"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#5f6368">'
                   f'{label}</text>')
    for i, day in enumerate(volumes.days):
        x = left + i * slot
        y = top + plot_h
        for category in volumes.categories:
            count = volumes.deleted[category][i]
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            out.append(
                f'<rect class="bar" x="{x:.2f}" y="{y:.2f}" width="{bar_w:.2f}" height="{h:.2f}" '
                f'fill="{colours[category]}" data-day="{day.isoformat()}" data-category="{escape(category)}" '
                f'data-deleted="{count}"><title>{day.isoformat()} {escape(category)}: {count:,} deleted'
                f'</title></rect>'
            )
        last = i == len(volumes.days) - 1
        if (i % 15 == 0 and len(volumes.days) - i > 7) or last:  # a label every 15 days, and today's
            anchor, lx = ("end", x + bar_w) if last else ("middle", x + bar_w / 2)
            out.append(f'<text x="{lx:.1f}" y="{height - bottom + 16}" text-anchor="{anchor}" '
                       f'font-size="11" fill="#5f6368">{day.strftime("%d %b")}</text>')
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#9aa0a6"/>')
    if volumes.peak == 0:
        out.append(f'<text x="{left + plot_w / 2:.0f}" y="{top + plot_h / 2:.0f}" text-anchor="middle" '
                   f'font-size="14" fill="#5f6368">No purges in these {len(volumes.days)} days</text>')
    out.append("</svg>")
    return Markup("".join(out))


def _local(value: datetime | None, zone: ZoneInfo) -> Markup:
    """A time in the policy's zone with its offset written out (Airflow's own pages show UTC
    by default), and the UTC instant in ``datetime`` and the tooltip."""
    if value is None:
        return Markup("—")
    local, utc = value.astimezone(zone), value.astimezone(UTC)
    offset = local.strftime("%z")
    return Markup('<time datetime="{}" title="{} UTC">{} UTC{}:{}</time>').format(
        utc.isoformat(), utc.strftime("%Y-%m-%d %H:%M"), local.strftime("%Y-%m-%d %H:%M"), offset[:3], offset[3:])


def _days_text(deadline: Deadline) -> str:
    if deadline.status == "closed":
        return "closed"
    if deadline.status == "preview":
        return "preview, no SLA"
    if deadline.status == "breached":
        overdue = -deadline.days_left
        if overdue == 0:
            return "breached today"
        return f"breached, {overdue} day{'s' if overdue != 1 else ''} over"
    return f"{deadline.days_left} day{'s' if deadline.days_left != 1 else ''} left"


_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_ENV.filters["local"] = _local
_ENV.filters["days_text"] = _days_text

TEMPLATE_PATH = Path(__file__).with_name("dashboard.html")


@functools.cache
def _page_template() -> Template:
    """The page template (``dashboard.html`` beside this module), read on first use, not at import."""
    return _ENV.from_string(TEMPLATE_PATH.read_text(encoding="utf-8"))


def render_page(view: DashboardView, policy: Policy, *, root: str = "", problem: str | None = None) -> str:
    """The dashboard page as HTML; every value is escaped by the template."""
    return _page_template().render(
        view=view,
        zone=policy.timezone,
        zone_name=policy.timezone_name,
        root=root.rstrip("/"),
        query=urlencode(view.filters.as_query()),
        problem=problem,
        colours=STATUS_COLOURS,
        cat_colours=category_colours(view.purges.categories),
        svg=render_purge_svg(view.purges),
        failure_days=FAILURE_WINDOW_DAYS,
        state_groups=STATE_GROUPS,
    )
