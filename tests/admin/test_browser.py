"""A real browser (headless Chromium) logs into the admin, opens the overview and a failed job, retries it;
on the cron schedules page it runs a schedule now.

Screenshots of the overview, the job's page and the cron page are saved to artifacts/browser/
($TEMPOTASK_ARTIFACTS); the pictures in docs/ are these.
Needs Debian's chromium and chromium-driver (.ci/run installs them); under CI a missing browser fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tempotask_django import api, list_crons, pause_cron, run_cron_now
from tempotask_django.cron import CronBeat, collect_schedules
from tempotask_django.storage.crons import CronStore
from tests.helpers import drain

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("TEMPOTASK_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts")) / "browser"
# Without these, Chromium phones home at start; this machine's closed network refuses it.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)


def _browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is missing (scripts/bootstrap installs it)"
    return None


@pytest.fixture
def browser():
    problem = _browser_missing()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tempotask-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        service = Service(executable_path=CHROMEDRIVER, log_output=str(ARTIFACTS / "chromedriver.log"))
        driver = webdriver.Chrome(options=options, service=service)
        driver.implicitly_wait(0)
        try:
            yield driver
        finally:
            driver.quit()


def screenshot(driver, name: str) -> Path:
    """The whole page, not only the window."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(900, height + 120), 4000))
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 900)
    return path


def wait_for(driver, condition, timeout: float = 10.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


@pytest.fixture
def busy_queues(store, ledger):
    """Some history, a failed payment, waiting and delayed jobs, and a live worker's heartbeat."""
    api.add_jobs([{"name": "add", "data": {"a": n, "b": 1}} for n in range(25)], on_commit=False)
    api.add_job("parent", {"children": 2}, on_commit=False)
    api.add_job("always_fails", {"order": 7}, on_commit=False)
    payment = api.add_job("fails_first_time", {"amount": 42}, job_id="payment-42", on_commit=False)
    drain(["default"])
    api.add_jobs([{"name": "record", "data": {"n": n}} for n in range(12)], on_commit=False)
    api.add_job("add", {"a": 1, "b": 1}, delay=600, on_commit=False)
    api.add_job("slow", {"seconds": 1}, on_commit=False)
    now_minute = store.server_time_ms() // 60_000
    pipe = store.client.pipeline()
    keys = store.keys("default")
    for ago in range(1, 50):  # an hour of earlier traffic, so the chart shows a trend
        counts = {"completed": 20 + (ago * 7) % 23, "failed": (ago % 9 == 0) * 3}
        pipe.hset(keys.minutes, mapping={keys.minute_field(now_minute - ago, kind): n for kind, n in counts.items()})
    pipe.expire(keys.minutes, 7200)
    pipe.execute()
    started = store.server_time_ms() - 600_000
    info = {"host": "web-1", "pid": 4242, "queues": "default", "concurrency": 4, "started": started, "jobs_done": 31}
    store.register_worker("web-1:4242:a1b2c3", {**info, "running": 0}, ttl=60)
    cron_schedules(store, started)
    return payment


# Schedules beside the test app's own (hourly_sweep, nightly_digest), as a project would define them.
CRONS = {
    "cleanup-sessions": {"task": "noop", "cron": "*/15 * * * *"},
    "report-paris": {"task": "record", "cron": "*/10 9-17 * * 1-5", "timezone": "Europe/Paris", "queue": "reports"},
    "sync-inventory": {"task": "always_fails", "cron": "0 */6 * * *", "data": {"source": "erp"}, "queue": "inventory"},
}


def cron_schedules(store, started: int) -> None:
    """Registered schedules, a few runs (one failed), a paused one, and a live beat's heartbeat."""
    CronBeat(collect_schedules(raw={"CRONS": CRONS})).sync()
    for name in ("report-paris", "sync-inventory", "hourly_sweep"):
        run_cron_now(name)
    drain(["default", "reports", "inventory"])
    pause_cron("nightly_digest")
    now = store.server_time_ms()
    info = {
        "host": "web-1",
        "pid": 4243,
        "kind": "runcron",
        "started": started,
        "last_tick": now - 2000,
        "schedules": 5,
    }
    CronStore(store).publish_beat("web-1:4243:d4e5f6", info, ttl=60, now_ms=now - 2000)


def log_in(browser, live_server, django_user_model, path: str) -> None:
    from selenium.webdriver.common.by import By

    django_user_model.objects.create_superuser("operator", "op@example.com", "a-long-password")
    browser.get(f"{live_server.url}/admin/login/?next={path}")
    browser.find_element(By.NAME, "username").send_keys("operator")
    browser.find_element(By.NAME, "password").send_keys("a-long-password")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()


def test_operator_retries_a_failed_job_from_the_browser(browser, live_server, django_user_model, busy_queues, store):
    from selenium.webdriver.common.by import By

    log_in(browser, live_server, django_user_model, "/admin/tempotask_django/dashboard/")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "table.tt-queues"))
    assert "Tempotask" in browser.title
    assert "web-1:4243" in browser.find_element(By.ID, "beats-summary").text  # the live beat
    assert browser.find_element(By.CSS_SELECTOR, 'tr[data-queue="default"] .tt-bad').text == "2"
    # The page keeps itself up to date: the script polls overview.json and swaps the fragments.
    wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "[data-refresh-url]").get_attribute("data-refreshed"))
    assert browser.find_elements(By.CSS_SELECTOR, "table.tt-queues")
    screenshot(browser, "overview.png")
    browser.execute_script("localStorage.setItem('theme', 'dark')")  # the admin's theme switch
    browser.refresh()
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("data-theme") == "dark")
    screenshot(browser, "overview-dark.png")
    browser.execute_script("localStorage.setItem('theme', 'auto')")

    browser.find_element(By.CSS_SELECTOR, 'tr[data-queue="default"] .tt-bad a').click()
    wait_for(browser, lambda d: d.find_elements(By.LINK_TEXT, busy_queues))
    browser.find_element(By.LINK_TEXT, busy_queues).click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "job-status"))
    assert browser.find_element(By.ID, "job-status").text == "failed"
    assert "ConnectionError" in browser.page_source and "the gateway timed out" in browser.page_source
    screenshot(browser, "job-detail.png")

    browser.find_element(By.ID, "retry-job").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".messagelist .success"))
    assert "is queued again" in browser.find_element(By.CSS_SELECTOR, ".messagelist .success").text
    assert browser.find_element(By.ID, "job-status").text == "waiting"

    drain(["default"])  # a worker picks it up; this time it succeeds
    browser.refresh()
    wait_for(browser, lambda d: d.find_element(By.ID, "job-status").text == "completed")
    assert '"charged": 42' in browser.find_element(By.ID, "job-result").text
    screenshot(browser, "job-detail-after-retry.png")


def test_operator_runs_a_cron_schedule_now_from_the_browser(browser, live_server, django_user_model, busy_queues):
    from selenium.webdriver.common.by import By

    log_in(browser, live_server, django_user_model, "/admin/tempotask_django/dashboard/crons/")
    wait_for(browser, lambda d: d.find_elements(By.ID, "crons"))
    row = 'tr[data-cron="cleanup-sessions"]'
    assert "Every 15 minutes" in browser.find_element(By.CSS_SELECTOR, row).text
    assert "failed" in browser.find_element(By.CSS_SELECTOR, 'tr[data-cron="sync-inventory"]').text
    browser.find_element(By.CSS_SELECTOR, f'{row} button[name="run"]').click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".messagelist .success"))
    assert "Cron schedule cleanup-sessions ran now" in browser.find_element(By.CSS_SELECTOR, ".messagelist").text
    assert "waiting" in browser.find_element(By.CSS_SELECTOR, row).text  # its last run: the job just added
    assert next(cron for cron in list_crons() if cron.name == "cleanup-sessions").runs == 1
    screenshot(browser, "crons.png")
    browser.execute_script("localStorage.setItem('theme', 'dark')")
    browser.refresh()
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("data-theme") == "dark")
    screenshot(browser, "crons-dark.png")


def test_operator_creates_edits_and_deletes_a_runtime_schedule_from_the_browser(
    browser, live_server, django_user_model, busy_queues
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    log_in(browser, live_server, django_user_model, "/admin/tempotask_django/dashboard/crons/")
    wait_for(browser, lambda d: d.find_elements(By.ID, "add-cron"))
    browser.find_element(By.ID, "add-cron").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "cron-form"))
    fields = {"name": "report-acme", "cron": "0 4 * * 1-5", "json_data": '{"customer": "acme"}', "queue": "reports"}
    for name, value in fields.items():
        browser.find_element(By.NAME, name).send_keys(value)
    timezone = browser.find_element(By.NAME, "timezone")
    timezone.clear()
    timezone.send_keys("Europe/Paris")
    Select(browser.find_element(By.NAME, "task")).select_by_value("record")
    Select(browser.find_element(By.NAME, "overlap")).select_by_value("skip")
    screenshot(browser, "cron-add.png")
    browser.find_element(By.NAME, "_save").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".messagelist .success"))
    row = 'tr[data-cron="report-acme"]'
    assert "At 04:00" in browser.find_element(By.CSS_SELECTOR, row).text
    assert "runtime" in browser.find_element(By.CSS_SELECTOR, row).text
    acme = next(cron for cron in list_crons() if cron.name == "report-acme")
    assert (acme.source, acme.data, acme.queue, acme.overlap) == ("runtime", {"customer": "acme"}, "reports", "skip")
    screenshot(browser, "crons-runtime.png")

    browser.find_element(By.CSS_SELECTOR, f'{row} a[data-action="edit"]').click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "cron-form"))
    expression = browser.find_element(By.NAME, "cron")
    expression.clear()
    expression.send_keys("30 5 * * 1-5")
    browser.find_element(By.NAME, "_save").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".messagelist .success"))
    assert "At 05:30" in browser.find_element(By.CSS_SELECTOR, row).text
    browser.find_element(By.CSS_SELECTOR, f'{row} a[data-action="edit"]').click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "cron-log"))
    assert '"0 4 * * 1-5" -> "30 5 * * 1-5"' in browser.find_element(By.ID, "cron-log").text
    screenshot(browser, "cron-edit.png")

    browser.find_element(By.ID, "delete-cron").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "confirm-delete"))
    browser.find_element(By.ID, "confirm-delete").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".messagelist .success"))
    assert not browser.find_elements(By.CSS_SELECTOR, row)
    assert "report-acme" not in [cron.name for cron in list_crons()]
