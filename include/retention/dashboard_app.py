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
``GET /api/requests``                     requests (``state``: ``open`` (default), ``all`` or one state)
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

import logging
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, select_autoescape
from markupsafe import Markup, escape

from include.retention import dashboard as dash
from include.retention.ledger import LEDGER_CONN_ID
from include.retention.policy import Policy, load_policy

log = logging.getLogger(__name__)

UTC = timezone.utc
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
STATUS_COLOURS = {"ok": "#2e9e44", "warning": "#e8a317", "breached": "#d93025", "closed": "#9aa0a6"}
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
    return datetime.now(UTC)


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


@app.exception_handler(dash.FilterError)
async def bad_filter(request: Request, exc: dash.FilterError) -> JSONResponse:
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


def _filters(tenant: str | None, state: str | None) -> dash.Filters:
    return dash.Filters.parse(policy(), tenant, state)


def _view(request: Request, filters: dash.Filters) -> dash.DashboardView:
    return dash.build_view(policy(), filters, _now(), ledger_conn_id=request.app.state.ledger_conn_id,
                           dag_runs=request.app.state.dag_runs)


TenantQuery = Query(None, max_length=128, description="Only this tenant (the policy's tenant id format)")
StateQuery = Query(None, max_length=32, description="'open' (default), 'all', or one request state")

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
    return dash.view_json(_view(request, _filters(tenant, state)))


@app.get("/api/requests", summary="Requests, breached first", dependencies=[Reader])
def api_requests(request: Request, tenant: str | None = TenantQuery, state: str | None = StateQuery) -> dict[str, Any]:
    filters = _filters(tenant, state)
    now = _now()
    with dash.read_only_cursor(request.app.state.ledger_conn_id) as cur:
        certified = frozenset(c.request_id for c in dash.list_certificates(cur, tenant=filters.tenant))
        rows = dash.read_requests(cur, policy(), filters, now, certified=certified)
    return {"generated_at": now.isoformat(), "filters": {"tenant": filters.tenant, "state": filters.state},
            "warning_days": policy().sla_warning_days, "requests": [dash.request_json(r) for r in rows]}


@app.get("/api/purges", summary="Deleted per category per day", dependencies=[Reader])
def api_purges(
    request: Request, tenant: str | None = TenantQuery,
    days: int = Query(dash.PURGE_WINDOW_DAYS, ge=1, le=366, description="How many days back, today included"),
) -> dict[str, Any]:
    filters = _filters(tenant, None)
    with dash.read_only_cursor(request.app.state.ledger_conn_id) as cur:
        volumes = dash.read_purge_volumes(cur, policy(), _now(), tenant=filters.tenant, days=days)
    return volumes.as_json()


@app.get("/api/daily-dags", summary="Daily DAGs: last run and failures", dependencies=[Reader])
def api_daily_dags(request: Request) -> dict[str, Any]:
    statuses = dash.read_dag_status(policy(), _now(), request.app.state.dag_runs)
    return {"failure_window_days": dash.FAILURE_WINDOW_DAYS, "daily_dags": [dash.dag_status_json(s) for s in statuses]}


@app.get("/api/certificates", summary="Deletion certificates", dependencies=[Reader])
def api_certificates(request: Request, tenant: str | None = TenantQuery) -> dict[str, Any]:
    filters = _filters(tenant, None)
    with dash.read_only_cursor(request.app.state.ledger_conn_id) as cur:
        certificates = dash.list_certificates(cur, tenant=filters.tenant)
    return {"certificates": [dash.certificate_json(c) for c in certificates]}


@app.get("/api/certificates/{request_id}.{fmt}", summary="One certificate", dependencies=[Reader])
def api_certificate(request: Request, request_id: str, fmt: str, download: bool = False) -> Response:
    request_id = dash.valid_request_id(request_id)
    if fmt not in dash.CERTIFICATE_MEDIA_TYPES:
        raise HTTPException(404, f"no such certificate format; use one of {', '.join(dash.CERTIFICATE_MEDIA_TYPES)}")
    with dash.read_only_cursor(request.app.state.ledger_conn_id) as cur:
        body = dash.read_certificate(cur, request_id, fmt)
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
    except dash.FilterError as exc:
        filters, problem = dash.Filters(), str(exc)
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


def render_purge_svg(volumes: dash.PurgeVolumes, *, width: int = 960, height: int = 260) -> Markup:
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


def _local(value: datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M") if value is not None else "—"


def _days_text(deadline: dash.Deadline) -> str:
    if deadline.status == "closed":
        return "closed"
    if deadline.status == "breached":
        overdue = -deadline.days_left
        if overdue == 0:
            return "breached today"
        return f"breached, {overdue} day{'s' if overdue != 1 else ''} over"
    if deadline.days_left == 0:
        return "due today"
    return f"{deadline.days_left} day{'s' if deadline.days_left != 1 else ''} left"


_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_ENV.filters["local"] = _local
_ENV.filters["days_text"] = _days_text

PAGE = _ENV.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Data retention</title>
<style>
 body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#202124;margin:0;background:#f8f9fa}
 main{max-width:1100px;margin:0 auto;padding:16px 20px 40px}
 h1{font-size:22px;margin:4px 0 2px} h2{font-size:17px;margin:26px 0 8px}
 .muted{color:#5f6368} .err{color:#b3261e;background:#fce8e6;padding:8px 12px;border-radius:6px}
 section{background:#fff;border:1px solid #e3e6ea;border-radius:8px;padding:12px 16px;margin-top:14px}
 table{border-collapse:collapse;width:100%} th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #eef0f2;vertical-align:top}
 th{font-weight:600;color:#3c4043;font-size:13px} td.num{text-align:right;font-variant-numeric:tabular-nums}
 form.filters{display:flex;gap:12px;align-items:end;flex-wrap:wrap}
 form.filters label{display:flex;flex-direction:column;font-size:12px;color:#5f6368}
 input,select,button{font:inherit;padding:4px 8px;border:1px solid #c4c7c5;border-radius:6px;background:#fff}
 button{background:#1a73e8;color:#fff;border-color:#1a73e8;cursor:pointer}
 .chips span{display:inline-block;margin-right:8px;padding:2px 10px;border-radius:12px;background:#eef0f2;font-size:13px}
 .track{width:180px;height:14px;background:#eef0f2;border-radius:7px;overflow:hidden}
 .fill{height:100%;border-radius:7px}
 .deadline{display:flex;align-items:center;gap:8px;white-space:nowrap}
 .state{font-family:ui-monospace,monospace;font-size:12px;padding:1px 6px;border-radius:4px;background:#eef0f2}
 .state-failed{background:#fce8e6;color:#b3261e} .state-success{background:#e6f4ea;color:#137333}
 .legend span{display:inline-flex;align-items:center;gap:4px;margin-right:14px;font-size:13px}
 .legend i{display:inline-block;width:11px;height:11px;border-radius:2px}
 code{font-size:12px}
</style></head>
<body><main>
<h1>Data retention</h1>
<div class="muted">Generated {{ view.generated_at|local(zone) }} ({{ zone_name }}) · requests are due {{ view.window_days }} days
 after receipt; amber from T-{{ view.warning_days }}, red at the breach · JSON: <a href="{{ root }}/api/summary?{{ query }}">summary</a>,
 <a href="{{ root }}/api">routes</a></div>
{% if problem %}<p class="err" id="filter-error">{{ problem }}</p>{% endif %}

<section>
<form class="filters" method="get" action="{{ root }}/">
 <label>Tenant <input name="tenant" id="filter-tenant" value="{{ view.filters.tenant or '' }}" placeholder="all tenants" size="16"></label>
 <label>State <select name="state" id="filter-state">
  {% for s in ['open', 'all'] + view.states|list %}<option value="{{ s }}"{% if s == view.filters.state %} selected{% endif %}>{{ s }}</option>{% endfor %}
 </select></label>
 <button type="submit">Apply</button> <a href="{{ root }}/">clear</a>
</form>
</section>

<section id="requests-section">
<h2>Requests <span class="muted">({{ view.filters.state }}{% if view.filters.tenant %}, tenant {{ view.filters.tenant }}{% endif %})</span></h2>
<div class="chips"><span id="count-shown">{{ view.counts.shown }} shown</span><span id="count-breached" style="color:{{ colours.breached }}">{{ view.counts.breached }} breached</span><span id="count-warning" style="color:#a56a00">{{ view.counts.warning }} due within {{ view.warning_days }} days</span></div>
{% if view.requests %}
<table id="requests"><thead><tr><th>Days left</th><th>State</th><th>Tenant</th><th>Reference</th><th>Type</th><th>Received</th><th>Due</th><th>Certificate</th></tr></thead><tbody>
{% for r in view.requests %}
<tr data-reference="{{ r.reference }}" data-status="{{ r.deadline.status }}" data-days-left="{{ r.deadline.days_left }}">
 <td><div class="deadline"><div class="track"><div class="fill" style="width:{{ '%.1f'|format(r.deadline.bar_fraction * 100) }}%;background:{{ colours[r.deadline.status] }}"></div></div><span>{{ r.deadline|days_text }}</span></div></td>
 <td><span class="state">{{ r.state }}</span>{% if r.failed_step %} <span class="muted">at {{ r.failed_step }}</span>{% endif %}{% if r.error %}<div class="muted" title="{{ r.error }}">{{ r.error|truncate(60) }}</div>{% endif %}</td>
 <td>{{ r.tenant_id }}</td><td><code>{{ r.reference }}</code></td>
 <td>{{ r.request_type }}{% if r.subject_type %} ({{ r.subject_type }}){% endif %}{% if r.mode != 'execute' %} <span class="muted">{{ r.mode }}</span>{% endif %}</td>
 <td>{{ r.received_at|local(zone) }}</td><td>{{ r.due_at|local(zone) }}</td>
 <td>{% if r.has_certificate %}<a href="{{ root }}/api/certificates/{{ r.request_id|urlencode }}.html">view</a>{% else %}<span class="muted">—</span>{% endif %}</td>
</tr>
{% endfor %}
</tbody></table>
{% else %}<p class="muted" id="no-requests">No requests match.</p>{% endif %}
</section>

<section id="purges-section">
<h2>Purged, last {{ view.purges.days|length }} days <span class="muted">(rows, keys, objects and documents deleted per day, {{ zone_name }} calendar; dry runs excluded{% if view.filters.tenant %}; tenant {{ view.filters.tenant }} only{% endif %})</span></h2>
{{ svg }}
<div class="legend">{% for c in view.purges.categories %}<span><i style="background:{{ cat_colours[c] }}"></i>{{ c }}</span>{% endfor %}</div>
<table id="purge-totals"><thead><tr><th>Category</th><th class="num">Deleted ({{ view.purges.days|length }} days)</th></tr></thead><tbody>
{% for c in view.purges.categories %}<tr data-category="{{ c }}"><td>{{ c }}</td><td class="num">{{ '{:,}'.format(view.purges.total(c)) }}</td></tr>{% endfor %}
</tbody></table>
{% if view.purges.failed|sum %}<p class="muted">Failed purges in this window: {{ view.purges.failed|sum }}.</p>{% endif %}
</section>

<section id="dags-section">
<h2>Daily DAGs</h2>
<table id="daily-dags"><thead><tr><th>Category</th><th>DAG</th><th>Last run</th><th>State</th><th>Ended</th><th>Failures ({{ failure_days }} days)</th></tr></thead><tbody>
{% for d in view.dags %}
<tr data-dag-id="{{ d.dag_id }}" data-last-state="{{ d.last_run.state if d.last_run else '' }}" data-failures="{{ d.failure_count }}">
 <td>{{ d.category }}</td><td><a href="/dags/{{ d.dag_id }}" target="_blank" rel="noopener"><code>{{ d.dag_id }}</code></a></td>
 {% if d.last_run %}<td>{{ d.last_run.run_after|local(zone) }} <span class="muted">{{ d.last_run.run_type }}</span></td>
 <td><span class="state state-{{ d.last_run.state }}">{{ d.last_run.state }}</span></td><td>{{ d.last_run.end_date|local(zone) }}</td>
 {% else %}<td colspan="3" class="muted">{{ d.error or 'never run' }}</td>{% endif %}
 <td>{% if d.failure_count %}<strong style="color:{{ colours.breached }}">{{ d.failure_count }}</strong>
  {% for f in d.failures %}<div class="muted"><code>{{ f.run_id }}</code>{% if f.failed_tasks %}: {{ f.failed_tasks|join(', ') }}{% endif %}</div>{% endfor %}
 {% else %}0{% endif %}</td>
</tr>
{% endfor %}
</tbody></table>
</section>

<section id="certificates-section">
<h2>Certificates</h2>
{% if view.certificates %}
<table id="certificates"><thead><tr><th>Certificate</th><th>Reference</th><th>Tenant</th><th>Type</th><th>Issued</th><th>Certificate files</th></tr></thead><tbody>
{% for c in view.certificates %}
<tr data-request-id="{{ c.request_id }}"><td><code>{{ c.certificate_id }}</code></td><td><code>{{ c.reference }}</code></td><td>{{ c.tenant_id }}</td><td>{{ c.request_type }}</td><td>{{ c.issued_at|local(zone) }}</td>
 <td class="cert-links">view {% for f in c.formats %}<a class="cert-view" data-format="{{ f }}" href="{{ root }}/api/certificates/{{ c.request_id|urlencode }}.{{ f }}">{{ f|upper }}</a> {% endfor %}
  · download {% for f in c.formats %}<a class="cert-download" data-format="{{ f }}" href="{{ root }}/api/certificates/{{ c.request_id|urlencode }}.{{ f }}?download=1" download>{{ f|upper }}</a> {% endfor %}</td></tr>
{% endfor %}
</tbody></table>
<p class="muted">The signed JSON is the ledger's copy; COS holds the same three files under <code>certificates/</code>. Inside the Airflow UI the view links open here; downloads need the page opened on its own (<a href="{{ root }}/" target="_blank" rel="noopener">{{ root }}/</a>), since the UI's frame allows no downloads.</p>
{% else %}<p class="muted" id="no-certificates">No certificates{% if view.filters.tenant %} for this tenant{% endif %} yet.</p>{% endif %}
</section>
</main></body></html>
"""
)


def render_page(view: dash.DashboardView, policy: Policy, *, root: str = "", problem: str | None = None) -> str:
    """The dashboard page as HTML; every value is escaped by the template."""
    return PAGE.render(
        view=view,
        zone=policy.timezone,
        zone_name=policy.timezone_name,
        root=root.rstrip("/"),
        query=urlencode(view.filters.as_query()),
        problem=problem,
        colours=STATUS_COLOURS,
        cat_colours=category_colours(view.purges.categories),
        svg=render_purge_svg(view.purges),
        failure_days=dash.FAILURE_WINDOW_DAYS,
    )
