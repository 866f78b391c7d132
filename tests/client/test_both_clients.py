"""Rules the sync and asyncio clients share, each scenario run against both over loopback HTTP.

The wait (:class:`vtwait.core.planner.JobWait`), the retry schedule (``RetryState``) and the
pacing rule are written once; these tests pin the places where the two clients used to differ.
Clocks are fake (no test waits for a decision), the HTTP is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socketserver
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, jsonify

from tests.helpers import FakeClock, serve_wsgi
from vtwait import (
    AsyncVideoTranslationClient,
    PollingPolicy,
    RetryPolicy,
    ServerError,
    VideoTranslationClient,
    WaitTimeout,
)

POLICY = PollingPolicy(jitter=None, long_poll=False, learn=False)
QUICK_RETRY = RetryPolicy(max_retries=2, backoff_jitter=0.0)


def call_sync(url: str, clock: FakeClock, action: Callable[[Any], Any], **kwargs: Any) -> Any:
    kwargs.setdefault("retry", QUICK_RETRY)
    with VideoTranslationClient(url, clock=clock, sleep=clock.sleep, policy=POLICY,
                                **kwargs) as api:
        return action(api)


def call_async(url: str, clock: FakeClock, action: Callable[[Any], Any], **kwargs: Any) -> Any:
    async def sleep(seconds: float) -> None:
        clock.sleep(seconds)

    kwargs.setdefault("retry", QUICK_RETRY)

    async def run() -> Any:
        async with AsyncVideoTranslationClient(url, clock=clock, sleep=sleep, policy=POLICY,
                                               **kwargs) as api:
            return await action(api)

    return asyncio.run(run())


@pytest.fixture(params=["sync", "async"])
def call(request) -> Callable[..., Any]:
    """``call(url, clock, action)``: ``action(api)`` with one client or the other (awaited)."""
    return call_sync if request.param == "sync" else call_async


def test_a_rate_limit_past_the_deadline_ends_in_a_timeout_caused_by_server_error(call):
    """Quota spent until 60 s from now, deadline in 10 s: no sleep past the deadline, one
    request, and WaitTimeout whose cause is the public ServerError naming the rate limit (the
    sync client's cause used to be a private exception)."""
    app = Flask("spent")
    hits = itertools.count(1)

    @app.get("/status/<job_id>")
    def spent(job_id: str) -> Any:
        next(hits)
        return jsonify(result="pending"), 200, {"RateLimit-Policy": '"default";q=20;w=60',
                                                "RateLimit": '"default";r=0;t=60'}

    clock = FakeClock()
    with serve_wsgi(app) as url, pytest.raises(WaitTimeout) as caught:
        call(url, clock, lambda api: api.wait_for_completion("j1", timeout=10))
    assert clock.now - 1000.0 <= 10.0 and max(clock.sleeps) < 60
    assert next(hits) - 1 == 1
    cause = caught.value.__cause__
    assert isinstance(cause, ServerError) and "rate limit" in str(cause)


class _CutOnce(socketserver.BaseRequestHandler):
    """Raw HTTP: the first answer's body stops short of its Content-Length, then a whole one."""

    def handle(self) -> None:
        self.request.recv(65536)
        if next(self.server.hits) == 0:  # type: ignore[attr-defined]
            body, length = b'{"result": "pen', 100
        else:
            body = b'{"result": "completed"}'
            length = len(body)
        self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n" % length + body)


@contextlib.contextmanager
def cut_once_server() -> Iterator[tuple[str, Iterator[int]]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _CutOnce)
    server.daemon_threads = True
    hits = itertools.count()
    server.hits = hits  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_an_answer_that_breaks_off_is_retried_like_no_answer(call):
    """A body cut short is a transient fault: retried at once, then the whole answer is read
    (the sync client used to raise ServerUnreachableError without a retry)."""
    clock = FakeClock()
    with cut_once_server() as (url, hits):
        status = call(url, clock, lambda api: api.get_status("j1"))
    assert status.done and next(hits) == 2 and clock.sleeps == []


def test_a_503_after_the_retries_names_how_many_were_made(call):
    """503 every time: 1 + max_retries requests, then ServerError saying '2 retries'."""
    app = Flask("down")
    hits = itertools.count(1)

    @app.get("/status/<job_id>")
    def down(job_id: str) -> Any:
        next(hits)
        return jsonify(error={"code": "maintenance", "message": "back soon"}), 503

    clock = FakeClock()
    with serve_wsgi(app) as url, pytest.raises(ServerError, match="after 2 retries.*back soon"):
        call(url, clock, lambda api: api.get_status("j1"))
    assert next(hits) - 1 == 3 and clock.sleeps == [0.4]


def test_a_storm_of_503s_is_one_warning_then_a_count(call, caplog):
    """Twenty 503s in a row: the first is a WARNING, the repeats are DEBUG lines, and closing the
    client says how many there were (issue 19: 10,338 identical warnings read as one line)."""
    app = Flask("stormy")
    hits = itertools.count(1)

    @app.get("/status/<job_id>")
    def stormy(job_id: str) -> Any:
        if next(hits) <= 20:
            return jsonify(error={"code": "busy", "message": "busy"}), 503
        return jsonify(result="completed")

    for name in ("vtwait.client.sync", "vtwait.client.aio"):  # whatever another test set
        caplog.set_level(logging.DEBUG, logger=name)
    clock = FakeClock()
    retry = RetryPolicy(max_retries=25, backoff_jitter=0.0, backoff_max=0.01)
    with serve_wsgi(app) as url:
        status = call(url, clock, lambda api: api.get_status("j1"), retry=retry)
    assert status.done
    faults = [r for r in caplog.records if "transient fault" in r.getMessage()]
    warned = [r.getMessage() for r in faults if r.levelno == logging.WARNING]
    assert len(faults) == 21 and len(warned) == 2, warned
    assert warned[0].startswith("transient fault (HTTP 503)")
    assert "and 19 more like it" in warned[1]
