"""The client under rate limits: scripted answers with a fake clock, then real HTTP on loopback.

Scripted tests prove each decision exactly (when a request goes, what a Retry-After means); the
live ones prove that one budget is shared by every thread of a client, and the issue's case: a
rate limiter that sends ``Retry-After: 60`` with quota left on every answer must not make the
client learn of a 2 s job a minute late.
"""

from __future__ import annotations

import math
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask, jsonify
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import Call, FakeSession, final, pending, response
from tests.helpers import FakeClock, serve_wsgi
from vtwait import (
    JobResult,
    JobStatus,
    PollingPolicy,
    ServerError,
    VideoTranslationClient,
    VideoTranslationError,
)
from vtwait.core import RateLimit, WaitPlanner

BASE = "http://127.0.0.1:9"  # never contacted by the scripted tests
NO_JITTER = PollingPolicy(jitter=None, long_poll=False)


def scripted(answers, *, policy=NO_JITTER, **kwargs):
    """A client on a FakeClock whose session answers from ``answers`` and records call times."""
    clock = FakeClock()
    script = iter(answers)
    times: list[float] = []

    def handler(call: Call):
        times.append(clock.now)
        return next(script)

    api = VideoTranslationClient(BASE, session=FakeSession(handler), clock=clock,
                                 sleep=clock.sleep, rng=random.Random(3), policy=policy, **kwargs)
    return api, clock, times


def ietf(remaining: int, reset: float, limit: int = 20) -> dict[str, str]:
    return {"RateLimit-Policy": f'"default";q={limit};w=1',
            "RateLimit": f'"default";r={remaining};t={reset:g}'}


# ------------------------------------------------------------- Retry-After is not a poll hint
def test_a_rate_limiters_retry_after_beside_quota_left_is_not_a_poll_hint():
    """Retry-After: 60 with X-RateLimit-Remaining: 24 on a pending answer: backoff decides."""
    window = {"Retry-After": "60", "X-RateLimit-Limit": "25", "X-RateLimit-Remaining": "24",
              "X-RateLimit-Reset": "60"}
    api, clock, _times = scripted([response(200, pending(), window), response(200, pending(),
                                  window), response(200, final(), window)])
    assert api.wait_for_completion("j1").done
    assert clock.sleeps == [1.0, 1.3]  # the backoff, not 60 s


@pytest.mark.parametrize("limit,expected", [
    (None, 60.0),  # a plain Retry-After on a pending answer is the server's word: followed
    (RateLimit(24, 60.0, 25, None, None, "x-ratelimit"), None),  # quota left: ignored
    (RateLimit(0, 60.0, 25, None, None, "x-ratelimit"), 60.0),  # quota spent: it is the reset
])
def test_the_planner_tells_a_window_from_a_hint(limit, expected):
    """WaitPlanner follows Retry-After unless rate-limit fields beside it show quota left."""
    planner = WaitPlanner(PollingPolicy(jitter=None))
    decision = planner.after_answer(
        JobStatus("j1", JobResult.PENDING, retry_after=60.0, rate_limit=limit), asked_wait=None,
        sent_at=0.0, received_at=0.0)
    assert decision.delay == (expected if expected is not None else 1.0)
    assert ("Retry-After" in decision.reason) == (expected is not None)


# ------------------------------------------------------------------------------- pacing
def test_a_spent_quota_holds_the_next_request_until_the_reset():
    """r=0, t=5: the next status request goes exactly 5 s after that answer."""
    api, clock, times = scripted([response(200, pending(), ietf(0, 5)),
                                  response(200, final(), ietf(19, 1))])
    start = clock.now
    assert api.wait_for_completion("j1").done
    assert [t - start for t in times] == [0.0, 5.0]


def test_quota_left_costs_no_waiting():
    """While the quota lasts, the backoff alone spaces the requests."""
    api, clock, _times = scripted([response(200, pending(), ietf(10, 1)),
                                  response(200, pending(), ietf(9, 1)),
                                  response(200, final(), ietf(8, 1))])
    api.wait_for_completion("j1")
    assert clock.sleeps == [1.0, 1.3]


@pytest.mark.parametrize("headers,hold", [
    ({"Retry-After": "7"}, 7.0),
    (ietf(0, 4), 4.0),  # no Retry-After: the quota's reset
    ({"Retry-After": "3", **ietf(0, 9)}, 3.0),  # both: Retry-After is the server's word
])
def test_a_429_holds_the_next_request_as_the_server_says(headers, hold):
    """A 429 that reaches the client (retries spent) holds the next request until its time."""
    api, clock, times = scripted([response(429, {"error": {"message": "slow down"}}, headers),
                                  response(200, final())])
    start = clock.now
    assert api.wait_for_completion("j1").done
    assert times[1] - start == pytest.approx(hold)


def test_a_429_on_a_single_call_is_a_server_error_and_the_next_call_waits():
    """get_status answered 429: ServerError; the next request of that client waits the hold."""
    api, _clock, times = scripted([response(429, {}, {"Retry-After": "2"}),
                                  response(200, final())])
    with pytest.raises(ServerError) as caught:
        api.get_status("j1")
    assert caught.value.status_code == 429
    api.get_status("j1")
    assert times[1] - times[0] == pytest.approx(2.0)


def test_pacing_can_be_switched_off():
    """respect_rate_limits=False: the spent quota is not waited for (the trivial client)."""
    api, _clock, times = scripted([response(200, pending(), ietf(0, 5)),
                                  response(200, final(), ietf(19, 1))],
                                 respect_rate_limits=False)
    api.wait_for_completion("j1")
    assert times[1] - times[0] == pytest.approx(1.0)


def test_pacing_never_sleeps_past_the_deadline():
    """A reset beyond the deadline: no sleep past it, WaitTimeout at the deadline."""
    api, clock, times = scripted([response(200, pending(), ietf(0, 60))] * 3)
    start = clock.now
    with pytest.raises(TimeoutError):
        api.wait_for_completion("j1", timeout=10)
    assert clock.now - start <= 10.0 and len(times) == 1


def test_a_pacing_sleep_is_not_mistaken_for_a_long_poll_hold():
    """Held back 5 s by the quota, then answered at once: no 'window ended, ask again now'."""
    clock = FakeClock()
    answers = iter([response(200, pending(), ietf(0, 5)), response(200, pending(), ietf(5, 1)),
                    response(200, final())])
    session = FakeSession(lambda call: next(answers))
    api = VideoTranslationClient(BASE, session=session, clock=clock, sleep=clock.sleep,
                                 policy=PollingPolicy(jitter=None, max_long_poll=5))
    api.wait_for_completion("j1")
    # Asked for a 5 s hold, held back 5 s by pacing, answered at once: still a backoff step.
    assert clock.sleeps[-1] == pytest.approx(1.3)


# -------------------------------------------------------------------------------- live
def limited_app(rate: float, burst: int, *, retry_after_window: bool = False,
                job_seconds: float = 2.0) -> tuple[Flask, dict[str, int]]:
    """A backend with a token bucket per server (IETF fields on every answer, 429 past it).

    ``retry_after_window``: every 200 also carries ``Retry-After: 60`` and X-RateLimit fields,
    as the rate limiter of the issue does. Jobs last ``job_seconds``; no ETA, no long-poll.
    """
    app = Flask("limited")
    lock = threading.Lock()
    bucket = {"tokens": float(burst), "at": time.monotonic()}
    counts = {"200": 0, "429": 0, "201": 0}
    jobs: dict[str, float] = {}

    def take() -> tuple[bool, int, float]:
        with lock:
            now = time.monotonic()
            bucket["tokens"] = min(burst, bucket["tokens"] + (now - bucket["at"]) * rate)
            bucket["at"] = now
            ok = bucket["tokens"] >= 1
            if ok:
                bucket["tokens"] -= 1
            return ok, int(bucket["tokens"]), (burst - bucket["tokens"]) / rate

    def limited(body, code):
        ok, left, refill = take()
        if not ok:
            code, body = 429, {"error": {"code": "rate_limited", "message": "slow down"}}
        with lock:
            counts[str(code)] = counts.get(str(code), 0) + 1
        reply = jsonify(body)
        reply.status_code = code
        reply.headers["RateLimit-Policy"] = f'"default";q={int(rate)};w=1'
        reply.headers["RateLimit"] = f'"default";r={left};t={max(refill, 0):.3f}'
        if code == 429:
            reply.headers["Retry-After"] = "1"
        elif retry_after_window:
            reply.headers["Retry-After"] = "60"
            reply.headers["X-RateLimit-Limit"] = str(burst)
            reply.headers["X-RateLimit-Remaining"] = str(left)
        return reply

    @app.post("/start")
    def start():
        job_id = f"job{len(jobs)}"
        jobs[job_id] = time.time()
        return limited({"job_id": job_id, "result": "pending"}, 201)

    @app.get("/status/<job_id>")
    def status(job_id: str):
        started = jobs[job_id]
        done = time.time() >= started + job_seconds
        body: dict[str, object] = {"job_id": job_id,
                                   "result": "completed" if done else "pending"}
        if done:
            body["finished_at"] = started + job_seconds
        return limited(body, 200)

    return app, counts


def test_every_thread_of_one_client_shares_one_budget_no_429():
    """12 threads x 4 requests through one client at 20 req/s (burst 5): none refused."""
    app, counts = limited_app(rate=20.0, burst=5)
    with serve_wsgi(app) as url, VideoTranslationClient(url) as api:
        job_id = api.start_job()

        def ask(_: int) -> None:
            for _ in range(4):
                api.get_status(job_id)

        with ThreadPoolExecutor(12) as pool:
            list(pool.map(ask, range(12)))
    assert counts["429"] == 0, counts
    assert counts["200"] == 48


def test_without_pacing_the_same_threads_are_refused():
    """The control: the same load with respect_rate_limits=False gets 429s (so the test above
    can fail)."""
    app, counts = limited_app(rate=20.0, burst=5)
    with serve_wsgi(app) as url, VideoTranslationClient(
            url, respect_rate_limits=False, sleep=lambda s: None) as api:
        job_id = api.start_job()

        def ask(_: int) -> None:
            for _ in range(4):
                try:
                    api.get_status(job_id)
                except ServerError:
                    pass

        with ThreadPoolExecutor(12) as pool:
            list(pool.map(ask, range(12)))
    assert counts["429"] > 0, counts


def test_retry_after_60_with_quota_left_learns_of_a_2s_job_within_1s_of_its_end():
    """The issue's case, live: Retry-After: 60 plus rate-limit fields with quota left on every
    200. The client's own schedule wakes within 1 s of the job's finished_at (no jitter, so the
    backoff steps are exact: 1 s, 1.3 s, ...), and never sleeps 60 s."""
    app, counts = limited_app(rate=20.0, burst=20, retry_after_window=True, job_seconds=2.0)
    naps: list[tuple[float, float]] = []  # (wall time the sleep began, seconds)

    def recording_sleep(seconds: float) -> None:
        naps.append((time.time(), seconds))
        time.sleep(seconds)

    with serve_wsgi(app) as url, VideoTranslationClient(
            url, sleep=recording_sleep, policy=PollingPolicy(jitter=None)) as api:
        status = api.wait_for_completion(api.start_job(), timeout=30)
    assert status.result is JobResult.COMPLETED and status.finished_at is not None
    assert all(seconds < 2.0 for _, seconds in naps), naps
    # The sleep the job ended in was planned to end within 1 s of the end.
    spanning = [(began, s) for began, s in naps if began <= status.finished_at < began + s]
    assert spanning, (naps, status.finished_at)
    began, seconds = spanning[-1]
    assert began + seconds - status.finished_at <= 1.0, (naps, status.finished_at)
    assert counts["429"] == 0


# ------------------------------------------------------------------------ hostile fields
rate_fields = st.dictionaries(
    st.sampled_from(["RateLimit", "RateLimit-Policy", "X-RateLimit-Remaining",
                     "X-RateLimit-Reset", "RateLimit-Remaining", "RateLimit-Reset",
                     "Retry-After"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
    | st.builds('"default";r={};t={}'.format, st.integers(-5, 10**12), st.integers(-5, 10**12)),
    max_size=5)


@settings(max_examples=200, deadline=None)
@given(fields=rate_fields, code=st.sampled_from([200, 429, 503]))
def test_any_rate_limit_fields_never_break_a_request_nor_hold_forever(fields, code):
    """Whatever rate-limit fields come back (on a 200, 429 or 503): the call returns a status or
    raises the client's own error, and the next request is held at most a day (the reset cap)."""
    clock = FakeClock()
    answers = iter([response(code, pending(), fields), response(200, final())])
    api = VideoTranslationClient(BASE, session=FakeSession(lambda call: next(answers)),
                                 clock=clock, sleep=clock.sleep)
    try:
        api.get_status("j1")
    except VideoTranslationError:
        pass
    api.get_status("j1")
    assert sum(clock.sleeps) <= 86_400.0 and all(math.isfinite(s) for s in clock.sleeps)
