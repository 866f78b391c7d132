"""``start_jobs`` / ``start_many`` on both clients (issue 19): batches when the server offers
``POST /start/batch``, one request per job when it does not, a failed item reported alone.

A live server per test (both stores); the requests each start made are read from the server's
own ``/metrics`` (``http_requests_total`` by route).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest
import requests

from tests.helpers import LiveServer, fast_settings
from vtwait import (
    AsyncVideoTranslationClient,
    InvalidRequestError,
    StartBatchError,
    VideoTranslationClient,
)


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def live(make_server: Callable[..., LiveServer]) -> LiveServer:
    """A server of 60 s jobs whose batch cap (3) is below the clients' chunk size."""
    return make_server(fast_settings(min_delay=60, max_delay=60, max_batch_start=3))


def requests_to(live: LiveServer, route: str) -> int:
    """POST answers of ``route`` so far, by the server's own count."""
    text = requests.get(live.url + "/metrics", timeout=5).text
    pattern = rf'http_requests_total{{method="POST",route="{re.escape(route)}",[^}}]*}} (\S+)'
    return int(sum(float(x) for x in re.findall(pattern, text)))


def start_many(kind: str, live: LiveServer, jobs: list[dict], *,
               batch_url: str | None = None) -> tuple[list[str], int]:
    """Runs ``start_many`` on the ``kind`` client; (ids, the client's batch size after)."""
    if kind == "sync":
        with VideoTranslationClient(live.url) as api:
            if batch_url is not None:
                api.start_batch_url = batch_url
            return api.start_many(jobs), api.batch_start_size

    async def run() -> tuple[list[str], int]:
        async with AsyncVideoTranslationClient(live.url) as api:
            if batch_url is not None:
                api.start_batch_url = batch_url
            return await api.start_many(jobs), api.batch_start_size

    return asyncio.run(run())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_start_many_sends_batches_of_the_servers_cap(live, kind):
    jobs = [{"delay": 30 + i} for i in range(7)]
    ids, size = start_many(kind, live, jobs)
    assert len(set(ids)) == 7 and size == 3
    # one refused batch of 7 (the answer names the cap), then 3 + 3 + 1; no single start
    assert requests_to(live, "/start/batch") == 4
    assert requests_to(live, "/start") == 0
    for job_id, job in zip(ids, jobs, strict=True):  # in order: each id has its own delay
        status = requests.get(f"{live.url}/status/{job_id}", timeout=5).json()
        assert round(status["eta_seconds"]) == job["delay"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_start_jobs_goes_one_request_per_job_without_the_batch_route(live, kind):
    if kind == "sync":
        with VideoTranslationClient(live.url) as api:
            api.start_batch_url = "/no/batch/here"  # the server answers 404: no batch start
            ids = api.start_jobs(4, delay=30)
            more = api.start_jobs(2, delay=30)  # remembered: not asked again
    else:
        async def run() -> tuple[list[str], list[str]]:
            async with AsyncVideoTranslationClient(live.url) as api:
                api.start_batch_url = "/no/batch/here"
                return await api.start_jobs(4, delay=30), await api.start_jobs(2, delay=30)
        ids, more = asyncio.run(run())
    assert len(set(ids + more)) == 6
    assert requests_to(live, "/start") == 6
    assert requests_to(live, "/start/batch") == 0


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_job_the_server_refuses_fails_alone(live, kind):
    with pytest.raises(StartBatchError) as caught:
        start_many(kind, live, [{"delay": 30}, {"delay": 10**9}, {"delay": 31}])
    error = caught.value
    assert error.job_ids[0] is not None and error.job_ids[2] is not None
    assert error.job_ids[1] is None
    assert list(error.failed) == [1]
    assert isinstance(error.failed[1], InvalidRequestError)
    assert "delay must be in" in str(error.failed[1])
    for job_id in (error.job_ids[0], error.job_ids[2]):  # the others did start
        assert requests.get(f"{live.url}/status/{job_id}", timeout=5).status_code == 200


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_key_start_job_does_not_take_is_a_type_error(live, kind):
    with pytest.raises(TypeError, match="colour"):
        start_many(kind, live, [{"colour": "red"}])
    assert requests_to(live, "/start/batch") == 0
