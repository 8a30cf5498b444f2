"""The dashboard's routes on a real api-server (plugin loaded from plugins/) over a seeded ledger.

Covers: authentication (anonymous 401, bad or revoked token 403, bearer token and UI cookie
accepted), read-only (every write method 405, the ledger unchanged, the ledger session
refuses writes), and the numbers of every JSON route against the seeds in dashboard_support.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.e2e import dashboard_support as support
from tests.e2e.dashboard_support import DashboardServer, dashboard  # noqa: F401  (the shared server fixture)

pytestmark = [pytest.mark.servers, pytest.mark.slow]

PROTECTED = [
    "/retention/",
    "/retention/api",
    "/retention/api/openapi.json",
    "/retention/api/summary",
    "/retention/api/requests",
    "/retention/api/purges",
    "/retention/api/daily-dags",
    "/retention/api/certificates",
    "/retention/api/certificates/req-done.json",
]


@pytest.fixture(scope="module")
def admin(dashboard: DashboardServer) -> httpx.Client:  # noqa: F811
    with httpx.Client(base_url=dashboard.base_url, timeout=30,
                      headers={"Authorization": f"Bearer {dashboard.token('admin')}"}) as client:
        yield client


def get_json(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


# --------------------------------------------------------------------------- authentication


@pytest.mark.parametrize("path", PROTECTED)
def test_anonymous_is_refused(dashboard: DashboardServer, path: str) -> None:  # noqa: F811
    response = httpx.get(dashboard.url(path), timeout=30, follow_redirects=False)
    assert response.status_code == 401, response.text
    assert "TCK-" not in response.text


@pytest.mark.parametrize(
    "headers, cookies",
    [
        pytest.param({"Authorization": "Bearer not-a-jwt"}, {}, id="garbage-bearer"),
        pytest.param({}, {"_token": "not-a-jwt"}, id="garbage-cookie"),
        pytest.param({"Authorization": "Bearer eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZG1pbiIsInJvbGUiOiJB"
                      "RE1JTiJ9.c2lnbmVkLWJ5LXNvbWVvbmUtZWxzZQ"}, {}, id="forged-signature"),
    ],
)
def test_invalid_token_is_refused(dashboard: DashboardServer, headers: dict[str, str],  # noqa: F811
                                  cookies: dict[str, str]) -> None:
    response = httpx.get(dashboard.url("/retention/api/summary"), headers=headers, cookies=cookies, timeout=30)
    assert response.status_code == 403, response.text
    assert "TCK-" not in response.text


def test_logged_out_token_is_refused(dashboard: DashboardServer) -> None:  # noqa: F811
    token = dashboard.token("viewer")
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(dashboard.url("/retention/api/requests"), headers=headers, timeout=30).status_code == 200
    httpx.get(dashboard.url("/api/v2/auth/logout"), headers=headers, timeout=30, follow_redirects=False)
    assert httpx.get(dashboard.url("/retention/api/requests"), headers=headers, timeout=30).status_code == 403


def test_viewer_token_and_ui_cookie_are_accepted(dashboard: DashboardServer) -> None:  # noqa: F811
    token = dashboard.token("viewer")
    by_header = httpx.get(dashboard.url("/retention/api/summary"), headers={"Authorization": f"Bearer {token}"},
                          timeout=30)
    assert by_header.status_code == 200
    page = httpx.get(dashboard.url("/retention/"), cookies={"_token": token}, timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "TCK-BREACH" in page.text and '<svg id="purge-plot"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text.lower()
    assert 'src="http' not in page.text  # nothing fetched from anywhere


# --------------------------------------------------------------------------- reads only


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", ["/retention/", "/retention/api/requests", "/retention/api/certificates/req-done.json",
                                  "/retention/api/requests/req-breach"])
def test_no_route_writes(admin: httpx.Client, dashboard: DashboardServer, method: str, path: str) -> None:  # noqa: F811
    before = dashboard.ledger.query("SELECT COUNT(*), MAX(updated_at) FROM requests")
    response = admin.request(method, path)
    assert response.status_code == 405, response.text
    assert dashboard.ledger.query("SELECT COUNT(*), MAX(updated_at) FROM requests") == before


def test_every_documented_route_is_a_get(admin: httpx.Client) -> None:
    routes = get_json(admin, "/retention/api")["routes"]
    assert {r["method"] for r in routes} == {"GET"}
    spec = get_json(admin, "/retention/api/openapi.json")
    methods = {m for item in spec["paths"].values() for m in item}
    assert methods == {"get"}
    documented = {r["path"] for r in routes}
    assert set(spec["paths"]) == documented


def test_the_ledger_session_is_read_only(
    dashboard: DashboardServer, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    import MySQLdb

    from include.retention.dashboard.queries import read_only_cursor

    for key, value in dashboard.ledger_env.items():
        monkeypatch.setenv(key, value)
    with read_only_cursor() as cur:
        with pytest.raises(MySQLdb.OperationalError) as err:
            cur.execute("DELETE FROM requests WHERE request_id = 'req-done'")
        assert err.value.args[0] == 1792  # ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
    assert dashboard.ledger.query("SELECT COUNT(*) FROM requests WHERE request_id = 'req-done'") == [(1,)]


def test_plugin_is_registered_with_a_nav_link(admin: httpx.Client) -> None:
    plugins = get_json(admin, "/api/v2/plugins")["plugins"]
    ours = next(p for p in plugins if p["name"] == "retention_dashboard")
    assert [a["url_prefix"] for a in ours["fastapi_apps"]] == ["/retention"]
    (view,) = ours["external_views"]
    assert view["href"] == "/retention/" and view["url_route"] == "retention" and view["destination"] == "nav"


# --------------------------------------------------------------------------- the numbers


def test_by_default_open_requests_then_the_recently_closed(admin: httpx.Client) -> None:
    rows = get_json(admin, "/retention/api/requests")["requests"]
    assert [r["reference"] for r in rows] == support.EXPECTED_RECENT_ORDER  # not TCK-OLD, closed 45 days ago
    assert {r["status"] for r in rows[len(support.EXPECTED_OPEN_ORDER):]} == {"closed"}


def test_open_requests_breached_first_with_days_left(admin: httpx.Client) -> None:
    data = get_json(admin, "/retention/api/requests", state="open")
    rows = data["requests"]
    assert [r["reference"] for r in rows] == support.EXPECTED_OPEN_ORDER
    by_ref = {r["reference"]: r for r in rows}
    for reference, days in support.EXPECTED_DAYS_LEFT.items():
        assert by_ref[reference]["days_left"] == days, reference
    assert by_ref["TCK-BREACH"]["status"] == "breached" and by_ref["TCK-BREACH"]["bar_fraction"] == 1.0
    assert by_ref["TCK-AMBER"]["status"] == "warning"
    assert by_ref["TCK-GREEN"]["status"] == "ok" and by_ref["TCK-FAILED"]["status"] == "ok"
    assert 0.9 < by_ref["TCK-GREEN"]["bar_fraction"] < 0.97
    assert by_ref["TCK-FAILED"]["error"].startswith("PartialPurgeError")
    assert by_ref["TCK-FAILED"]["failed_step"] == "call_data.recordings"
    assert by_ref["TCK-PREVIEW"]["status"] == "preview" and by_ref["TCK-PREVIEW"]["mode"] == "preview"


def test_requests_never_carry_the_subject(admin: httpx.Client) -> None:
    response = admin.get("/retention/api/summary", params={"state": "all"})
    assert response.status_code == 200
    assert "subject_hash" not in response.text and "subject_enc" not in response.text
    assert "gAAAA" not in response.text and "abab" not in response.text
    page = admin.get("/retention/", params={"state": "all"})
    assert "gAAAA" not in page.text and "abababab" not in page.text


@pytest.mark.parametrize(
    "params, expected",
    [
        pytest.param({"tenant": "1001"}, ["TCK-BREACH", "TCK-GREEN", "TCK-DONE"], id="tenant"),
        pytest.param({"tenant": "1001", "state": "open"}, ["TCK-BREACH", "TCK-GREEN"], id="open-of-tenant"),
        pytest.param({"tenant": "1005"}, [], id="closed-long-ago"),
        pytest.param({"state": "completed"}, ["TCK-OLD", "TCK-DONE"], id="state-completed"),
        pytest.param({"state": "failed"}, ["TCK-FAILED"], id="state-failed"),
        pytest.param({"state": "all", "tenant": "1001"}, ["TCK-BREACH", "TCK-GREEN", "TCK-DONE"], id="all-of-tenant"),
        pytest.param({"tenant": "1002"}, ["TCK-AMBER", "TCK-PREVIEW"], id="preview-after-sla-requests"),
        pytest.param({"tenant": "1002", "state": "rejected"}, [], id="nothing"),
    ],
)
def test_filters(admin: httpx.Client, params: dict[str, str], expected: list[str]) -> None:
    rows = get_json(admin, "/retention/api/requests", **params)["requests"]
    assert [r["reference"] for r in rows] == expected


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"tenant": "10%"}, id="wildcard-tenant"),
        pytest.param({"tenant": "1001' OR '1'='1"}, id="quote-tenant"),
        pytest.param({"tenant": "abc"}, id="not-a-tenant-id"),
        pytest.param({"state": "x'); DROP TABLE requests; --"}, id="sql-state"),
        pytest.param({"state": "Open"}, id="capital-state"),
    ],
)
def test_malformed_filters_are_refused(admin: httpx.Client, dashboard: DashboardServer,  # noqa: F811
                                       params: dict[str, str]) -> None:
    response = admin.get("/retention/api/requests", params=params)
    assert response.status_code == 400, response.text
    page = admin.get("/retention/", params=params)
    assert page.status_code == 400 and 'id="filter-error"' in page.text
    assert dashboard.ledger.query("SELECT COUNT(*) FROM requests") == [(len(support.REQUESTS),)]


def test_purge_volumes_per_category_per_day(admin: httpx.Client, dashboard: DashboardServer) -> None:  # noqa: F811
    data = get_json(admin, "/retention/api/purges")
    today = support.today_local(dashboard.seeded_at)
    assert data["timezone"] == "Asia/Singapore"
    assert len(data["days"]) == 90 and data["days"][-1] == today.isoformat()
    assert data["totals"] == support.EXPECTED_TOTALS
    day3 = data["days"].index((today - timedelta(days=3)).isoformat())
    assert data["deleted"]["call_data"][day3] == support.EXPECTED_DAY3_CALL_DATA
    assert data["deleted"]["agent_info"][day3] == 77
    day5 = data["days"].index((today - timedelta(days=5)).isoformat())
    assert data["failed"][day5] == 1 and sum(data["failed"]) == 1
    short = get_json(admin, "/retention/api/purges", days=7)
    assert len(short["days"]) == 7 and short["totals"]["call_analytics"] == 0
    tenant = get_json(admin, "/retention/api/purges", tenant="1001")
    assert tenant["totals"]["call_data"] == 34 and tenant["totals"]["agent_info"] == 77
    assert admin.get("/retention/api/purges", params={"days": 0}).status_code == 422


def test_daily_dags_last_run_and_failures(admin: httpx.Client) -> None:
    data = get_json(admin, "/retention/api/daily-dags")
    dags = {d["dag_id"]: d for d in data["daily_dags"]}
    assert set(dags) == {"retention_log_data", "retention_agent_info", "retention_call_data",
                         "retention_call_analytics", "retention_configuration"}
    call = dags["retention_call_data"]
    assert call["last_run"]["run_id"] == "scheduled__seed-2" and call["last_run"]["state"] == "failed"
    assert call["last_run"]["failed_tasks"] == ["purge_cos"] and call["failure_count"] == 1
    logs = dags["retention_log_data"]
    assert logs["last_run"]["run_id"] == "manual__seed-5" and logs["last_run"]["state"] == "success"
    assert logs["failure_count"] == 1 and logs["failures"][0]["failed_tasks"] == ["verify"]
    assert dags["retention_call_analytics"]["failure_count"] == 0  # its failure is older than 30 days
    assert dags["retention_configuration"]["last_run"] is None
    assert all(d["error"] is None for d in dags.values())


def test_summary_is_the_page_as_json(admin: httpx.Client) -> None:
    data = get_json(admin, "/retention/api/summary")
    assert data["counts"] == {"shown": 7, "breached": 1, "warning": 1, "ok": 2}
    assert data["window_days"] == 30 and data["warning_days"] == 7
    assert {"requests", "purges", "daily_dags", "certificates"} <= set(data)


def test_the_latest_purges_say_why(admin: httpx.Client) -> None:
    """The audit's rule and what it kept out, as the operator reads them: on the page and in JSON."""
    data = get_json(admin, "/retention/api/summary")
    reasons = {(r["category"], r["deleted"]): r for r in data["recent_purges"]}
    first = reasons[("call_data", 1200)]
    assert first["rule"] == "policy: 6 months"
    assert first["kept"] == "kept: tenant 1600999 (legal hold 4)"
    assert reasons[("call_data", 500)]["rule"] == "(recorded before reasons were kept)"
    assert all(r["deleted"] > 0 for r in data["recent_purges"])  # dry runs and failures are not listed
    page = admin.get("/retention/")
    assert page.status_code == 200
    assert "policy: 6 months" in page.text and "tenant 1600999 (legal hold 4)" in page.text


# --------------------------------------------------------------------------- certificates


def test_certificates_are_listed_and_downloadable(admin: httpx.Client) -> None:
    from devservers.connections import DEV_KEYS
    from include.retention.certificates.document import verify_document
    from include.retention.certificates.render import render_html
    from include.retention.crypto import RetentionCrypto

    listed = get_json(admin, "/retention/api/certificates")["certificates"]
    assert [(c["request_id"], c["reference"], c["certificate_id"]) for c in listed] == [
        ("req-done", "TCK-DONE", "CERT-req-done")]
    assert listed[0]["cos_key"] == "certificates/req-done.json"
    assert get_json(admin, "/retention/api/certificates", tenant="1002")["certificates"] == []
    done = next(r for r in get_json(admin, "/retention/api/requests", state="all")["requests"]
                if r["reference"] == "TCK-DONE")
    assert done["has_certificate"] is True and done["status"] == "closed"

    response = admin.get("/retention/api/certificates/req-done.json", params={"download": 1})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["content-disposition"] == "attachment; filename*=UTF-8''CERT-req-done.json"
    keys = RetentionCrypto(*(DEV_KEYS[k].encode() for k in ("subject_hash_key", "subject_encryption_key",
                                                            "certificate_key")))
    check = verify_document(response.json(), keys)
    assert check.ok, check  # the download is the signed document, signature intact

    html = admin.get("/retention/api/certificates/req-done.html")
    assert html.status_code == 200 and html.headers["content-disposition"].startswith("inline")
    assert "CERT-req-done" in html.text and "sandbox" in html.headers["content-security-policy"]
    assert html.text == render_html(response.json())
    markdown = admin.get("/retention/api/certificates/req-done.md")
    assert markdown.status_code == 200 and markdown.text.startswith("# Deletion certificate CERT-req-done")


@pytest.mark.parametrize(
    "path, status",
    [
        pytest.param("/retention/api/certificates/req-green.json", 404, id="no-certificate"),
        pytest.param("/retention/api/certificates/req-done.pdf", 404, id="unknown-format"),
        pytest.param("/retention/api/certificates/req%27done.json", 400, id="quote-in-id"),
    ],
)
def test_certificate_not_found_or_refused(admin: httpx.Client, path: str, status: int) -> None:
    assert admin.get(path).status_code == status
