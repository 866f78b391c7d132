"""Both clients wait for 500+ jobs against ``python server.py``: with its event stream, without it.

Each job is started with a fixed outcome, and every final result is checked against it. Servers
run as subprocesses on 127.0.0.1 with short jobs (0.2-1.0 s).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from vtwait import (
    AsyncVideoTranslationClient,
    BatchError,
    JobNotFoundError,
    JobResult,
    JobStatus,
    VideoTranslationClient,
)
from vtwait.client import cli
from vtwait.testing import ServerProcess

JOBS = 520  # half completed, half error, interleaved
SERVER_ENV = {"MIN_DELAY": "0.2", "MAX_DELAY": "1.0", "ERROR_PROBABILITY": "0.5",
              "MAX_WAITERS": "2000"}
VARIANTS = {"events": {}, "events-off": {"EVENTS": "0"}, "plain": {"PLAIN": "1"}}


@pytest.fixture(scope="module", params=list(VARIANTS))
def live_server(request) -> Iterator[ServerProcess]:
    """server.py with its event stream on, off (EVENTS=0), or plain (PLAIN=1: no hints either)."""
    server = ServerProcess.start(env={**SERVER_ENV, **VARIANTS[request.param]})
    server.variant = request.param  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.kill()  # a graceful stop is tested elsewhere; here it would only cost time


def outcomes(count: int) -> list[str]:
    return ["completed" if n % 2 == 0 else "error" for n in range(count)]


def check_requests(variant: str, paths: list[str], jobs: int) -> None:
    """With the stream: one connection for up to 1,000 jobs, no status read; without: one
    refused GET /events (404), then status requests per job."""
    streams = sum(path.startswith("/events") for path in paths)
    reads = sum(path.startswith("/status") for path in paths)
    assert streams == 1
    assert reads == 0 if variant == "events" else reads >= jobs


def test_sync_client_waits_for_520_jobs(live_server):
    """The sync client: wait_many returns every job, each with its fixed outcome."""
    paths: list[str] = []
    with VideoTranslationClient(live_server.url) as api:
        fates = {api.start_job(outcome=fate): fate for fate in outcomes(JOBS)}
        api.session.hooks["response"].append(lambda r, *a, **k: paths.append(r.request.path_url))
        found = api.wait_many(list(fates), timeout=60)
    check_requests(live_server.variant, paths, JOBS)
    assert list(found) == list(fates)
    assert {job_id: status.result.value for job_id, status in found.items()} == fates


def test_async_client_waits_for_520_jobs(live_server):
    """The asyncio client: as_completed yields every job once, each with its fixed outcome."""
    paths: list[str] = []
    counting = [False]

    async def on_start(session: object, context: object, params: Any) -> None:
        if counting[0]:  # the wait only, not the starts
            paths.append(params.url.path)

    async def run() -> tuple[dict[str, str], list[JobStatus]]:
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(on_start)
        async with aiohttp.ClientSession(trace_configs=[trace]) as session, \
                AsyncVideoTranslationClient(live_server.url, session=session) as api:
            done = await api.start_jobs(JOBS // 2, outcome="completed")
            failed = await api.start_jobs(JOBS // 2, outcome="error")
            fates = {**dict.fromkeys(done, "completed"), **dict.fromkeys(failed, "error")}
            counting[0] = True
            seen = [status async for status in api.as_completed(list(fates), timeout=60)]
        return fates, seen

    fates, seen = asyncio.run(run())
    check_requests(live_server.variant, paths, JOBS)
    assert sorted(s.job_id for s in seen) == sorted(fates)
    assert all(s.result.value == fates[s.job_id] and s.done for s in seen)


@pytest.mark.parametrize("live_server", ["events", "events-off"], indirect=True)
def test_unknown_jobs_fail_alone_live(live_server):
    """Unknown ids among real ones: BatchError naming them, every real job finished."""
    with VideoTranslationClient(live_server.url) as api:
        real = api.start_jobs(5, outcome="completed")
        with pytest.raises(BatchError) as caught:
            api.wait_many(["nope-1", *real, "nope-2"], timeout=30)
    assert set(caught.value.failed) == {"nope-1", "nope-2"}
    assert all(isinstance(e, JobNotFoundError) for e in caught.value.failed.values())
    assert {s.result for s in caught.value.finished.values()} == {JobResult.COMPLETED}
    assert list(caught.value.finished) == real


@pytest.mark.parametrize("live_server", ["events"], indirect=True)
def test_cli_waits_for_many_with_one_display(live_server, capsys):
    """`client.py --count 30` exits 0 when all complete; `--job-id` x2 with an error exits 1."""
    assert cli.main(["--base-url", live_server.url, "--count", "30", "--outcome", "completed",
                        "--timeout", "60"]) == 0  # stderr is not a terminal here: plain lines
    err = capsys.readouterr().err
    assert "30 jobs: 30 completed, 0 failed, 0 pending" in err and err.count(": completed") == 30
    with VideoTranslationClient(live_server.url) as api:
        ids = [api.start_job(outcome="completed"), api.start_job(outcome="error")]
    assert cli.main(["--base-url", live_server.url, "--job-id", ids[0], "--job-id", ids[1],
                        "--timeout", "60"]) == 1
    assert "2 jobs: 1 completed, 1 failed, 0 pending" in capsys.readouterr().err
