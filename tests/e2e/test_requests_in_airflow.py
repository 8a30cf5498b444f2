"""Deletion requests carried out by a whole running Airflow (``live_airflow.py``: api-server with
the retention dashboard, scheduler, dag-processor, triggerer), over the session's stores.

- **The trigger form in a real browser** (headless Chromium, Selenium): an operator logs in
  through Airflow's login form, opens ``deletion_requests``, fills the trigger form (tenant,
  phone number, reference, requested by; execute), triggers it, and finds the request
  ``completed`` on the retention dashboard with its certificate downloadable. A malformed phone
  number is refused with its reason as the run's note, on the run's page; a wildcard tenant is
  refused by the trigger itself, before any run exists. Screenshots: ``artifacts/trigger-*.png``.
- **Clear and retry through the REST API**: a real fault (a MySQL trigger refusing the
  deletes of one tenant's call records) fails ``purge_mysql``; once it is removed,
  ``POST /api/v2/dags/deletion_requests/clearTaskInstances`` retries the task and its
  downstream, and the request completes (apache/airflow#70368 broke Clear while the DAG had a
  Deadline Alert).

Selectors come from the page source of Airflow 3.3.2's UI: form fields are ``#element_<param>``
(drop-downs are react-select boxes inside them), the buttons carry ``data-testid``.
"""

from __future__ import annotations

import secrets
import urllib.parse
from typing import Any, Iterator

import httpx
import pytest

from tests.e2e.conftest import Stores, World
from tests.e2e.live_airflow import LiveAirflow, live_airflow_running
from tests.e2e.test_dashboard_browser import browser, css, save, wait  # noqa: F401  (the browser fixture)

pytestmark = [pytest.mark.servers, pytest.mark.slow]

SELECTS = ("request_type", "mode", "categories")  # react-select drop-downs; the rest are text inputs


@pytest.fixture(scope="module")
def live(stores: Stores, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAirflow]:
    with live_airflow_running(tmp_path_factory.mktemp("airflow-live")) as running:
        yield running


def request_of(reference: str) -> Any:
    from include.retention.ledger.requests import find_by_reference

    found = find_by_reference(reference)
    assert found is not None, f"no request with reference {reference}"
    return found


# --------------------------------------------------------------------------- the browser


def log_in(driver: Any, live: LiveAirflow, next_path: str) -> None:
    from selenium.webdriver.common.keys import Keys

    if driver.get_cookie("_token") is None:
        driver.get(f"{live.base}/auth/login?next=" + urllib.parse.quote(live.base + next_path, safe=""))
        css(driver, "input[name='username'], input#username").send_keys("admin")
        css(driver, "input[type='password']").send_keys(live.airflow.password, Keys.ENTER)
        wait(driver, lambda d: "/auth/login" not in d.current_url, "the login redirect")
    driver.get(live.base + next_path)


def open_trigger_form(driver: Any, live: LiveAirflow) -> None:
    from selenium.webdriver.support import expected_conditions as ec

    log_in(driver, live, "/dags/deletion_requests")
    wait(driver, ec.element_to_be_clickable(("css selector", "[data-testid='trigger-dag-button']")),
         "the Trigger button").click()
    css(driver, "#element_tenant_id")


def fill(driver: Any, values: dict[str, str]) -> None:
    """Type each value into its field; a drop-down takes the option matching the text (its value)."""
    from selenium.webdriver.common.keys import Keys

    for name, value in values.items():
        if name in SELECTS:
            box = css(driver, f"#element_{name} input[role='combobox']")
            box.send_keys(value)
            css(driver, "[id^='react-select-'][id*='-option-']")  # the matching options are listed
            box.send_keys(Keys.ENTER)
            wait(driver, lambda d, n=name, v=value: d.find_element("css selector", f"input[name='element_{n}']")
                 .get_attribute("value") == v, f"{value} chosen in {name}")
        else:
            field = css(driver, f"#element_{name}")
            field.clear()
            field.send_keys(value)


def submit(driver: Any) -> None:
    from selenium.webdriver.support import expected_conditions as ec

    wait(driver, ec.element_to_be_clickable(("css selector", "[data-testid='trigger-dag-submit']")),
         "an enabled Trigger button").click()


def run_id_from_url(driver: Any) -> str:
    wait(driver, lambda d: "/runs/" in d.current_url, "the new run's page")
    return urllib.parse.unquote(driver.current_url.split("/runs/", 1)[1].split("/")[0].split("?")[0])


def form_values(world: World, reference: str, phone: str) -> dict[str, str]:
    return {"request_type": "deletion", "tenant_id": world.tenant, "subject_type": "phone_number",
            "subject_id": phone, "reference": reference, "requested_by": "dpo@example.test", "mode": "execute"}


def test_a_request_triggered_in_the_form_completes_and_its_certificate_downloads(
    browser: Any, live: LiveAirflow, world: World  # noqa: F811
) -> None:
    reference = f"UI-{world.tenant}-{secrets.token_hex(2)}"
    assert world.rows("call_records", "customer_number = %s", (world.P1,)) == 2
    open_trigger_form(browser, live)
    fill(browser, form_values(world, reference, world.P1))
    save(browser, "trigger-form.png")
    submit(browser)
    run_id = run_id_from_url(browser)

    run = live.wait_finished(run_id)

    assert run["state"] == "success", live.task_states(run_id)
    assert run["conf"]["subject_id"] == world.P1 and run["conf"]["mode"] == "execute"
    request = request_of(reference)
    assert request.state == "completed" and request.requested_by == "dpo@example.test"
    assert world.rows("call_records", "customer_number = %s", (world.P1,)) == 0
    assert world.rows("call_records", "customer_number = %s", (world.P2,)) == 1

    log_in(browser, live, "/plugin/retention")  # the dashboard, where the operator looks next
    frame = css(browser, "iframe[title='Retention']")
    assert "allow-downloads" in (frame.get_attribute("sandbox") or "").split()  # docs/DASHBOARD.md says so
    browser.switch_to.frame(frame)
    try:
        row = css(browser, f"table#requests tr[data-reference='{reference}']")  # the default view shows it
        assert "completed" in row.text and row.get_attribute("data-status") == "closed"
        assert "UTC+08:00" in row.text  # times carry their zone (the policy's, Asia/Singapore)
        link = css(browser, f"#certificates tr[data-request-id='{request.request_id}'] "
                            "a.cert-download[data-format='json']")
        download = link.get_attribute("href")
    finally:
        browser.switch_to.default_content()
    save(browser, "trigger-dashboard.png")
    token = browser.get_cookie("_token")
    assert token is not None
    response = httpx.get(download, cookies={"_token": token["value"]}, timeout=30)
    assert response.status_code == 200 and response.headers["content-disposition"].startswith("attachment")
    certificate = response.json()["certificate"]
    assert certificate["certificate_id"] == f"CERT-{request.request_id}"
    assert certificate["request"]["reference"] == reference and world.P1 not in response.text


def test_a_malformed_phone_number_is_refused_with_its_reason_on_the_run_page(
    browser: Any, live: LiveAirflow, world: World  # noqa: F811
) -> None:
    reference = f"UI-{world.tenant}-BAD"
    malformed = world.P2.lstrip("+")  # no leading +: not E.164 (it would pass as an agent id)
    open_trigger_form(browser, live)
    fill(browser, form_values(world, reference, malformed))
    submit(browser)
    run_id = run_id_from_url(browser)

    run = live.wait_finished(run_id)

    assert run["state"] == "failed"
    states = live.task_states(run_id)
    assert states["register"] == "failed" and states["plan"] == "upstream_failed", states
    request = request_of(reference)
    assert request.state == "rejected" and "phone_number id does not match" in (request.error or "")
    assert run["note"] and "refused, nothing was deleted" in run["note"] and "phone_number" in run["note"]
    assert malformed not in run["note"]  # a refusal never echoes the subject id
    verify_log = live.task_log(run_id, "verify")
    assert "rejected at intake" in verify_log and "not registered" not in verify_log
    assert world.rows("call_records", "customer_number = %s", (world.P2,)) == 1  # nothing was deleted

    browser.refresh()  # the run's page, where the trigger left the operator
    wait(browser, lambda d: "refused, nothing was deleted" in d.find_element("css selector", "body").text,
         "the refusal on the run's page")
    save(browser, "trigger-refused.png")


def test_a_wildcard_tenant_is_refused_by_the_trigger_before_any_run(
    browser: Any, live: LiveAirflow  # noqa: F811
) -> None:
    runs_before = len(live.runs())
    open_trigger_form(browser, live)
    fill(browser, {"request_type": "termination", "tenant_id": "16001*", "reference": "UI-STAR",
                   "requested_by": "dpo@example.test"})
    submit(browser)

    wait(browser, lambda d: "Invalid input for param tenant_id" in d.find_element("css selector", "body").text,
         "the trigger's refusal in the form")
    save(browser, "trigger-wildcard-refused.png")
    assert len(live.runs()) == runs_before
    assert "/runs/" not in browser.current_url


# --------------------------------------------------------------------------- clear and retry


def test_a_failed_task_cleared_through_the_rest_api_is_retried_and_the_request_completes(
    live: LiveAirflow, world: World, stores: Stores
) -> None:
    trigger_name = f"refuse_deletes_{world.tenant}"
    stores.query(
        f"CREATE TRIGGER `{trigger_name}` BEFORE DELETE ON call_records FOR EACH ROW BEGIN "
        f"IF OLD.tenant_id = '{world.tenant}' THEN SIGNAL SQLSTATE '45000' "
        "SET MESSAGE_TEXT = 'deletes refused (test fault)'; END IF; END"
    )
    reference = f"CLR-{world.tenant}"
    try:
        run_id = live.trigger({"request_type": "deletion", "tenant_id": world.tenant, "subject_type": "phone_number",
                               "subject_id": world.P1, "reference": reference, "requested_by": "dpo@example.test",
                               "mode": "execute"})
        failed = live.wait_finished(run_id)
        assert failed["state"] == "failed"
        assert live.task_states(run_id)["purge_mysql"] == "failed"
        request = request_of(reference)
        assert request.state == "failed" and request.failed_step == "call_data.call_records"
        assert world.rows("call_records", "customer_number = %s", (world.P1,)) == 2
    finally:
        stores.query(f"DROP TRIGGER IF EXISTS `{trigger_name}`")

    status, body = live.call("POST", "/api/v2/dags/deletion_requests/clearTaskInstances", {
        "dry_run": False, "dag_run_id": run_id, "task_ids": ["purge_mysql"], "include_downstream": True,
        "only_failed": False,
    })

    assert status == 200, body  # was a 500 (TypeError on the deadline's interval) with the Deadline Alert
    assert {t["task_id"] for t in body["task_instances"]} >= {"purge_mysql", "verify", "certificate"}
    retried = live.wait_finished(run_id)
    assert retried["state"] == "success", live.task_states(run_id)
    request = request_of(reference)
    assert request.state == "completed" and request.failed_step is None
    assert world.rows("call_records", "customer_number = %s", (world.P1,)) == 0
    status, ti = live.call("GET", f"/api/v2/dags/deletion_requests/dagRuns/{urllib.parse.quote(run_id, safe='')}"
                                  "/taskInstances/purge_mysql")
    assert status == 200 and ti["try_number"] == 2 and ti["state"] == "success"

