"""The dashboard in a real browser: headless Chromium (Debian) driven by Selenium.

Starts (or shares) the api-server of ``dashboard_support`` on the seeded ledger, logs in
through the simple auth manager's login form, opens the dashboard where an operator finds it
(the "Retention" view in the Airflow UI's navigation, which embeds ``/retention/`` in an iframe),
and checks that the requests table and the purge plot render with the seeded numbers, that
the filter form works inside the UI's sandboxed iframe, and that an anonymous browser is
refused. Screenshots go to ``artifacts/dashboard.png`` (in the UI) and
``artifacts/dashboard-filtered.png``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import httpx
import pytest

from tests.e2e import dashboard_support as support
from tests.e2e.dashboard_support import DashboardServer, dashboard  # noqa: F401  (the shared server fixture)

pytestmark = [pytest.mark.servers, pytest.mark.slow]

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
    "--no-first-run", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    "--window-size=1440,2200", "--hide-scrollbars", "--force-device-scale-factor=1",
)
WAIT_S = 60
#: The bar colours of dashboard.app.STATUS_COLOURS, as the browser computes them.
RED, AMBER, GREEN = "rgba(217, 48, 37, 1)", "rgba(232, 163, 23, 1)", "rgba(46, 158, 68, 1)"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    chromium, chromedriver = support.ensure_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    workdir = tmp_path_factory.mktemp("chromium")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={workdir / 'profile'}")  # a fresh profile: no cookies, no cache
    service = Service(executable_path=chromedriver, log_output=str(workdir / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: Any, condition: Any, what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.2).until(condition, message=f"timed out waiting for {what}")


def css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.support import expected_conditions as ec

    return wait(driver, ec.presence_of_element_located(("css selector", selector)), selector)


def log_in(driver: Any, server: DashboardServer, next_path: str) -> None:
    """Airflow's own login form (simple auth manager), then on to ``next_path``."""
    from selenium.webdriver.common.keys import Keys

    driver.get(server.url("/auth/login?next=" + quote(server.url(next_path), safe="")))
    username = css(driver, "input[name='username'], input#username")
    username.send_keys("admin")
    password = css(driver, "input[type='password']")
    password.send_keys(server.passwords["admin"], Keys.ENTER)
    wait(driver, lambda d: next_path in d.current_url and "/auth/login" not in d.current_url, "the login redirect")


def request_rows(driver: Any) -> list[dict[str, str]]:
    rows = driver.find_elements("css selector", "table#requests tbody tr")
    return [
        {
            "reference": r.get_attribute("data-reference"),
            "status": r.get_attribute("data-status"),
            "days_left": r.get_attribute("data-days-left"),
            "colour": r.find_element("css selector", ".fill").value_of_css_property("background-color"),
            "bar_px": str(r.find_element("css selector", ".fill").size["width"]),
            "text": r.text,
        }
        for r in rows
    ]


def save(driver: Any, name: str) -> Path:
    support.ARTIFACTS.mkdir(exist_ok=True)
    path = support.ARTIFACTS / name
    assert driver.save_screenshot(str(path)), f"could not save {path}"
    return path


def test_anonymous_browser_is_refused(browser: Any, dashboard: DashboardServer) -> None:  # noqa: F811
    browser.get(dashboard.url("/retention/"))
    body = css(browser, "body").text
    assert "Not authenticated" in body and "Log in to Airflow" in body
    assert "TCK-" not in browser.page_source


def test_dashboard_in_the_airflow_ui(browser: Any, dashboard: DashboardServer) -> None:  # noqa: F811
    log_in(browser, dashboard, "/plugin/retention")
    css(browser, "a[href$='/plugin/retention']")  # the nav link the plugin's external view adds
    frame = css(browser, "iframe[title='Retention']")
    browser.switch_to.frame(frame)
    try:
        css(browser, "table#requests tbody tr")
        rows = request_rows(browser)
        assert [r["reference"] for r in rows] == support.EXPECTED_RECENT_ORDER  # breached first, closed last
        by_ref = {r["reference"]: r for r in rows}
        for reference, days in support.EXPECTED_DAYS_LEFT.items():
            assert by_ref[reference]["days_left"] == str(days)
        assert by_ref["TCK-BREACH"]["colour"] == RED and "breached, 3 days over" in by_ref["TCK-BREACH"]["text"]
        assert by_ref["TCK-AMBER"]["colour"] == AMBER and "6 days left" in by_ref["TCK-AMBER"]["text"]
        assert by_ref["TCK-GREEN"]["colour"] == GREEN and "29 days left" in by_ref["TCK-GREEN"]["text"]
        assert float(by_ref["TCK-GREEN"]["bar_px"]) > float(by_ref["TCK-AMBER"]["bar_px"]) > 0
        assert "at call_data.recordings" in by_ref["TCK-FAILED"]["text"]
        assert css(browser, "#count-breached").text == "1 breached"

        plot = css(browser, "svg#purge-plot")
        assert plot.is_displayed() and plot.size["height"] > 100
        assert plot.get_attribute("data-peak") == "4321"  # the busiest day: call_analytics, 45 days ago
        today = support.today_local(dashboard.seeded_at)
        day3 = (today - timedelta(days=3)).isoformat()
        bar = browser.find_element("css selector", f"svg#purge-plot rect[data-day='{day3}'][data-category='call_data']")
        assert bar.get_attribute("data-deleted") == str(support.EXPECTED_DAY3_CALL_DATA)
        peak = browser.find_element("css selector", "svg#purge-plot rect[data-category='call_analytics']")
        assert peak.get_attribute("data-day") == (today - timedelta(days=45)).isoformat()
        assert bar.is_displayed() and peak.size["height"] > 100
        assert bar.size["height"] / peak.size["height"] == pytest.approx(1234 / 4321, rel=0.03)  # drawn to scale
        assert len(browser.find_elements("css selector", "svg#purge-plot rect.bar")) == 6
        totals = {r.get_attribute("data-category"): r.find_elements("css selector", "td")[1].text
                  for r in browser.find_elements("css selector", "table#purge-totals tbody tr")}
        assert totals == {c: f"{n:,}" for c, n in support.EXPECTED_TOTALS.items()}

        dag = browser.find_element("css selector", "tr[data-dag-id='retention_call_data']")
        assert dag.get_attribute("data-last-state") == "failed" and "purge_cos" in dag.text
        assert browser.find_element("css selector", "#certificates tr[data-request-id='req-done']")
    finally:
        browser.switch_to.default_content()
    save(browser, "dashboard.png")


def test_filters_work_inside_the_ui_frame(browser: Any, dashboard: DashboardServer) -> None:  # noqa: F811
    if "/plugin/retention" not in browser.current_url:
        log_in(browser, dashboard, "/plugin/retention")
    browser.switch_to.frame(css(browser, "iframe[title='Retention']"))
    try:
        tenant = css(browser, "#filter-tenant")
        tenant.clear()
        tenant.send_keys("1001")
        old_table = css(browser, "table#requests")
        browser.find_element("css selector", "form.filters button[type='submit']").click()
        wait(browser, lambda d: _stale(old_table), "the filtered page")
        css(browser, "table#requests tbody tr")
        assert [r["reference"] for r in request_rows(browser)] == ["TCK-BREACH", "TCK-GREEN", "TCK-DONE"]
        assert css(browser, "#filter-tenant").get_attribute("value") == "1001"
        totals = {r.get_attribute("data-category"): r.find_elements("css selector", "td")[1].text
                  for r in browser.find_elements("css selector", "table#purge-totals tbody tr")}
        assert totals["call_data"] == "34" and totals["agent_info"] == "77"
        browser.switch_to.default_content()
        save(browser, "dashboard-filtered.png")

        # A certificate opens inside the frame, and downloads with the browser's own session.
        browser.switch_to.frame(css(browser, "iframe[title='Retention']"))
        download = css(browser, "#certificates a.cert-download[data-format='json']").get_attribute("href")
        css(browser, "#certificates a.cert-view[data-format='html']").click()
        assert css(browser, "h1").text == "Deletion certificate CERT-req-done"
    finally:
        browser.switch_to.default_content()
    token = browser.get_cookie("_token")
    assert token is not None
    response = httpx.get(download, cookies={"_token": token["value"]}, timeout=30)
    assert response.status_code == 200 and response.headers["content-disposition"].startswith("attachment")
    assert response.json()["certificate"]["certificate_id"] == "CERT-req-done"


def _stale(element: Any) -> bool:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        element.is_enabled()
        return False
    except StaleElementReferenceException:
        return True
