"""The dashboard's view model and rendering, without servers: days left and bar colours,
ordering, filters, per-day bucketing on the policy calendar, the SVG plot, the page's
escaping, the DAG-run summary, and that the app and plugin only ever read."""

from __future__ import annotations

import importlib.util
import re
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from include.retention.dashboard import queries
from include.retention.dashboard import view as dash
from include.retention.policy import Policy

UTC = timezone.utc
NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
SGT = ZoneInfo("Asia/Singapore")
ROOT_DIR = __import__("pathlib").Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- days left


@pytest.mark.parametrize(
    "remaining, closed, days_left, status",
    [
        pytest.param(timedelta(days=28, hours=12), False, 29, "ok", id="fresh"),
        pytest.param(timedelta(days=7, hours=1), False, 8, "ok", id="just-before-T-7"),
        pytest.param(timedelta(days=7), False, 7, "warning", id="T-7-amber"),
        pytest.param(timedelta(days=5, hours=12), False, 6, "warning", id="T-5.5"),
        pytest.param(timedelta(hours=3), False, 1, "warning", id="last-day"),
        pytest.param(timedelta(0), False, 0, "breached", id="at-the-breach"),
        pytest.param(-timedelta(hours=3), False, 0, "breached", id="breached-today"),
        pytest.param(-timedelta(days=3, hours=12), False, -3, "breached", id="three-days-over"),
        pytest.param(-timedelta(days=3), True, -3, "closed", id="closed-late"),
    ],
)
def test_deadline(remaining: timedelta, closed: bool, days_left: int, status: str) -> None:
    d = dash.deadline(NOW + remaining, NOW, window_days=30, warning_days=7, closed=closed)
    assert (d.days_left, d.status) == (days_left, status)
    assert 0.0 <= d.bar_fraction <= 1.0
    if status == "breached":
        assert d.bar_fraction == 1.0  # a full red bar


@pytest.mark.parametrize("hours", [-100, -84, -24, -1, 0, 1, 23, 24, 25, 156, 167, 168, 169, 180, 700])
def test_deadline_agrees_with_the_sla_monitor(hours: int) -> None:
    """Same days left as timeutil.days_left, same amber/red as sla.classify's warning/breach."""
    from include.retention.timeutil import days_left

    due = NOW + timedelta(hours=hours)
    d = dash.deadline(due, NOW, window_days=30, warning_days=7)
    assert d.days_left == days_left(due, NOW)
    remaining = due - NOW
    expected = "breached" if remaining <= timedelta(0) else "warning" if remaining <= timedelta(days=7) else "ok"
    assert d.status == expected


def test_states_are_the_request_flow_states() -> None:
    from include.retention.request_states import STATES, TERMINAL_STATES

    assert set(dash.KNOWN_STATES) == set(STATES)
    assert dash.CLOSED_STATES == TERMINAL_STATES


def test_deadline_bar_is_the_share_of_the_window_left() -> None:
    assert dash.deadline(NOW + timedelta(days=15), NOW, window_days=30, warning_days=7).bar_fraction == 0.5
    assert dash.deadline(NOW + timedelta(days=45), NOW, window_days=30, warning_days=7).bar_fraction == 1.0


def test_deadline_needs_aware_times() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        dash.deadline(NOW.replace(tzinfo=None), NOW, window_days=30, warning_days=7)


def _row(reference: str, due_in_days: float, state: str = "planned", mode: str = "execute") -> dash.RequestRow:
    due = NOW + timedelta(days=due_in_days)
    return dash.RequestRow(
        request_id=f"req-{reference}", reference=reference, request_type="deletion", tenant_id="1001",
        subject_type="agent", categories=("call_data",), state=state, mode=mode, received_at=due - timedelta(30),
        due_at=due, updated_at=NOW, completed_at=None, error=None, failed_step=None,
        deadline=dash.deadline(due, NOW, window_days=30, warning_days=7, closed=state in dash.CLOSED_STATES,
                               preview=mode != "execute"),
    )


def test_breached_first_most_overdue_first_then_by_due_date_closed_last() -> None:
    rows = [_row("green", 20), _row("done", -10, "completed"), _row("late", -1), _row("amber", 3),
            _row("later", -6), _row("soon", 10), _row("preview", -12, mode="preview")]
    assert [r.reference for r in dash.order_requests(rows)] == [
        "later", "late", "amber", "soon", "green", "preview", "done"]
    assert _row("preview", -12, mode="preview").deadline.status == "preview"  # no SLA: never red


# --------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    "tenant, state, expected",
    [
        pytest.param(None, None, dash.Filters(None, "recent"), id="defaults"),
        pytest.param("  ", "", dash.Filters(None, "recent"), id="blank-is-none"),
        pytest.param("1001", "all", dash.Filters("1001", "all"), id="tenant-all"),
        pytest.param(" 42 ", "in_progress", dash.Filters("42", "in_progress"), id="trimmed"),
    ],
)
def test_filters_parse(policy: Policy, tenant: str | None, state: str | None, expected: dash.Filters) -> None:
    assert dash.Filters.parse(policy, tenant, state) == expected


@pytest.mark.parametrize(
    "tenant, state",
    [
        pytest.param("10%", None, id="wildcard"),
        pytest.param("1001' OR 1=1 --", None, id="quote"),
        pytest.param("０１", None, id="fullwidth-digits"),
        pytest.param("0123", None, id="not-the-tenant-format"),
        pytest.param("1" * 200, None, id="overlong"),
        pytest.param(None, "OPEN", id="capitals"),
        pytest.param(None, "open;drop", id="semicolon"),
        pytest.param(None, "x" * 40, id="long-state"),
    ],
)
def test_filters_refuse_malformed(policy: Policy, tenant: str | None, state: str | None) -> None:
    with pytest.raises(dash.FilterError):
        dash.Filters.parse(policy, tenant, state)


@pytest.mark.parametrize("value, ok", [("req-1a2b", True), ("DEL-20261128-1a2b3c4d", True), ("a" * 64, True),
                                       ("", False), ("../etc", False), ("a b", False), ("a" * 65, False)])
def test_request_id_in_urls(value: str, ok: bool) -> None:
    if ok:
        assert dash.valid_request_id(value) == value
    else:
        with pytest.raises(dash.FilterError):
            dash.valid_request_id(value)


# --------------------------------------------------------------------------- purge volumes


def test_purge_window_is_90_days_to_today() -> None:
    days = dash.purge_window(date(2026, 11, 28))
    assert len(days) == 90 and days[-1] == date(2026, 11, 28) and days[0] == date(2026, 8, 31)


def test_bucketing_follows_the_policy_calendar() -> None:
    days = dash.purge_window(date(2026, 11, 28), 3)  # 26, 27, 28 Nov (Singapore)
    rows = [
        ("call_data", datetime(2026, 11, 26, 15, 0), 10, 0),  # 23:00 SGT on the 26th
        ("call_data", datetime(2026, 11, 26, 16, 0), 5, 1),  # 00:00 SGT on the 27th
        ("agent_info", datetime(2026, 11, 28, 2, 0), 7, 0),
        ("call_data", datetime(2026, 11, 25, 15, 0), 999, 0),  # 23:00 SGT on the 25th: outside
        ("retired_category", datetime(2026, 11, 27, 1, 0), 3, 0),
    ]
    volumes = dash.bucket_volumes(rows, days=days, categories=["call_data", "agent_info"], zone=SGT,
                                  zone_name="Asia/Singapore")
    assert volumes.categories == ("call_data", "agent_info", "retired_category")
    assert volumes.deleted["call_data"] == (10, 5, 0)
    assert volumes.deleted["agent_info"] == (0, 0, 7)
    assert volumes.failed == (0, 1, 0)
    assert volumes.peak == 10 and volumes.total("call_data") == 15
    data = volumes.as_json()
    assert data["days"] == ["2026-11-26", "2026-11-27", "2026-11-28"]
    assert data["totals"] == {"call_data": 15, "agent_info": 7, "retired_category": 3}


# --------------------------------------------------------------------------- daily DAGs


def test_dag_status_per_category_and_reader_failure(policy: Policy) -> None:
    run = dash.DagRunInfo("retention_call_data", "scheduled__x", "failed", "scheduled", NOW, NOW, NOW, ("verify",))

    def reader(dag_ids: list[str], now: datetime) -> dict[str, tuple[dash.DagRunInfo | None, tuple, int]]:
        assert now == NOW and set(dag_ids) == {f"retention_{c}" for c in policy.categories}
        return {"retention_call_data": (run, (run,), 1)}

    statuses = {s.dag_id: s for s in queries.read_dag_status(policy, NOW, reader)}
    assert statuses["retention_call_data"].failure_count == 1
    assert statuses["retention_configuration"].last_run is None
    assert dash.dag_status_json(statuses["retention_call_data"])["last_run"]["failed_tasks"] == ["verify"]

    def broken(dag_ids: list[str], now: datetime) -> dict:
        raise ConnectionError("metadata DB down")

    down = queries.read_dag_status(policy, NOW, broken)
    assert all(s.error and "ConnectionError" in s.error for s in down)


# --------------------------------------------------------------------------- rendering


def _view(policy: Policy, requests: tuple[dash.RequestRow, ...] = (), **series: tuple[int, ...]) -> dash.DashboardView:
    days = dash.purge_window(date(2026, 11, 28), 3)
    deleted = {c: series.get(c, (0, 0, 0)) for c in policy.categories}
    purges = dash.PurgeVolumes(days=days, categories=tuple(deleted), deleted=deleted, failed=(0, 0, 0),
                               timezone="Asia/Singapore")
    return dash.DashboardView(
        generated_at=NOW, filters=dash.Filters(), states=dash.KNOWN_STATES, requests=requests, purges=purges,
        dags=tuple(queries.read_dag_status(policy, NOW, lambda ids, now: {})), certificates=(),
        window_days=30, warning_days=7, counts={"shown": len(requests), "breached": 0, "warning": 0, "ok": 0},
    )


def test_svg_plot_draws_stacked_bars_to_scale(policy: Policy) -> None:
    from include.retention.dashboard.app import render_purge_svg

    view = _view(policy, call_data=(100, 0, 40), agent_info=(100, 0, 0))
    svg = str(render_purge_svg(view.purges))
    bars = re.findall(r'<rect class="bar"[^>]*data-day="([^"]+)" data-category="([^"]+)" data-deleted="(\d+)"', svg)
    assert sorted(bars) == [("2026-11-26", "agent_info", "100"), ("2026-11-26", "call_data", "100"),
                            ("2026-11-28", "call_data", "40")]
    heights = [float(h) for h in re.findall(r'<rect class="bar"[^>]*height="([\d.]+)"', svg)]
    assert max(heights) / min(heights) == pytest.approx(100 / 40, rel=0.01)
    assert 'data-peak="200"' in svg and "<script" not in svg and "href" not in svg


def test_svg_plot_when_nothing_was_purged(policy: Policy) -> None:
    from include.retention.dashboard.app import render_purge_svg

    svg = str(render_purge_svg(_view(policy).purges))
    assert "No purges in these 3 days" in svg and 'class="bar"' not in svg


@pytest.mark.parametrize("value, ceiling", [(0, 1), (7, 10), (10, 10), (11, 20), (1311, 2000), (4321, 5000),
                                            (2400, 2500), (99999, 100000)])
def test_nice_ceiling(value: int, ceiling: int) -> None:
    from include.retention.dashboard.app import _nice_ceiling

    assert _nice_ceiling(value) == ceiling


def test_page_escapes_ledger_text_and_fetches_nothing(policy: Policy) -> None:
    from include.retention.dashboard.app import render_page

    hostile = _row('<script>alert("x")</script>', -2, "failed")
    hostile = dash.RequestRow(**{**hostile.__dict__, "error": '<img src=x onerror="alert(1)">'})
    html = render_page(_view(policy, (hostile,)), policy, root="/retention")
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert" in html
    assert "<script" not in html.lower()
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from outside
    assert 'action="/retention/"' in html and 'id="purge-plot"' in html
    assert "breached, 2 days over" in html


# --------------------------------------------------------------------------- reads only


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_app_routes_are_gets_and_writes_are_refused() -> None:
    from fastapi.testclient import TestClient

    from include.retention.dashboard.app import app

    methods = {m for route in app.routes for m in getattr(route, "methods", set())}
    assert methods <= {"GET", "HEAD"}
    client = TestClient(app)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        response = client.request(method, "/api/requests")
        assert response.status_code == 405 and "only reads" in response.text


def test_plugin_mounts_the_app_and_a_nav_link() -> None:
    spec = importlib.util.spec_from_file_location("retention_dashboard_plugin", ROOT_DIR / "plugins" /
                                                  "retention_dashboard.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = module.RetentionDashboardPlugin
    (mounted,) = plugin.fastapi_apps
    assert mounted["url_prefix"] == "/retention"
    assert not any(mounted["url_prefix"].startswith(p) for p in ("/api/v2", "/ui", "/execution", "/auth", "/pluginsv2"))
    (view,) = plugin.external_views
    assert view["href"] == "/retention/" and view["url_route"] == "retention" and view["destination"] == "nav"
