"""The dashboard in a real browser: Debian's chromium, driven by selenium through chromedriver,
against the real ``python server.py`` (a subprocess, auth on, streams ended every 2 s by
``EVENT_MAX_AGE`` so that the page must resume). Nothing is mocked.

One server and one browser for the module (one xdist group, so they run on one worker). The waits
are functional: ``WebDriverWait`` polls the page until a condition holds; the only tight one is
the issue's "the row appears within 1 s". The last test takes the README's screenshot
(``docs/img/dashboard.png`` when ``VTWAIT_UPDATE_SCREENSHOT=1``, else in its temporary folder).
Skipped only when chromium or chromedriver is not installed (``.ci/run`` installs both).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.helpers import ROOT
from vtwait.testing import ServerProcess

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.xdist_group("dashboard-browser"),
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="needs Debian's chromium and chromium-driver (.ci/run installs them)"),
]

USER, PASSWORD = "dash", "board-secret"
#: The control API's token (issue 17's ADMIN_TOKEN; a server without the control API ignores it).
ADMIN_TOKEN = "admin-token-for-the-dashboard"
#: The server ends each event stream after this many seconds; the page must resume.
MAX_AGE = 2.0
#: Bound for conditions that take a job's life or a reconnect (the machine is shared and busy).
PATIENCE = 20.0
SCREENSHOT = ROOT / "docs" / "img" / "dashboard.png"
#: ``VTWAIT_UPDATE_SCREENSHOT=1 python -m pytest tests/e2e/test_dashboard_browser.py`` rewrites it.
UPDATE_SCREENSHOT = "VTWAIT_UPDATE_SCREENSHOT"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--window-size=1280,800")


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    env = {"API_USERNAME": USER, "API_PASSWORD": PASSWORD, "SEED": "7", "ADMIN_TOKEN": ADMIN_TOKEN}
    srv = ServerProcess.start("--event-max-age", str(MAX_AGE), "--concurrency", "3",
                              "--min-delay", "1", "--max-delay", "3", env=env)
    yield srv
    srv.kill()  # its graceful stop is tested elsewhere; here it would only cost seconds


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.auth = (USER, PASSWORD)
        yield session


def launch_chromium(profile: str) -> Any:
    """Debian's chromium through chromedriver (both from the system: nothing is downloaded)."""
    logging.getLogger("selenium").setLevel(logging.INFO)  # not every WebDriver call in the log
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER or ""))


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[Any]:
    profile = tempfile.mkdtemp(prefix="vtwait-chromium-")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        launching = pool.submit(launch_chromium, profile)  # while the server starts
        server: ServerProcess = request.getfixturevalue("server")
        driver = launching.result()
    try:
        # The API's HTTP Basic credentials in the URL: the browser answers the server's 401 with
        # them and then sends them on the page's own requests (script, fetches, the EventSource),
        # as it does once a person has typed them into its prompt.
        driver.get(server.url.replace("http://", f"http://{USER}:{PASSWORD}@") + "/")
        wait(driver, PATIENCE).until(lambda d: stream_state(d) == "live")
        driver.execute_script("window.vtwaitNotReloaded = true;")
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: Any, seconds: float) -> Any:
    return WebDriverWait(driver, seconds, poll_frequency=0.05)


def stream_state(driver: Any) -> str:
    return driver.find_element("id", "stream-state").get_attribute("data-state")


def phase_of(driver: Any, job_id: str) -> str | None:
    """The phase the page shows for ``job_id``, or None while it has no row."""
    return driver.execute_script(
        "const row = document.querySelector(`tr[data-job-id='${arguments[0]}']`);"
        "return row ? row.dataset.phase : null;", job_id)


def start_job(api: requests.Session, server: ServerProcess, **body: Any) -> str:
    reply = api.post(server.url + "/start", json=body, timeout=10)
    assert reply.status_code == 201, reply.text
    return reply.json()["job_id"]


def streams_open(api: requests.Session, server: ServerProcess) -> int:
    return api.get(server.url + "/dashboard/summary", timeout=10).json()["streams_open"]


def until(condition: Any, what: str, timeout: float = PATIENCE) -> None:
    """Polls ``condition()`` every 20 ms until it is true (a functional wait on the server)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def fresh_stream(api: requests.Session, server: ServerProcess) -> None:
    """Returns just after the page's stream was ended by the server and reopened: the next
    MAX_AGE seconds have no drop, so a tight wait is not cut by one."""
    until(lambda: streams_open(api, server) == 0, "the server to end the page's stream")
    until(lambda: streams_open(api, server) == 1, "the page to reconnect")


def test_the_page_is_behind_the_api_auth_and_loads_only_from_its_server(browser, server) -> None:
    assert requests.get(server.url + "/", timeout=10).status_code == 401
    assert browser.title == "vtwait simulator dashboard"
    urls = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);")
    assert any(url.endswith("/dashboard/app.js") for url in urls)
    assert browser.execute_script("return location.origin;") == server.url
    netloc = urllib.parse.urlsplit(server.url).netloc
    for url in urls:  # the page's own files carry the credentials it was opened with
        parts = urllib.parse.urlsplit(url)
        assert (parts.scheme, parts.netloc.rpartition("@")[2]) == ("http", netloc), url


def test_a_job_started_through_the_api_appears_within_1s_and_completes_live(
        browser, api, server) -> None:
    fresh_stream(api, server)
    job_id = start_job(api, server, delay=0.5, outcome="completed")
    wait(browser, 1).until(lambda d: phase_of(d, job_id) is not None)
    wait(browser, PATIENCE).until(lambda d: phase_of(d, job_id) == "completed")
    row = browser.find_element("css selector", f"tr[data-job-id='{job_id}']")
    assert row.find_element("css selector", "td.result").text == "completed"
    assert browser.execute_script("return window.vtwaitNotReloaded === true;")


def test_the_cancel_button_cancels_a_job(browser, api, server) -> None:
    job_id = start_job(api, server, delay=60)
    wait(browser, PATIENCE).until(lambda d: phase_of(d, job_id) in ("queued", "running"))
    button = browser.find_element("css selector", f"tr[data-job-id='{job_id}'] button.cancel")
    assert button.get_attribute("aria-label") == f"Cancel job {job_id}"
    button.click()
    wait(browser, PATIENCE).until(lambda d: phase_of(d, job_id) == "canceled")
    assert api.get(f"{server.url}/status/{job_id}", timeout=10).json()["phase"] == "canceled"


def test_the_start_form_works_from_the_keyboard(browser, api, server) -> None:
    before = set(browser.execute_script(
        "return [...document.querySelectorAll('#jobs-body tr')].map(r => r.dataset.jobId);"))
    delay = browser.find_element("id", "start-delay")
    delay.clear()
    delay.send_keys("0.3", Keys.ENTER)  # Enter submits the form, as with a mouse click
    wait(browser, PATIENCE).until(
        lambda d: d.find_element("id", "start-result").text.startswith("Started "))
    job_id = browser.find_element("id", "start-result").text.removeprefix("Started ")
    assert job_id not in before
    wait(browser, PATIENCE).until(lambda d: phase_of(d, job_id) in ("completed", "error"))
    assert api.get(f"{server.url}/status/{job_id}", timeout=10).json()["result"] == phase_of(
        browser, job_id)


def test_the_page_resumes_after_the_server_drops_its_stream_and_misses_no_end(
        browser, api, server) -> None:
    until(lambda: streams_open(api, server) == 0, "the server to end the page's stream")
    # The page is away (it reconnects after the stream's retry: 1 s): these jobs start and end
    # while nobody listens. Only a resume from Last-Event-ID tells the page about them.
    away = [start_job(api, server, delay=0, outcome="completed"),
            start_job(api, server, delay=0, outcome="error")]
    until(lambda: all(api.get(f"{server.url}/status/{j}", timeout=10).json()["result"] != "pending"
                      for j in away), "the jobs to end")
    assert streams_open(api, server) == 0, "the page came back before the jobs ended; retry"
    wait(browser, PATIENCE).until(lambda d: [phase_of(d, j) for j in away] == ["completed", "error"])
    assert stream_state(browser) == "live"
    assert browser.execute_script("return window.vtwaitNotReloaded === true;")


def test_the_control_api_panels_add_show_and_remove_a_fault_rule(browser, api, server) -> None:
    """With ADMIN_TOKEN set the page shows the fault rules and the request journal; a rule added
    with the form fires on the API and is removed with its button."""
    if not api.get(server.url + "/dashboard/summary", timeout=10).json()["control_api"]:
        pytest.skip("this build has no control API (/_admin/, issue 17)")
    wait(browser, PATIENCE).until(lambda d: d.find_element("id", "admin").is_displayed())
    browser.find_element("id", "admin-token").send_keys(ADMIN_TOKEN, Keys.ENTER)
    form = browser.find_element("id", "fault-form")
    Select(form.find_element("name", "route")).select_by_value("status")
    Select(form.find_element("name", "action")).select_by_value("status")
    form.find_element("name", "status").clear()
    form.find_element("name", "status").send_keys("503")
    form.find_element("name", "times").send_keys("1")
    form.find_element("name", "job_id").send_keys("dashboard-fault-target")
    form.find_element("css selector", "button[type=submit]").click()
    wait(browser, PATIENCE).until(lambda d: d.find_elements("css selector", "#faults-body tr"))
    rule_id = browser.find_element("css selector", "#faults-body tr").get_attribute("data-rule-id")
    answer = api.get(f"{server.url}/status/dashboard-fault-target", timeout=10)
    assert answer.status_code == 503  # the page's rule, on the server
    wait(browser, PATIENCE).until(lambda d: "/status/dashboard-fault-target" in d.find_element(
        "id", "journal-body").text)
    browser.find_element("css selector", f"#faults-body tr[data-rule-id='{rule_id}'] button").click()
    wait(browser, PATIENCE).until(lambda d: not d.find_elements("css selector", "#faults-body tr"))
    faults = requests.get(f"{server.url}/_admin/faults", timeout=10,  # not the API's Basic auth
                          headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert faults.json()["rules"] == []


def test_narrow_and_dark_then_the_screenshot(browser, api, server, tmp_path: Path) -> None:
    """Readable on a narrow window (no page-wide horizontal scroll; minor columns go), dark when
    the system is; then the README's screenshot at 1280x800, with jobs in every phase."""
    browser.set_window_size(420, 800)
    wait(browser, PATIENCE).until(lambda d: d.execute_script(
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth;"))
    age = browser.find_element("css selector", "#jobs-table thead th.opt")
    assert not age.is_displayed()
    light = browser.execute_script("return getComputedStyle(document.body).backgroundColor;")
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia",
                            {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    dark = browser.execute_script("return getComputedStyle(document.body).backgroundColor;")
    assert light != dark
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia",
                            {"features": [{"name": "prefers-color-scheme", "value": "light"}]})
    browser.set_window_size(1280, 800)
    assert age.is_displayed()
    jobs = [start_job(api, server, delay=d, outcome=o) for d, o in
            ((0.2, "error"), (6, "completed"), (8, "completed"), (9, "completed"), (12, "completed"),
             (15, "completed"))]
    wait(browser, PATIENCE).until(lambda d: phase_of(d, jobs[0]) == "error"
                                  and phase_of(d, jobs[-1]) == "queued")
    time.sleep(1.5)  # let the progress bars move and the counters refresh for the picture
    wait(browser, PATIENCE).until(lambda d: stream_state(d) == "live")  # not in a resume gap
    browser.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",  # the viewport, exactly
                            {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    # The README's picture is replaced only when asked (a run leaves the checkout as it was).
    picture = SCREENSHOT if os.environ.get(UPDATE_SCREENSHOT) == "1" else tmp_path / SCREENSHOT.name
    picture.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(picture))
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert picture.stat().st_size > 10_000
