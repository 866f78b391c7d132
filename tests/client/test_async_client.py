"""The asyncio client over real HTTP on 127.0.0.1, mirroring the sync client's live tests.

Same servers, same assertions as ``test_client_live.py``: one strategy core, two transports.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import aiohttp
import pytest

from tests.client.test_client_live import busy_once_app, down_app, plain_app, unused_loopback_port
from tests.helpers import fast_settings, serve_wsgi
from vtwait import (
    AsyncVideoTranslationClient,
    AuthenticationError,
    JobNotFoundError,
    JobResult,
    PollingPolicy,
    RetryPolicy,
    ServerError,
    ServerUnreachableError,
    WaitTimeout,
)

pytestmark = pytest.mark.asyncio
QUICK_RETRY = RetryPolicy(max_retries=2, backoff_factor=0.01, backoff_max=0.05)


def counting_session() -> tuple[aiohttp.ClientSession, list[str]]:
    """An aiohttp session that records the method and path of every request it completes."""
    seen: list[str] = []

    async def on_end(session: object, context: SimpleNamespace,
                     params: aiohttp.TraceRequestEndParams) -> None:
        seen.append(f"{params.method} {params.url.path}")

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    return aiohttp.ClientSession(trace_configs=[trace]), seen


async def test_long_poll_knows_the_end_within_milliseconds_with_one_request(make_server):
    """Against server.py: one status request, answered right as the job ends."""
    live = make_server(fast_settings(min_delay=0.4, max_delay=0.4))
    session, seen = counting_session()
    async with session, AsyncVideoTranslationClient(live.url, session=session) as api:
        status = await api.wait_for_completion(await api.start_job(), timeout=10)
    assert status.result is JobResult.COMPLETED
    assert sum(line.startswith("GET ") for line in seen) == 1
    assert 0 <= time.time() - status.finished_at < 0.25


async def test_hints_alone_find_the_end_in_a_few_requests(make_server):
    """Long-poll off, noisy ETA on: the same planner lands the last ask just after the end."""
    live = make_server(fast_settings(min_delay=1.5, max_delay=1.5, eta_noise=0.2, seed=5))
    session, seen = counting_session()
    async with session, AsyncVideoTranslationClient(
            live.url, session=session, policy=PollingPolicy(long_poll=False)) as api:
        status = await api.wait_for_completion(await api.start_job(), timeout=10)
    assert status.done and sum(line.startswith("GET ") for line in seen) <= 4


async def test_forced_error_and_the_single_job_route(make_server):
    """An error job returns with the server's message; job_id=None waits on GET /status."""
    live = make_server()
    async with AsyncVideoTranslationClient(live.url) as api:
        failed = await api.wait_for_completion(await api.start_job(delay=0.05, outcome="error"),
                                               timeout=5)
        default = await api.wait_for_completion(timeout=5)
    assert failed.result is JobResult.ERROR and failed.error
    assert default.done and default.job_id == live.store.default_job_id


async def test_credentials_wrong_missing_and_right(make_server):
    """401 is an AuthenticationError naming what to check; credentials in the URL never show."""
    live = make_server(fast_settings(api_username="admin", api_password="right-pw"))
    async with AsyncVideoTranslationClient(live.url, "admin", "wrong-pw") as api:
        with pytest.raises(AuthenticationError, match="API_PASSWORD") as caught:
            await api.start_job()
    assert caught.value.status_code == 401 and "wrong-pw" not in str(caught.value)
    url = live.url.replace("http://", "http://admin:right-pw@")
    async with AsyncVideoTranslationClient(url) as api:
        assert "right-pw" not in repr(api)
        assert (await api.wait_for_completion(await api.start_job(), timeout=5)).done


async def test_unknown_job_raises_job_not_found(make_server):
    """A job id the server never had: JobNotFoundError."""
    live = make_server()
    async with AsyncVideoTranslationClient(live.url) as api:
        with pytest.raises(JobNotFoundError, match="deadbeef"):
            await api.wait_for_completion("deadbeef", timeout=5)


async def test_plain_flaky_server_reaches_the_right_answer_within_budget():
    """No hints, no long-poll, nested 'status', %, 503s: right answer, bounded requests."""
    app = plain_app()
    with serve_wsgi(app) as url:
        async with AsyncVideoTranslationClient(url, start_url="/jobs", retry=QUICK_RETRY,
                                               status_url="/jobs/{job_id}/status") as api:
            done = await api.wait_for_completion(await api.start_job(), timeout=10)
            failed = await api.wait_for_completion(await api.start_job(outcome="error"),
                                                   timeout=10)
    assert done.result is JobResult.COMPLETED and done.progress == 1.0
    assert failed.result is JobResult.ERROR
    assert app.config["status_requests"] <= 8


async def test_a_retried_start_reuses_its_idempotency_key():
    """A 503 on POST /start is retried with the same Idempotency-Key: no second job."""
    app = plain_app(fail_starts=1)
    with serve_wsgi(app) as url:
        async with AsyncVideoTranslationClient(url, start_url="/jobs", retry=QUICK_RETRY) as api:
            assert await api.start_job() == "job-1"
    first, second = app.config["start_keys"]
    assert first == second and len(first) == 32


async def test_retry_after_on_503_is_honoured_through_the_injected_sleep():
    """A 503 with Retry-After: 1 is retried after exactly that, via the client's sleep."""
    app = busy_once_app()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    with serve_wsgi(app) as url:
        async with AsyncVideoTranslationClient(url, sleep=sleep) as api:
            assert (await api.get_status("x")).done
    assert slept == [1.0]


async def test_a_server_that_keeps_failing_raises_server_error_after_the_retries():
    """503 every time: 1 + max_retries attempts, then ServerError with the server's words."""
    app, hits = down_app()
    with serve_wsgi(app) as url:
        async with AsyncVideoTranslationClient(url, retry=QUICK_RETRY) as api:
            with pytest.raises(ServerError, match="back soon") as caught:
                await api.get_status("x")
    assert caught.value.status_code == 503
    assert next(hits) - 1 == 1 + QUICK_RETRY.max_retries


async def test_unreachable_server_raises_then_times_out_with_the_cause():
    """Nobody listening: ServerUnreachableError; a wait keeps trying to its deadline."""
    url = f"http://127.0.0.1:{unused_loopback_port()}"
    async with AsyncVideoTranslationClient(url, retry=QUICK_RETRY,
                                           policy=PollingPolicy.fixed(0.2)) as api:
        with pytest.raises(ServerUnreachableError, match="is it running") as unreachable:
            await api.get_status("x")
        with pytest.raises(WaitTimeout) as caught:
            await api.wait_for_completion("x", timeout=1.0)
    assert isinstance(unreachable.value, ConnectionError)
    assert isinstance(caught.value.__cause__, ServerUnreachableError)
    assert caught.value.attempts >= 3 and caught.value.last_status is None


async def test_bad_arguments_are_value_errors():
    """The constructor checks its arguments like the sync client's."""
    for kwargs in ({"base_url": "ftp://x"}, {"status_url": "/s"}, {"wait_timeout": 0},
                   {"connection_limit": -1}):
        with pytest.raises(ValueError):
            AsyncVideoTranslationClient(**kwargs)
