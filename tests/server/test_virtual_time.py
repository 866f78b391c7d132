"""``CLOCK=virtual``: everything time-driven in the server follows a clock that moves only when
advanced. Real HTTP to a live server on 127.0.0.1 (in this process, so the test advances
``app_state(app).clock`` directly; tests/e2e/test_vt_plugin.py does it over ``POST /_admin/clock``).

Each test moves virtual time by minutes or hours and takes a fraction of a real second.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.helpers import ROOT, LiveServer, fast_settings
from tests.server.test_webhooks import SECRET, Receiver, receiver_url  # noqa: F401 (a fixture)
from vtwait.server.clock import VirtualClock
from vtwait.server.settings import ConfigError, Settings
from vtwait.server.state import app_state

HOUR = 3600.0


def virtual(**overrides: Any) -> Settings:
    """fast_settings on a virtual clock, with 1-hour jobs unless told otherwise."""
    values: dict[str, Any] = {"clock": "virtual", "min_delay": HOUR, "max_delay": HOUR}
    return fast_settings(**{**values, **overrides})


@pytest.fixture
def live(make_server: Callable[..., LiveServer]) -> Callable[..., tuple[LiveServer, VirtualClock]]:
    """Factory: a live server with ``virtual(**overrides)`` and its clock."""

    def factory(**overrides: Any) -> tuple[LiveServer, VirtualClock]:
        server = make_server(virtual(**overrides))
        clock = app_state(server.app).clock
        assert isinstance(clock, VirtualClock)
        return server, clock

    return factory


def start(server: LiveServer, **body: Any) -> dict[str, Any]:
    answer = requests.post(f"{server.url}/start", json=body, timeout=10)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def status(server: LiveServer, job_id: str, **params: Any) -> requests.Response:
    return requests.get(f"{server.url}/status/{job_id}", params=params, timeout=10)


def finished(thread: threading.Thread, limit: float = 10.0) -> bool:
    thread.join(limit)
    return not thread.is_alive()


def test_the_clock_setting_and_its_refusals() -> None:
    assert Settings().clock == "system"
    assert Settings.from_env({"CLOCK": "virtual"}).clock == "virtual"
    with pytest.raises(ConfigError, match="CLOCK must be one of system, virtual"):
        Settings(clock="fake")
    with pytest.raises(ConfigError, match="CLOCK=virtual needs JOB_STORE=memory"):
        Settings(clock="virtual", job_store="redis://127.0.0.1:6379/0")


def test_the_server_refuses_a_virtual_clock_with_redis_in_one_line_exit_2() -> None:
    env = {"CLOCK": "virtual", "JOB_STORE": "redis://127.0.0.1:1/0", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "vtwait.server", "--port", "0", "--env-file",
                           "/dev/null"], env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "CLOCK=virtual needs JOB_STORE=memory" in lines[0], done.stderr


def test_a_one_hour_job_ends_exactly_when_the_clock_passes_the_hour(live) -> None:
    server, clock = live()
    job = start(server)
    assert job["created_at"] == clock.time()  # document times are virtual
    clock.advance(HOUR - 1)
    assert status(server, job["job_id"]).json()["result"] == "pending"
    clock.advance(1)
    done = status(server, job["job_id"]).json()
    assert done["result"] == "completed"
    assert done["finished_at"] == job["created_at"] + HOUR


def test_eta_and_retry_after_count_down_in_virtual_seconds(live) -> None:
    server, clock = live()
    job = start(server)
    assert job["eta_seconds"] == HOUR
    clock.advance(600)
    answer = status(server, job["job_id"])
    assert answer.json()["eta_seconds"] == HOUR - 600
    assert answer.json()["progress"] == pytest.approx(600 / HOUR, abs=0.001)
    assert int(answer.headers["Retry-After"]) <= HOUR - 600


def test_a_queued_job_starts_when_the_slot_frees_at_its_virtual_time(live) -> None:
    server, clock = live(concurrency=2, min_delay=100, max_delay=100)  # the default job's + one
    first, second = start(server), start(server)
    assert second["phase"] == "queued"
    clock.advance(100)
    running = status(server, second["job_id"]).json()
    assert running["phase"] == "running"
    assert running["started_at"] == first["created_at"] + 100
    clock.advance(100)
    assert status(server, second["job_id"]).json()["result"] == "completed"


def test_a_finished_job_is_forgotten_when_the_clock_passes_its_ttl(live) -> None:
    server, clock = live(min_delay=10, max_delay=10, job_ttl=60)
    job = start(server)
    clock.advance(10 + 59)
    assert status(server, job["job_id"]).status_code == 200
    clock.advance(1)
    assert status(server, job["job_id"]).status_code == 404


def test_a_long_poll_hold_ends_when_the_clock_passes_its_wait(live) -> None:
    """wait=30 on a 1-hour job: still held after 29 virtual seconds, answered (pending) at 30."""
    server, clock = live()
    job = start(server)
    answers: list[requests.Response] = []
    held = threading.Thread(target=lambda: answers.append(status(server, job["job_id"], wait=30)))
    held.start()
    assert until(lambda: app_state(server.app).store.waiters == 1)
    clock.advance(29)
    assert not finished(held, 0.2)
    clock.advance(1)
    assert finished(held)
    assert answers[0].json()["result"] == "pending"
    assert answers[0].json()["eta_seconds"] == HOUR - 30


def test_a_long_poll_hold_answers_the_job_that_ends_within_it(live) -> None:
    server, clock = live(min_delay=20, max_delay=20)
    job = start(server)
    answers: list[requests.Response] = []
    held = threading.Thread(target=lambda: answers.append(status(server, job["job_id"], wait=30)))
    held.start()
    assert until(lambda: app_state(server.app).store.waiters == 1)
    clock.advance(20)
    assert finished(held)
    assert answers[0].json()["result"] == "completed"


def test_event_stream_heartbeats_follow_the_virtual_clock(live) -> None:
    """EVENT_HEARTBEAT=15: no ping while the clock stands still; one once it passes 15 s."""
    server, clock = live(event_heartbeat=15)
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        received = read_until(sock, b"retry:")
        assert b"200" in received.split(b"\r\n", 1)[0]
        sock.settimeout(0.3)  # the clock stands still: the rest of the opening, no ping
        with pytest.raises(TimeoutError):
            received += read_until(sock, b": ping")
        assert b": ping" not in received
        sock.settimeout(10)
        clock.advance(15)
        assert b": ping" in read_until(sock, b": ping")


def test_webhook_retries_wait_their_delays_in_virtual_time(live, receiver_url) -> None:  # noqa: F811
    """Retry delay 60 s, doubling: a receiver failing twice gets attempt 2 when the clock passes
    60 s and attempt 3 at 60 + 120 s; each advance returns once the due attempt was made."""
    receiver = Receiver(500, 500, 204)
    url = receiver_url(receiver)
    server, clock = live(min_delay=0, max_delay=0, webhook_secret=SECRET, webhook_retry_delay=60)
    start(server, callback_url=url)
    sender = app_state(server.app).webhooks
    assert until(lambda: len(receiver.received) == 1 and sender.pending == 1)
    clock.advance(59)
    assert len(receiver.received) == 1
    clock.advance(1)
    assert len(receiver.received) == 2
    clock.advance(119)
    assert len(receiver.received) == 2
    clock.advance(1)
    assert len(receiver.received) == 3 and sender.pending == 0
    assert receiver.verified(2)["result"] == "completed"  # still verifies: signed in real time


def test_a_whole_retry_ladder_passes_in_one_advance(live, receiver_url) -> None:  # noqa: F811
    """Five attempts 1, 2, 4, 8 s apart (15 s of ladder) all happen in one advance(60)."""
    receiver = Receiver(500)
    url = receiver_url(receiver)
    server, clock = live(min_delay=0, max_delay=0, webhook_secret=SECRET, webhook_retry_delay=1,
                         webhook_max_attempts=5)
    start(server, callback_url=url)
    sender = app_state(server.app).webhooks
    assert until(lambda: len(receiver.received) == 1)
    clock.advance(60)
    assert len(receiver.received) == 5 and sender.pending == 0


def test_rate_limit_tokens_come_back_with_virtual_time(live) -> None:
    server, clock = live(rate_limit=1, rate_burst=1)
    assert requests.get(f"{server.url}/status", timeout=10).status_code == 200
    refused = requests.get(f"{server.url}/status", timeout=10)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    time.sleep(0.05)  # real time alone brings nothing back
    assert requests.get(f"{server.url}/status", timeout=10).status_code == 429
    clock.advance(1)
    assert requests.get(f"{server.url}/status", timeout=10).status_code == 200


def until(condition: Callable[[], bool], limit: float = 10.0) -> bool:
    """Polls ``condition`` every 5 ms until it holds or ``limit`` real seconds pass."""
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    """Reads from ``sock`` until ``marker`` arrived (or the socket's timeout raises)."""
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_a_deadline_and_an_output_url_expire_on_virtual_time(live) -> None:
    """Cancel-After and OUTPUT_TTL follow the virtual clock: a one-minute deadline cancels a
    1-hour job when the clock passes it, and an output URL is refused once its TTL has passed."""
    server, clock = live(output_ttl=600.0)
    doomed = requests.post(f"{server.url}/start", json={}, headers={"Cancel-After": "60"},
                           timeout=10).json()
    short = start(server, delay=1.0)
    clock.advance(59)
    assert status(server, doomed["job_id"]).json()["result"] == "pending"
    clock.advance(2)
    ended = status(server, doomed["job_id"]).json()
    assert (ended["phase"], ended["cancel_reason"]) == ("canceled", "deadline")
    output = status(server, short["job_id"]).json()["output"]
    assert output["expires_at"] == pytest.approx(clock.time() + 600, abs=1)
    assert requests.head(output["url"], timeout=10).status_code == 200
    clock.advance(601)
    refused = requests.get(output["url"], timeout=10)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "url_expired"
