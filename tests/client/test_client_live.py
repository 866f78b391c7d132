"""The client over real HTTP on 127.0.0.1: against server.py, and against a deliberately plain server.

The plain server (below) is what many backends look like: no hints, no long-poll, the state under a
nested ``status`` key with words like ``running``/``succeeded``, progress in percent, and 503s.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask, jsonify, request

import vtwait.core as client
from tests.helpers import fast_settings, serve_wsgi
from vtwait import (
    AuthenticationError,
    JobNotFoundError,
    JobResult,
    PollingPolicy,
    RetryPolicy,
    ServerUnreachableError,
    VideoTranslationClient,
    WaitTimeout,
)

ROOT = Path(__file__).resolve().parents[2]
QUICK_RETRY = RetryPolicy(max_retries=2, backoff_factor=0.01, backoff_max=0.05)


def counting_session() -> tuple[requests.Session, list[str]]:
    """A session that records the method and path of every request it completes."""
    session = requests.Session()
    seen: list[str] = []
    session.hooks["response"].append(
        lambda r, *a, **k: seen.append(f"{r.request.method} {r.request.path_url}"))
    return session, seen


def status_requests(seen: list[str]) -> int:
    return sum(1 for line in seen if line.startswith("GET "))


# -------------------------------------------------------------------------- our server
def test_long_poll_knows_the_end_within_milliseconds_with_one_request(make_server):
    """Against server.py: one status request, answered right as the job ends."""
    live = make_server(fast_settings(min_delay=0.4, max_delay=0.4))
    session, seen = counting_session()
    with VideoTranslationClient(live.url, session=session) as api:
        status = api.wait_for_completion(api.start_job(), timeout=10)
    learned_after = time.time() - status.finished_at
    assert status.result is JobResult.COMPLETED
    assert status_requests(seen) == 1
    assert 0 <= learned_after < 0.25  # typically ~2 ms; generous for a shared machine


def test_hints_alone_find_the_end_in_a_few_requests(make_server):
    """Long-poll off, noisy ETA on: the ETA check-in lands the last ask just after the end."""
    live = make_server(fast_settings(min_delay=1.5, max_delay=1.5, eta_noise=0.2, seed=5))
    session, seen = counting_session()
    with VideoTranslationClient(live.url, session=session,
                                policy=PollingPolicy(long_poll=False)) as api:
        status = api.wait_for_completion(api.start_job(), timeout=10)
    assert status.done
    assert status_requests(seen) <= 4
    assert time.time() - status.finished_at < 0.3


def test_plain_mode_server_is_waited_for_with_backoff(make_server):
    """PLAIN=1 (no hints, no long-poll): the backoff path still reaches the final status."""
    live = make_server(fast_settings(min_delay=0.3, max_delay=0.3, plain=True))
    session, seen = counting_session()
    with VideoTranslationClient(live.url, session=session) as api:
        status = api.wait_for_completion(api.start_job(), timeout=10)
    assert status.done and 1 <= status_requests(seen) <= 3


def test_forced_error_is_returned(make_server):
    """A job that ends in error comes back as a status with the server's message."""
    live = make_server()
    with VideoTranslationClient(live.url) as api:
        status = api.wait_for_completion(api.start_job(delay=0.05, outcome="error"), timeout=5)
    assert status.result is JobResult.ERROR and status.error


def test_single_job_status_route(make_server):
    """job_id=None waits on the server's default job through GET /status."""
    live = make_server()
    with VideoTranslationClient(live.url) as api:
        status = api.wait_for_completion(timeout=5)
    assert status.done and status.job_id == live.store.default_job_id


def test_wrong_or_missing_credentials_raise_authentication_error(make_server):
    """401 is an AuthenticationError naming what to check; the right ones work."""
    live = make_server(fast_settings(api_username="admin", api_password="right-pw"))
    with VideoTranslationClient(live.url, "admin", "wrong-pw") as api:
        with pytest.raises(AuthenticationError, match="API_PASSWORD") as caught:
            api.start_job()
    assert caught.value.status_code == 401 and "wrong-pw" not in str(caught.value)
    with VideoTranslationClient(live.url, auth=None) as api:
        with pytest.raises(AuthenticationError):
            api.get_status()
    with VideoTranslationClient(live.url, "admin", "right-pw") as api:
        assert api.wait_for_completion(api.start_job(), timeout=5).done


def test_unknown_job_raises_job_not_found(make_server):
    """A job id the server never had: JobNotFoundError after one request."""
    live = make_server()
    with VideoTranslationClient(live.url) as api:
        with pytest.raises(JobNotFoundError, match="deadbeef"):
            api.wait_for_completion("deadbeef", timeout=5)


# ---------------------------------------------------------------------- the plain server
def plain_app(*, duration: float = 0.4, fail_every: int = 3, fail_starts: int = 0) -> Flask:
    """A backend with none of our niceties; every ``fail_every``-th status request is a 503."""
    app = Flask("plain")
    jobs: dict[str, tuple[float, str]] = {}
    ids = itertools.count(1)
    status_calls = itertools.count(1)
    app.config.update(start_keys=[], start_calls=itertools.count(1), status_requests=0)

    def state(job_id: str) -> tuple[str, int]:
        started, fate = jobs[job_id]
        done = (time.monotonic() - started) / duration
        return (fate, 100) if done >= 1 else ("running" if done > 0.2 else "queued",
                                              int(done * 100))

    @app.post("/jobs")
    def start():
        app.config["start_keys"].append(request.headers.get("Idempotency-Key"))
        if next(app.config["start_calls"]) <= fail_starts:
            return jsonify(message="try later"), 503
        job_id = f"job-{next(ids)}"
        fate = "failed" if (request.get_json(silent=True) or {}).get("outcome") == "error" \
            else "succeeded"
        jobs[job_id] = (time.monotonic(), fate)
        return jsonify(id=job_id), 202, {"Location": f"/jobs/{job_id}"}

    @app.get("/jobs/<job_id>/status")
    def nested_status(job_id: str):
        app.config["status_requests"] += 1
        if fail_every and next(status_calls) % fail_every == 0:
            return "Service Unavailable", 503
        if job_id not in jobs:
            return jsonify(message="no such job"), 404
        word, percent = state(job_id)
        return jsonify(status={"status": word, "progress": percent})

    @app.get("/status")
    def query_status():
        app.config["status_requests"] += 1
        word, percent = state(request.args["job_id"])
        return jsonify(status=word.upper(), progress=percent)

    return app


@pytest.fixture
def plain_server() -> Iterator[tuple[str, Flask]]:
    app = plain_app()
    with serve_wsgi(app) as url:
        yield url, app


def test_plain_flaky_server_reaches_the_right_answer_within_budget(plain_server):
    """No hints, no long-poll, nested 'status', %, 503s: right answer, bounded requests."""
    url, app = plain_server
    with VideoTranslationClient(url, start_url="/jobs", status_url="/jobs/{job_id}/status",
                                retry=QUICK_RETRY) as api:
        done = api.wait_for_completion(api.start_job(), timeout=10)
        failed = api.wait_for_completion(api.start_job(outcome="error"), timeout=10)
    assert done.result is JobResult.COMPLETED and done.progress == 1.0
    assert failed.result is JobResult.ERROR
    # 0.4 s jobs, 1 s first backoff: 2 polls each, plus at most one 503 retry per two polls.
    assert app.config["status_requests"] <= 8


def test_query_string_status_url_and_top_level_status_key(plain_server):
    """status_url='/status?job_id={job_id}' and {"status": "RUNNING"} are understood."""
    url, _ = plain_server
    with VideoTranslationClient(url, start_url="/jobs", status_url="/status?job_id={job_id}",
                                policy=PollingPolicy.fixed(0.1)) as api:
        job_id = api.start_job()
        first = api.get_status(job_id)
        final = api.wait_for_completion(job_id, timeout=10)
    assert first.result is JobResult.PENDING and first.progress is not None
    assert final.result is JobResult.COMPLETED


def test_a_retried_start_reuses_its_idempotency_key():
    """urllib3 retries a 503 on POST /start with the same Idempotency-Key: no second job."""
    app = plain_app(fail_starts=1)
    with serve_wsgi(app) as url, VideoTranslationClient(url, start_url="/jobs",
                                                        retry=QUICK_RETRY) as api:
        assert api.start_job() == "job-1"
    first, second = app.config["start_keys"]
    assert first == second and len(first) == 32


def test_retry_after_on_503_is_honoured_through_the_injected_sleep():
    """A 503 with Retry-After: 1 is retried after exactly that, via the client's sleep."""
    app = busy_once_app()
    slept: list[float] = []
    with serve_wsgi(app) as url, VideoTranslationClient(url, sleep=slept.append) as api:
        assert api.get_status("x").done
    assert slept == [1.0]


def test_a_server_that_keeps_failing_raises_server_error_after_the_retries():
    """503 every time: 1 + max_retries attempts through urllib3, then ServerError with the code."""
    app, hits = down_app()
    with serve_wsgi(app) as url, VideoTranslationClient(url, retry=QUICK_RETRY) as api:
        with pytest.raises(client.ServerError, match="back soon") as caught:
            api.get_status("x")
    assert caught.value.status_code == 503
    assert next(hits) - 1 == 1 + QUICK_RETRY.max_retries


def busy_once_app() -> Flask:
    """GET /status/<id>: a 503 with ``Retry-After: 1`` the first time, then completed."""
    app = Flask("busy")
    calls = itertools.count()

    @app.get("/status/<job_id>")
    def busy(job_id: str):
        if next(calls) == 0:
            return jsonify(error="busy"), 503, {"Retry-After": "1"}
        return jsonify(result="completed")

    return app


def down_app() -> tuple[Flask, Iterator[int]]:
    """GET /status/<id>: a 503 with the server's own words, every time; and its hit counter
    (its next value minus one is the number of requests so far)."""
    app = Flask("down")
    hits = itertools.count(1)

    @app.get("/status/<job_id>")
    def down(job_id: str):
        next(hits)
        return jsonify(error={"code": "maintenance", "message": "back soon"}), 503

    return app, hits


def unused_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_server_raises_server_unreachable():
    """Nobody listening: ServerUnreachableError (a ConnectionError) after the retries."""
    url = f"http://127.0.0.1:{unused_loopback_port()}"
    with VideoTranslationClient(url, retry=QUICK_RETRY) as api:
        with pytest.raises(ServerUnreachableError, match="is it running") as caught:
            api.get_status("x")
    assert isinstance(caught.value, ConnectionError)


def test_unreachable_server_during_a_wait_times_out_with_the_cause():
    """A wait against a dead server keeps trying until its deadline, then names the cause."""
    url = f"http://127.0.0.1:{unused_loopback_port()}"
    with VideoTranslationClient(url, retry=QUICK_RETRY,
                                policy=PollingPolicy.fixed(0.2)) as api:
        started = time.monotonic()
        with pytest.raises(WaitTimeout) as caught:
            api.wait_for_completion("x", timeout=1.0)
    assert 0.9 <= time.monotonic() - started < 3.0
    assert isinstance(caught.value.__cause__, ServerUnreachableError)
    assert caught.value.attempts >= 3 and caught.value.last_status is None


# --------------------------------------------------------------------------- command line
def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("API_")}
    environment.update(env or {})
    return subprocess.run([sys.executable, str(ROOT / "client.py"), *args], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=60)


def test_cli_completed_job_exits_0_and_prints_the_document(make_server, tmp_path):
    """`client.py --json` prints the final document; exit 0; the log file is written."""
    live = make_server(fast_settings(api_username="admin", api_password="cli-secret"))
    log_file = tmp_path / "client.log"
    done = run_cli("--base-url", live.url, "--delay", "0.1", "--json", "--log-file",
                   str(log_file), env={"API_USERNAME": "admin", "API_PASSWORD": "cli-secret"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"] == "completed"
    assert "completed after" in log_file.read_text()
    assert "cli-secret" not in done.stderr + log_file.read_text()


def test_cli_existing_job_that_fails_exits_1(make_server):
    """`--job-id` waits for an existing job; one ending in error exits 1, plain lines piped."""
    live = make_server()
    with VideoTranslationClient(live.url) as api:
        job_id = api.start_job(delay=0.2, outcome="error")
    done = run_cli("--base-url", live.url, "--job-id", job_id)
    assert done.returncode == 1
    assert done.stdout.strip().startswith(f"job {job_id}: error")
    assert "\r" not in done.stderr  # piped: no terminal control


@pytest.mark.parametrize("args,code,message", [
    (["--username", "admin", "--password", "nope"], 2, "refused the credentials"),
    (["--delay", "5", "--timeout", "0.5"], 3, "no final status within 0.5 s"),
    (["--job-id", "0123abcd"], 2, "not found"),
    (["--timeout", "-1"], 2, "timeout must be > 0"),
])
def test_cli_exit_codes(make_server, args, code, message):
    """Exit codes: 2 auth, usage or unknown job, 3 timeout; the message says why."""
    live = make_server(fast_settings(api_username="admin", api_password="pw"))
    env = {} if "--username" in args else {"API_USERNAME": "admin", "API_PASSWORD": "pw"}
    done = run_cli("--base-url", live.url, *args, env=env)
    assert done.returncode == code, done.stderr
    assert message in done.stderr


def test_cli_unreachable_server_exits_4():
    """Nobody listening: exit 4 and a message asking whether the server runs."""
    done = run_cli("--base-url", f"http://127.0.0.1:{unused_loopback_port()}")
    assert done.returncode == 4 and "is it running" in done.stderr


def test_cli_help_documents_every_flag():
    """--help lists the flags and the exit codes."""
    done = run_cli("--help")
    for flag in ("--base-url", "--job-id", "--timeout", "--log-file", "--json", "-v",
                 "--username", "--password", "API_PASSWORD", "Exit codes"):
        assert flag in done.stdout
