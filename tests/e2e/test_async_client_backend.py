"""The asyncio client against the real-backend behaviours, mirroring the sync client's tests:
cancel, one rate-limit budget for many tasks, a rate limiter's Retry-After that is no poll hint,
and None meaning the default. Real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time

import pytest

from tests.client.test_client_rate_limits import limited_app
from tests.e2e.test_client_backend_live import answered
from tests.helpers import fast_settings, serve_wsgi
from vtwait import AsyncVideoTranslationClient, JobNotFoundError, JobResult, PollingPolicy

pytestmark = pytest.mark.asyncio


async def test_cancel_a_running_job_then_a_finished_one_then_an_unknown_one(make_server):
    """Running: a final error with phase canceled; finished: its own final status (409);
    unknown: JobNotFoundError."""
    live = make_server()
    async with AsyncVideoTranslationClient(live.url) as api:
        running = await api.start_job(delay=60)
        cancelled = await api.cancel(running)
        done = await api.wait_for_completion(await api.start_job(delay=0.05,
                                                                 outcome="completed"),
                                             timeout=10)
        again = await api.cancel(done.job_id)
        with pytest.raises(JobNotFoundError):
            await api.cancel("0" * 32)
    assert cancelled.done and cancelled.result is JobResult.ERROR
    assert cancelled.phase == "canceled"
    assert again.result is JobResult.COMPLETED and again.finished_at == done.finished_at


async def test_a_cancel_wakes_a_held_wait_in_another_task(make_server):
    """A wait_for_completion task holding a long-poll returns the cancelled status."""
    live = make_server()
    async with AsyncVideoTranslationClient(live.url) as api:
        job_id = await api.start_job(delay=60)
        waiter = asyncio.create_task(api.wait_for_completion(job_id, timeout=30))
        for _ in range(1000):  # until the long-poll is held (bounded: 10 s)
            if live.store.waiters >= 1:
                break
            await asyncio.sleep(0.01)
        await api.cancel(job_id)
        final = await asyncio.wait_for(waiter, 30)
    assert final.phase == "canceled" and final.done


async def test_many_tasks_through_one_client_stay_inside_the_rate_limit(make_server, caplog):
    """RATE_LIMIT=10: 16 tasks start and wait for a job each through one client; none refused."""
    caplog.set_level(logging.INFO, logger="vtwait.server")
    live = make_server(fast_settings(rate_limit=10, min_delay=0.3, max_delay=0.3))
    async with AsyncVideoTranslationClient(live.url) as api:
        async def one() -> JobResult:
            return (await api.wait_for_completion(await api.start_job(), timeout=60)).result

        results = await asyncio.gather(*(one() for _ in range(16)))
    assert len(results) == 16
    assert answered(caplog.records, "429") == 0 and answered(caplog.records, "201") == 16


async def test_retry_after_60_with_quota_left_is_no_poll_hint():
    """Retry-After: 60 plus rate-limit fields with quota left on every 200, a 2 s job: the
    client's own schedule wakes within 1 s of the job's end, and never sleeps 60 s."""
    app, counts = limited_app(rate=20.0, burst=20, retry_after_window=True, job_seconds=2.0)
    naps: list[tuple[float, float]] = []

    async def recording_sleep(seconds: float) -> None:
        naps.append((time.time(), seconds))
        await asyncio.sleep(seconds)

    with serve_wsgi(app) as url:
        async with AsyncVideoTranslationClient(url, sleep=recording_sleep,
                                               policy=PollingPolicy(jitter=None)) as api:
            status = await api.wait_for_completion(await api.start_job(), timeout=30)
    assert status.done and status.finished_at is not None
    assert all(seconds < 2.0 for _, seconds in naps), naps
    spanning = [(began, s) for began, s in naps if began <= status.finished_at < began + s]
    assert spanning and spanning[-1][0] + spanning[-1][1] - status.finished_at <= 1.0, naps
    assert counts["429"] == 0


@pytest.mark.parametrize("name", [
    name for name, p in inspect.signature(AsyncVideoTranslationClient.__init__).parameters.items()
    if p.default is not inspect.Parameter.empty])
async def test_none_for_any_constructor_argument_means_its_default(name, monkeypatch):
    """AsyncVideoTranslationClient(**{name: None}) is built as if the argument were left out."""
    monkeypatch.delenv("API_USERNAME", raising=False)
    monkeypatch.delenv("API_PASSWORD", raising=False)
    default, given = AsyncVideoTranslationClient(), AsyncVideoTranslationClient(**{name: None})
    state = [(c.base_url, c.policy, c.retry, c.wait_timeout, c.request_timeout, c.status_url,
              c.single_status_url, c.start_url, c.cancel_url, c._clock, c._sleep,
              c._pacer is not None, c._connection_limit, len(c._trace_configs))
             for c in (default, given)]
    assert state[0] == state[1]
