"""The server's specification: settings, routes, hints, long-poll, store limits, faults, CLI.

Route tests run in process (``app.test_client()``); timing, concurrency and connection-level
tests use a live server on a free port. Time-dependent store behaviour uses a fake clock.
"""

from __future__ import annotations

import base64
import logging
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

import vtwait.server.app as server
from tests.helpers import ROOT, FakeClock, fast_settings
from vtwait.server.state import app_state
from vtwait.server.stores.base import JOB_ERROR_MESSAGE

HEX_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """Every test here that builds an app runs on both stores: one interface, one behaviour."""
    return request.param


def basic(user: str | bytes, password: str | bytes) -> str:
    """An ``Authorization`` header value for HTTP Basic."""
    raw = (user if isinstance(user, bytes) else user.encode()) + b":"
    raw += password if isinstance(password, bytes) else password.encode()
    return "Basic " + base64.b64encode(raw).decode()


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Asserts a JSON error answer of this status and code; returns its ``error`` object."""
    assert response.status_code == status
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error


@pytest.fixture
def make_fake(
    make_app: Callable[..., Flask], fake_clock: FakeClock
) -> Callable[..., tuple[FlaskClient, server.JobStore]]:
    """Factory: an app on the fake clock, without timer thread -> (client, store)."""

    def factory(settings: server.Settings | None = None) -> tuple[FlaskClient, server.JobStore]:
        app = make_app(
            settings or fast_settings(),
            clock=fake_clock.monotonic,
            wall_clock=fake_clock.wall,
            start_worker=False,
        )
        return app.test_client(), app_state(app).store

    return factory


# --- settings ---------------------------------------------------------------------------------


def test_settings_defaults_match_the_spec() -> None:
    """Settings() has the documented defaults and no credentials."""
    settings = server.Settings()
    assert (settings.min_delay, settings.max_delay, settings.error_probability) == (3, 7, 0.3)
    assert (settings.max_wait, settings.max_waiters, settings.idle_timeout) == (30, 10000, 30)
    assert (settings.job_ttl, settings.max_jobs, settings.eta_noise) == (3600, 20000, 0.2)
    assert settings.seed is None and settings.log_file is None and not settings.plain
    assert not settings.auth_enabled
    faults = (settings.fault_503, settings.fault_429, settings.fault_latency)
    assert faults + (settings.fault_drop, settings.fault_garbage) == (0, 0, 0, 0, 0)


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"min_delay": -1}, "MIN_DELAY"),
        ({"min_delay": "3"}, "MIN_DELAY"),
        ({"max_delay": math.nan}, "MAX_DELAY"),
        ({"min_delay": 5, "max_delay": 1}, "MIN_DELAY"),
        ({"error_probability": 1.5}, "ERROR_PROBABILITY"),
        ({"error_probability": True}, "ERROR_PROBABILITY"),
        ({"max_wait": -0.1}, "MAX_WAIT"),
        ({"max_waiters": -1}, "MAX_WAITERS"),
        ({"max_waiters": 1.5}, "MAX_WAITERS"),
        ({"job_ttl": math.inf}, "JOB_TTL"),
        ({"max_jobs": 0}, "MAX_JOBS"),
        ({"seed": "x"}, "SEED"),
        ({"eta_noise": 1.0}, "ETA_NOISE"),
        ({"fault_503": 2}, "FAULT_503"),
        ({"fault_429": -0.5}, "FAULT_429"),
        ({"fault_latency": -1}, "FAULT_LATENCY"),
        ({"fault_drop": 1.01}, "FAULT_DROP"),
        ({"fault_garbage": "0.5"}, "FAULT_GARBAGE"),
        ({"plain": "yes"}, "PLAIN"),
        ({"api_username": "a:b"}, "API_USERNAME"),
    ],
)
def test_settings_reject_bad_values_naming_the_setting(overrides: dict, name: str) -> None:
    """Each invalid setting raises ConfigError (a ValueError) whose message starts with its name."""
    with pytest.raises(server.ConfigError, match=f"^{name} ") as info:
        server.Settings(**overrides)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"MIN_DELAY": "abc"}, "MIN_DELAY must be a number, got 'abc'"),
        ({"MAX_JOBS": "1.5"}, "MAX_JOBS must be an integer, got '1.5'"),
        ({"MAX_JOBS": "-3"}, "MAX_JOBS must be at least 1"),
        ({"ERROR_PROBABILITY": "nan"}, "ERROR_PROBABILITY must be a finite number"),
        ({"PLAIN": "maybe"}, "PLAIN must be true or false"),
        ({"SEED": "x"}, "SEED must be an integer"),
        ({"MIN_DELAY": "8"}, "MIN_DELAY must not exceed MAX_DELAY"),
    ],
)
def test_from_env_rejects_bad_strings(environ: dict, message: str) -> None:
    """from_env turns unparsable or invalid variables into a ConfigError naming the variable."""
    with pytest.raises(server.ConfigError, match=f"^{message}"):
        server.Settings.from_env(environ)


def test_from_env_parses_every_kind_and_environment_beats_env_file(tmp_path) -> None:
    """Variables override the .env file, which overrides defaults; empty values count as unset."""
    env_file = tmp_path / ".env"
    env_file.write_text("MIN_DELAY=1\nMAX_DELAY=2\nAPI_USERNAME=file-user\nSEED=5\nPLAIN=yes\n")
    settings = server.Settings.from_env(
        {"MIN_DELAY": "0.5", "API_USERNAME": "env-user", "SEED": "", "MAX_JOBS": "7"},
        env_file=env_file,
    )
    assert (settings.min_delay, settings.max_delay, settings.max_jobs) == (0.5, 2.0, 7)
    assert settings.api_username == "env-user" and settings.seed == 5 and settings.plain


def test_settings_repr_hides_the_password() -> None:
    """The password is not part of repr(settings), so logging the settings cannot leak it."""
    settings = server.Settings(api_username="u", api_password="hunter2")
    assert "hunter2" not in repr(settings) and settings.auth_enabled


# --- command line -----------------------------------------------------------------------------


def run_cli(tmp_path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Runs ``python server.py`` with an empty .env file, so a developer's .env cannot interfere."""
    empty = tmp_path / "empty.env"
    empty.write_text("")
    return subprocess.run(
        [sys.executable, "server.py", "--env-file", str(empty), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("env", "args", "name"),
    [
        ({"MIN_DELAY": "abc"}, (), "MIN_DELAY"),
        ({"MIN_DELAY": "5", "MAX_DELAY": "1"}, (), "MIN_DELAY"),
        ({}, ("--max-jobs", "0"), "MAX_JOBS"),
        ({"ERROR_PROBABILITY": "0.1"}, ("--error-probability", "2"), "ERROR_PROBABILITY"),
    ],
)
def test_cli_bad_setting_exits_2_with_one_line(tmp_path, env: dict, args: tuple, name: str) -> None:
    """A bad setting (from env or flag) stops the server: exit 2, one stderr line naming it."""
    done = run_cli(tmp_path, *args, env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"server.py: error: {name} ")
    assert "Traceback" not in done.stderr


def test_cli_help_lists_every_setting(tmp_path) -> None:
    """--help names a flag for each setting and the credential variables."""
    done = run_cli(tmp_path, "--help")
    assert done.returncode == 0
    for flag in [
        "--host", "--port", "--env-file", "--min-delay", "--max-delay", "--error-probability",
        "--max-wait", "--max-waiters", "--job-ttl", "--max-jobs", "--seed", "--log-file",
        "--plain", "--eta-noise", "--fault-503", "--fault-429", "--fault-latency",
        "--fault-drop", "--fault-garbage", "API_USERNAME", "API_PASSWORD",
    ]:  # fmt: skip
        assert flag in done.stdout


def test_cli_serves_and_stops_on_sigterm(tmp_path) -> None:
    """`python server.py --port 0` prints where it listens, serves, logs, and exits 0 on SIGTERM."""
    empty = tmp_path / "empty.env"
    empty.write_text("")
    log_file = tmp_path / "logs" / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "server.py", "--env-file", str(empty), "--port", "0",
         "--min-delay", "0", "--max-delay", "0", "--error-probability", "0",
         "--log-file", str(log_file)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("Listening on http://127.0.0.1:")
        url = line.split()[2]
        assert requests.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
        started = requests.post(f"{url}/start", timeout=5)
        assert started.status_code == 201 and started.json()["result"] == "completed"
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "GET /healthz 200" in stderr and "Traceback" not in stderr
    assert "POST /start 201" in log_file.read_text()


# --- routes -----------------------------------------------------------------------------------


def test_healthz(client: FlaskClient) -> None:
    """GET /healthz answers {"status": "ok"}."""
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_start_answers_201_with_document_location_and_hints(make_fake) -> None:
    """POST /start answers 201, Location /status/<id>, a pending document, Retry-After = ceil(eta)."""
    client, _ = make_fake()
    response = client.post("/start", json={"delay": 2.5})
    assert response.status_code == 201
    doc = response.get_json()
    assert response.headers["Location"] == f"/status/{doc['job_id']}"
    assert len(doc["job_id"]) == 32 and int(doc["job_id"], 16) >= 0
    assert doc == {
        "job_id": doc["job_id"],
        "result": "pending",
        "phase": "running",
        "progress": 0.0,
        "created_at": 1_700_000_000.0,
        "started_at": 1_700_000_000.0,
        "eta_seconds": 2.5,
    }
    assert response.headers["Retry-After"] == "3"


def test_status_routes_by_path_query_and_default(make_fake) -> None:
    """/status/<id> and /status?job_id=<id> answer the same job; bare /status the default job."""
    client, store = make_fake()
    job_id = client.post("/start").get_json()["job_id"]
    assert client.get(f"/status/{job_id}").get_json()["job_id"] == job_id
    assert client.get(f"/status?job_id={job_id}").get_json()["job_id"] == job_id
    default = client.get("/status").get_json()
    assert default["job_id"] == store.default_job_id != job_id


def test_pending_progress_and_eta_are_exact_without_noise(make_fake, fake_clock) -> None:
    """With ETA_NOISE 0, eta_seconds is the true remaining time and progress the elapsed share."""
    client, _ = make_fake()
    job_id = client.post("/start", json={"delay": 10}).get_json()["job_id"]
    fake_clock.advance(7.5)
    response = client.get(f"/status/{job_id}")
    doc = response.get_json()
    assert (doc["result"], doc["progress"], doc["eta_seconds"]) == ("pending", 0.75, 2.5)
    assert response.headers["Retry-After"] == "3"
    fake_clock.advance(2.4999)
    doc = client.get(f"/status/{job_id}").get_json()
    assert doc["progress"] == 0.999 and doc["eta_seconds"] == 0.0  # never 1.0 while pending
    assert client.get(f"/status/{job_id}").headers["Retry-After"] == "1"


def test_finished_at_is_when_the_job_was_marked_final(make_fake, fake_clock) -> None:
    """finished_at is the wall time at which the job was finalized, not its due time or read time."""
    client, store = make_fake()
    job_id = client.post("/start", json={"delay": 2}).get_json()["job_id"]
    fake_clock.advance(3)
    store.process_due()
    marked = fake_clock.wall()
    fake_clock.advance(5)
    response = client.get(f"/status/{job_id}")
    doc = response.get_json()
    assert doc.pop("output")["size"] > 0  # issue 16: a completed job's output
    assert doc == {
        "job_id": job_id,
        "result": "completed",
        "phase": "completed",
        "progress": 1.0,
        "created_at": 1_700_000_000.0,
        "started_at": 1_700_000_000.0,
        "finished_at": marked,
    }
    assert "Retry-After" not in response.headers


def test_a_read_finalizes_a_due_job_without_the_timer(make_fake, fake_clock) -> None:
    """A read of a job past its due time finalizes it on the spot (lazy finalization)."""
    client, _ = make_fake()
    job_id = client.post("/start", json={"delay": 1}).get_json()["job_id"]
    fake_clock.advance(1)
    doc = client.get(f"/status/{job_id}").get_json()
    assert doc["result"] == "completed" and doc["finished_at"] == fake_clock.wall()


def test_error_outcome_carries_a_message(client: FlaskClient) -> None:
    """A job fated to fail reports result "error", progress 1.0 and a short error message."""
    response = client.post("/start", json={"delay": 0, "outcome": "error"})
    doc = response.get_json()
    assert response.status_code == 201 and doc["result"] == "error"
    assert doc["progress"] == 1.0 and doc["error"] == JOB_ERROR_MESSAGE
    assert "eta_seconds" not in doc and "Retry-After" not in response.headers


def test_error_probability_decides_fate(make_fake, fake_clock) -> None:
    """ERROR_PROBABILITY 1 fails every job; 0 fails none."""
    for probability, result in ((1.0, "error"), (0.0, "completed")):
        client, _ = make_fake(fast_settings(error_probability=probability))
        ids = [client.post("/start").get_json()["job_id"] for _ in range(5)]
        fake_clock.advance(1)
        assert {client.get(f"/status/{i}").get_json()["result"] for i in ids} == {result}


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        f"/status/{HEX_ID}",
        "/status/" + "a" * 129,
        "/status/has.dot",
        "/status/%E2%9C%93",
        f"/status?job_id={HEX_ID}",
        "/status?job_id=",
        "/status?job_id=../etc",
    ],
)
def test_unknown_route_or_job_is_a_json_404(client: FlaskClient, path: str) -> None:
    """Unknown routes, unknown jobs and malformed job ids all answer a JSON 404."""
    assert_error(client.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/start", "POST"),
        ("POST", "/status", "GET"),
        ("DELETE", f"/status/{HEX_ID}", "GET"),
        ("PUT", "/healthz", "GET"),
    ],
)
def test_wrong_method_is_a_json_405_with_allow(client, method: str, path: str, allowed: str) -> None:
    """A wrong method answers a JSON 405 with an Allow header listing the right ones."""
    response = client.open(path, method=method)
    assert_error(response, 405, "method_not_allowed")
    assert allowed in response.headers["Allow"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "JSON"),
        (b"\xff\xfe", "JSON"),
        (b"[1, 2]", "object"),
        (b'"text"', "object"),
        (b"null", "object"),
        (b'{"delay": -1}', "delay"),
        (b'{"delay": 86400.5}', "delay"),
        (b'{"delay": "5"}', "delay"),
        (b'{"delay": true}', "delay"),
        (b'{"delay": NaN}', "delay"),
        (b'{"delay": Infinity}', "delay"),
        (b'{"delay": 1e999}', "delay"),
        (b'{"delay": 1' + b"0" * 5000 + b"}", "JSON"),
        (b'{"outcome": "maybe"}', "outcome"),
        (b'{"outcome": 1}', "outcome"),
    ],
)
def test_bad_start_body_is_a_400(client: FlaskClient, body: bytes, fragment: str) -> None:
    """A body that is not a JSON object of known, valid fields is a 400 saying what is wrong."""
    response = client.post("/start", data=body, content_type="application/json")
    assert fragment in assert_error(response, 400, "bad_request")["message"]


@pytest.mark.parametrize("body", [b"", b"  \n", b"{}", b'{"delay": null}', b'{"delay": 86400}'])
def test_start_accepts_empty_and_boundary_bodies(client: FlaskClient, body: bytes) -> None:
    """An empty body, {}, null fields and the largest delay all start a job."""
    assert client.post("/start", data=body, content_type="application/json").status_code == 201


@pytest.mark.parametrize(
    ("query", "prefer"),
    [
        ("-1", None),
        ("abc", None),
        ("nan", None),
        ("inf", None),
        ("", None),
        ("1_0", None),
        ("9" * 400, None),
        (None, "wait=abc"),
        (None, "wait=-1"),
        (None, "wait="),
        (None, "respond-async, wait=nan"),
        ("1", "wait=inf"),
    ],
)
def test_bad_wait_is_a_400(client: FlaskClient, query: str | None, prefer: str | None) -> None:
    """A wait that is not a finite non-negative number, in query or Prefer, is a 400."""
    path = "/status" if query is None else f"/status?wait={query}"
    headers = {} if prefer is None else {"Prefer": prefer}
    assert_error(client.get(path, headers=headers), 400, "bad_request")


def test_body_over_64_kib_is_a_413(client: FlaskClient) -> None:
    """A request body of 64 KiB + 1 byte answers a JSON 413."""
    response = client.post("/start", data=b" " * (64 * 1024 + 1), content_type="application/json")
    assert_error(response, 413, "payload_too_large")


def test_unexpected_exception_is_a_logged_json_500(make_app, caplog) -> None:
    """An unhandled exception answers a JSON 500 and logs its traceback."""
    app = make_app()

    def boom() -> None:
        raise RuntimeError("kaboom")

    app.add_url_rule("/boom", view_func=boom)
    assert_error(app.test_client().get("/boom"), 500, "internal_error")
    assert any(r.exc_info and "kaboom" in str(r.exc_info[1]) for r in caplog.records)


# --- authentication ---------------------------------------------------------------------------


@pytest.fixture
def auth_client(make_app) -> FlaskClient:
    """A client of an app that requires user "alice", password "s3cret-pw"."""
    return make_app(fast_settings(api_username="alice", api_password="s3cret-pw")).test_client()


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (basic("alice", "s3cret-pw"), 200),
        ("basic " + basic("alice", "s3cret-pw")[6:], 200),
        (None, 401),
        (basic("alice", "wrong"), 401),
        (basic("mallory", "s3cret-pw"), 401),
        (basic("alice", "s3cret-pw2"), 401),
        ("Basic !!!not-base64!!!", 401),
        ("Basic " + base64.b64encode(b"no-colon").decode(), 401),
        ("Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(), 401),
        (basic(b"alice", b"s3cret-pw\xff"), 401),
        ("Basic", 401),
        ("Basic é", 401),
        ("Bearer s3cret-pw", 401),
    ],
)
def test_basic_auth(auth_client: FlaskClient, authorization: str | None, status: int) -> None:
    """Only the right credentials pass; a missing, wrong or broken header is a JSON 401, never 500."""
    headers = {} if authorization is None else {"Authorization": authorization}
    for request in (lambda: auth_client.get("/status", headers=headers),
                    lambda: auth_client.post("/start", headers=headers)):  # fmt: skip
        response = request()
        if status == 401:
            assert_error(response, 401, "unauthorized")
            assert response.headers["WWW-Authenticate"] == 'Basic realm="video-translation"'
        else:
            assert response.status_code in (200, 201)


def test_healthz_needs_no_credentials(auth_client: FlaskClient) -> None:
    """/healthz stays open when auth is on, for readiness checks."""
    assert auth_client.get("/healthz").status_code == 200


def test_auth_is_off_unless_both_credentials_are_set(make_app) -> None:
    """With no credentials, or only one, requests need no Authorization header."""
    for settings in (fast_settings(), fast_settings(api_password="only-password")):
        assert make_app(settings).test_client().get("/status").status_code == 200


# --- long-poll --------------------------------------------------------------------------------


def test_long_poll_wakes_within_milliseconds_of_finishing(make_server) -> None:
    """A wait=5 request on a 0.2 s job returns right after the job finishes, well before 5 s."""
    live = make_server()
    began = time.monotonic()
    job_id = requests.post(f"{live.url}/start", json={"delay": 0.2}, timeout=5).json()["job_id"]
    response = requests.get(f"{live.url}/status/{job_id}?wait=5", timeout=10)
    returned = time.time()
    doc = response.json()
    assert doc["result"] == "completed"
    assert time.monotonic() - began < 1.0
    assert returned - doc["finished_at"] < 0.5  # in practice a few milliseconds
    assert response.headers["Preference-Applied"] == "wait=5"


def test_prefer_wait_is_applied_and_echoed(client: FlaskClient) -> None:
    """Prefer: wait=N (among other preferences) holds until the job finishes; the wait is echoed."""
    job_id = client.post("/start", json={"delay": 0.1}).get_json()["job_id"]
    response = client.get(f"/status/{job_id}", headers={"Prefer": "respond-async, wait=2.5"})
    assert response.get_json()["result"] == "completed"
    assert response.headers["Preference-Applied"] == "wait=2.5"


def test_wait_is_capped_by_max_wait(make_app) -> None:
    """A wait above MAX_WAIT holds only MAX_WAIT, and Preference-Applied says so."""
    client = make_app(fast_settings(max_wait=0.2)).test_client()
    job_id = client.post("/start", json={"delay": 60}).get_json()["job_id"]
    began = time.monotonic()
    response = client.get(f"/status/{job_id}?wait=5")
    assert 0.2 <= time.monotonic() - began < 1.5
    assert response.get_json()["result"] == "pending"
    assert response.headers["Preference-Applied"] == "wait=0.2"
    assert response.headers["Retry-After"] == "60"


def test_smaller_of_query_and_prefer_wait_wins(client: FlaskClient) -> None:
    """When both ?wait= and Prefer: wait= are given, the smaller one is applied."""
    job_id = client.post("/start", json={"delay": 60}).get_json()["job_id"]
    response = client.get(f"/status/{job_id}?wait=5", headers={"Prefer": "wait=0.1"})
    assert response.headers["Preference-Applied"] == "wait=0.1"


def test_final_job_answers_at_once_without_preference_applied(client: FlaskClient) -> None:
    """A wait on a job that is already final answers at once, with no Preference-Applied."""
    job_id = client.post("/start", json={"delay": 0}).get_json()["job_id"]
    began = time.monotonic()
    response = client.get(f"/status/{job_id}?wait=5")
    assert time.monotonic() - began < 0.5
    assert response.get_json()["result"] == "completed"
    assert "Preference-Applied" not in response.headers


@pytest.mark.parametrize("prefer", ["handling=lenient", "return=minimal", "wait=0"])
def test_no_hold_for_other_preferences_or_zero_wait(client: FlaskClient, prefer: str) -> None:
    """Other Prefer tokens are ignored, and wait=0 does not hold."""
    job_id = client.post("/start", json={"delay": 60}).get_json()["job_id"]
    response = client.get(f"/status/{job_id}", headers={"Prefer": prefer})
    assert response.status_code == 200 and "Preference-Applied" not in response.headers


def test_max_waiters_bounds_held_requests(make_server) -> None:
    """Past MAX_WAITERS a long-poll answers at once with hints; the held one still wakes."""
    live = make_server(fast_settings(max_waiters=1))
    job_id = requests.post(f"{live.url}/start", json={"delay": 0.6}, timeout=5).json()["job_id"]
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(requests.get, f"{live.url}/status/{job_id}?wait=5", timeout=10)
        deadline = time.monotonic() + 2
        while live.store.waiters < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert live.store.waiters == 1
        began = time.monotonic()
        second = requests.get(f"{live.url}/status/{job_id}?wait=5", timeout=10)
        assert time.monotonic() - began < 0.4
        assert second.json()["result"] == "pending" and "Retry-After" in second.headers
        assert "Preference-Applied" not in second.headers
        first = held.result()
    assert first.json()["result"] == "completed"
    assert first.headers["Preference-Applied"] == "wait=5"


# --- plain mode and ETA noise -----------------------------------------------------------------


def test_plain_mode_gives_no_hints_and_no_hold(make_app) -> None:
    """PLAIN drops Retry-After and eta_seconds and ignores wait/Prefer, even malformed ones."""
    client = make_app(fast_settings(plain=True)).test_client()
    started = client.post("/start", json={"delay": 60})
    assert "Retry-After" not in started.headers and "eta_seconds" not in started.get_json()
    job_id = started.get_json()["job_id"]
    began = time.monotonic()
    for query, prefer in (("5", "wait=5"), ("abc", "wait=-1")):
        response = client.get(f"/status/{job_id}?wait={query}", headers={"Prefer": prefer})
        assert response.status_code == 200 and "eta_seconds" not in response.get_json()
        assert not {"Retry-After", "Preference-Applied"} & set(response.headers.keys())
    assert time.monotonic() - began < 0.5


def test_eta_noise_is_a_fixed_factor_within_bounds(make_fake, fake_clock) -> None:
    """With ETA_NOISE 0.2, eta_seconds / remaining stays in [0.8, 1.2], fixed per job."""
    client, _ = make_fake(fast_settings(min_delay=10, max_delay=10, eta_noise=0.2))
    ids = [client.post("/start").get_json()["job_id"] for _ in range(200)]
    fake_clock.advance(4)
    ratios = [client.get(f"/status/{i}").get_json()["eta_seconds"] / 6 for i in ids]
    assert all(0.8 - 1e-3 <= r <= 1.2 + 1e-3 for r in ratios)
    assert max(ratios) - min(ratios) > 0.2  # it is noisy
    fake_clock.advance(3)  # the same factor applies to the 3 s left
    later = [client.get(f"/status/{i}").get_json()["eta_seconds"] / 3 for i in ids]
    assert later == pytest.approx(ratios, abs=2e-3)


def test_seed_makes_a_run_reproducible(make_fake, fake_clock) -> None:
    """The same SEED gives the same durations, fates and estimates; another seed does not."""

    def run(seed: int) -> list[tuple[str, float]]:
        settings = fast_settings(min_delay=1, max_delay=9, error_probability=0.5, eta_noise=0.2,
                                 seed=seed)  # fmt: skip
        client, store = make_fake(settings)
        ids = [client.post("/start").get_json()["job_id"] for _ in range(20)]
        etas = [client.get(f"/status/{i}").get_json()["eta_seconds"] for i in ids]
        fake_clock.advance(10)
        return [(client.get(f"/status/{i}").get_json()["result"], e) for i, e in zip(ids, etas, strict=True)]

    assert run(7) == run(7) != run(8)


# --- store: TTL, idempotency, limits ----------------------------------------------------------


def test_finished_jobs_are_evicted_after_job_ttl(make_fake, fake_clock, caplog) -> None:
    """A finished job stays readable JOB_TTL seconds after it finished, then answers 404."""
    client, store = make_fake(fast_settings(job_ttl=10))
    job_id = client.post("/start", json={"delay": 1}).get_json()["job_id"]
    fake_clock.advance(1)
    store.process_due()
    fake_clock.advance(9.9)
    store.process_due()
    assert client.get(f"/status/{job_id}").status_code == 200
    fake_clock.advance(0.1)
    store.process_due()
    assert_error(client.get(f"/status/{job_id}"), 404, "not_found")
    assert f"job {job_id} evicted" in caplog.text


def test_default_job_is_never_evicted(make_fake, fake_clock) -> None:
    """The default job behind bare GET /status outlives JOB_TTL."""
    client, store = make_fake(fast_settings(job_ttl=1))
    fake_clock.advance(1000)
    store.process_due()
    response = client.get("/status")
    assert response.status_code == 200 and response.get_json()["result"] == "completed"


def test_idempotency_key_replays_the_same_job(client: FlaskClient) -> None:
    """The same Idempotency-Key answers the job it started: 200, same document and Location."""
    headers = {"Idempotency-Key": "order-42:v1.0_a-b"}
    first = client.post("/start", json={"delay": 60}, headers=headers)
    again = client.post("/start", json={"delay": 1}, headers=headers)
    other = client.post("/start", json={"delay": 60}, headers={"Idempotency-Key": "order-43"})
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.get_json()["job_id"] == first.get_json()["job_id"] != other.get_json()["job_id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers


@pytest.mark.parametrize("key", ["", "a" * 256, "has space", "semi;colon", "ключ", "a/b"])
def test_malformed_idempotency_key_is_a_400(client: FlaskClient, key: str) -> None:
    """An Idempotency-Key outside 1 to 255 characters of [A-Za-z0-9_:.-] is a 400."""
    headers = {"Idempotency-Key": key.encode("utf-8").decode("latin-1")}
    assert_error(client.post("/start", headers=headers), 400, "bad_request")


def test_longest_idempotency_key_is_accepted(client: FlaskClient) -> None:
    """A 255-character key is valid."""
    assert client.post("/start", headers={"Idempotency-Key": "k" * 255}).status_code == 201


def test_idempotency_key_is_forgotten_with_its_job(make_fake, fake_clock) -> None:
    """Once its job is evicted, a key starts a new job."""
    client, store = make_fake(fast_settings(job_ttl=10))
    headers = {"Idempotency-Key": "once"}
    first = client.post("/start", json={"delay": 1}, headers=headers).get_json()["job_id"]
    fake_clock.advance(1)
    store.process_due()
    fake_clock.advance(10)
    response = client.post("/start", headers=headers)
    assert response.status_code == 201 and response.get_json()["job_id"] != first


def test_max_jobs_answers_429_with_retry_after(make_fake, fake_clock) -> None:
    """Past MAX_JOBS live jobs, POST /start is a 429 whose Retry-After is when a slot frees."""
    client, store = make_fake(fast_settings(max_jobs=2, job_ttl=100))
    assert client.post("/start", json={"delay": 10}).status_code == 201
    assert client.post("/start", json={"delay": 20}).status_code == 201
    response = client.post("/start")
    assert_error(response, 429, "too_many_jobs")
    assert response.headers["Retry-After"] == "110"  # due in 10 s, then kept 100 s
    fake_clock.advance(10)
    store.process_due()  # what the timer thread does at that moment
    assert client.post("/start").headers["Retry-After"] == "100"
    fake_clock.advance(100)
    assert client.post("/start").status_code == 201  # the first job was evicted
    assert len(store) == 3  # two live jobs plus the default one, which is not counted


@pytest.mark.parametrize("store_kind", ["memory"])  # the memory store's thread and timing
def test_one_timer_thread_holds_ten_thousand_pending_jobs(make_app) -> None:
    """10,000 pending jobs cost no extra threads and start quickly."""
    app = make_app(fast_settings(min_delay=60, max_delay=60))
    store = app_state(app).store
    threads = threading.active_count()
    began = time.monotonic()
    for _ in range(10_000):
        store.start()
    assert time.monotonic() - began < 5
    assert threading.active_count() == threads
    assert [t.name for t in threading.enumerate()].count("job-timer") == 1
    assert len(store) == 10_001


def test_concurrent_starts_get_distinct_ids(make_server) -> None:
    """100 concurrent POST /start on a live server give 100 distinct job ids."""
    live = make_server()
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda _: requests.post(f"{live.url}/start", timeout=10),
                                  range(100)))  # fmt: skip
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["job_id"] for r in responses}) == 100


# --- fault injection --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "status", "code"),
    [("fault_503", 503, "service_unavailable"), ("fault_429", 429, "too_many_requests")],
)
def test_status_faults_answer_json_errors_with_retry_after(
    make_app, caplog, setting: str, status: int, code: str
) -> None:
    """FAULT_503 / FAULT_429 at rate 1 fail every status request with Retry-After: 1, logged."""
    client = make_app(fast_settings(**{setting: 1.0})).test_client()
    assert client.post("/start").status_code == 201  # faults hit status requests only
    response = client.get("/status")
    assert_error(response, status, code)
    assert response.headers["Retry-After"] == "1"
    assert any(r.levelno == logging.WARNING and "fault" in r.message for r in caplog.records)


def test_garbage_fault_answers_200_that_is_not_json(make_app) -> None:
    """FAULT_GARBAGE answers a 200 whose body is HTML, not JSON."""
    response = make_app(fast_settings(fault_garbage=1.0)).test_client().get("/status")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert response.get_json(silent=True) is None


def test_latency_fault_delays_status_answers(make_app) -> None:
    """FAULT_LATENCY adds that many seconds before a status answer."""
    client = make_app(fast_settings(fault_latency=0.2)).test_client()
    began = time.monotonic()
    assert client.get("/status").status_code == 200
    assert time.monotonic() - began >= 0.2


def test_drop_fault_closes_the_connection_and_server_keeps_serving(make_server, caplog) -> None:
    """FAULT_DROP closes the connection without an answer; no traceback; the server still serves."""
    live = make_server(fast_settings(fault_drop=1.0))
    for _ in range(3):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{live.url}/status", timeout=5)
    assert requests.get(f"{live.url}/healthz", timeout=5).status_code == 200
    assert requests.post(f"{live.url}/start", timeout=5).status_code == 201
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "GET /status dropped" in caplog.text


# --- logging ----------------------------------------------------------------------------------


def test_logs_requests_and_job_transitions(client: FlaskClient, caplog) -> None:
    """Each request logs method, path, status and ms; each job logs started and completed."""
    job_id = client.post("/start", json={"delay": 0.05}).get_json()["job_id"]
    client.get(f"/status/{job_id}?wait=2")
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("vtwait.server")]
    assert any(m.startswith("POST /start 201 ") and m.endswith("ms") for m in messages)
    assert any(m.startswith(f"GET /status/{job_id}?wait=2 200 ") for m in messages)
    assert any(m.startswith(f"job {job_id} started") for m in messages)
    assert f"job {job_id} completed" in messages


def test_password_never_appears_in_logs(make_app, caplog) -> None:
    """Neither the password nor a wrong one nor their base64 forms appear in any log line."""
    app = make_app(fast_settings(api_username="alice", api_password="s3cret-pw"))
    client = app.test_client()
    for password in ("s3cret-pw", "wr0ng-pw"):
        client.post("/start", headers={"Authorization": basic("alice", password)})
        client.get("/status?wait=0.1", headers={"Authorization": basic("alice", password)})
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "POST /start 201" in text and "POST /start 401" in text
    for secret in ("s3cret-pw", "wr0ng-pw", basic("alice", "s3cret-pw")[6:]):
        assert secret not in text


def test_env_example_documents_the_defaults() -> None:
    """.env.example parses cleanly and states exactly the default settings."""
    assert server.Settings.from_env({}, env_file=ROOT / ".env.example") == server.Settings()
