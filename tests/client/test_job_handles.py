"""Job handles, one-call runs, cancel on timeout, and servers without the new features, over
real HTTP on 127.0.0.1 (both clients; the server's features of issue 16 are in
tests/e2e/test_job_lifecycle_live.py)."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator

import pytest
import requests
from flask import Flask, jsonify

from tests.helpers import fast_settings, serve_wsgi
from vtwait import AsyncVideoTranslationClient, JobResult, VideoTranslationClient, WaitTimeout
from vtwait.client.job import AsyncJob, Job
from vtwait.core.errors import UnsupportedFeatureError


def counting_session() -> tuple[requests.Session, list[str]]:
    session = requests.Session()
    seen: list[str] = []
    session.hooks["response"].append(
        lambda r, *a, **k: seen.append(f"{r.request.method} {r.request.path_url}"))
    return session, seen


# ------------------------------------------------------------------------------- handles
def test_a_job_handle_waits_cancels_and_calls_back(make_server):
    """submit() gives a handle: done() asks nothing, result() waits, a callback added after the
    end is called at once, and cancel() of an ended job returns its final status."""
    live = make_server(fast_settings(min_delay=0.2, max_delay=0.2))
    session, seen = counting_session()
    with VideoTranslationClient(live.url, session=session) as api:
        job = api.submit()
        assert isinstance(job, Job) and not job.done()
        before = len(seen)
        assert not job.done() and len(seen) == before  # done() makes no request
        status = job.result(timeout=10)
        assert status.result is JobResult.COMPLETED and job.done()
        called: list[str] = []
        job.add_done_callback(lambda s: called.append(s.result.value))
        assert called == ["completed"]
        assert job.result() is status  # known: no request
        assert job.cancel().result is JobResult.COMPLETED


def test_callbacks_on_a_thousand_jobs_use_a_bounded_number_of_threads(make_server):
    """add_done_callback on 1,000 sync jobs: each callback is called once, with the final
    status, and the client's threads stay a handful (one waiter, its stream readers)."""
    live = make_server(fast_settings(min_delay=0.5, max_delay=0.5))
    # Started in the server's store (1,000 starts over HTTP would take this test's time).
    ids = [live.store.start()[0]["job_id"] for _ in range(1000)]
    with VideoTranslationClient(live.url) as api:
        baseline = threading.active_count()
        peak = [baseline]
        called: dict[str, int] = {}
        done = threading.Event()
        lock = threading.Lock()

        def on_done(status):
            with lock:
                called[status.job_id] = called.get(status.job_id, 0) + 1
                peak[0] = max(peak[0], threading.active_count())
                if len(called) == len(ids):
                    done.set()

        for job_id in ids:
            api.job(job_id).add_done_callback(on_done)
            peak[0] = max(peak[0], threading.active_count())
        assert done.wait(30), f"{len(called)} of {len(ids)} callbacks called"
    assert set(called) == set(ids) and set(called.values()) == {1}
    assert peak[0] - baseline <= 6, (baseline, peak[0])


def test_a_callback_added_during_a_round_is_waited_for_at_once(make_server):
    """A job whose callback is added while the waiter waits for another (a round of up to
    300 s) is taken in at once: its callback comes when it ends, not at the round's end."""
    live = make_server(fast_settings(min_delay=0.2, max_delay=0.2))
    with VideoTranslationClient(live.url) as api:
        slow = api.submit(delay=60)
        slow.add_done_callback(lambda status: None)
        ended = threading.Event()
        api.submit().add_done_callback(lambda status: ended.set())
        assert ended.wait(20)
        assert not slow.done()
        slow.cancel()
        api.job(api.start_job(delay=60)).add_done_callback(lambda status: None)
        thread = api._waiter._thread
        assert thread is not None and thread.is_alive()
    thread.join(10)  # close() ends the waiter's thread, though a job with a callback still runs
    assert not thread.is_alive()


# ---------------------------------------------------------------------- run and timeouts
def test_the_plain_simulator_runs_and_names_what_it_lacks(make_server, tmp_path):
    """PLAIN=1 (no held start, no outputs, no GET /jobs): run() still returns the final status
    (the start, then status requests); download() and jobs() raise UnsupportedFeatureError."""
    live = make_server(fast_settings(min_delay=0.1, max_delay=0.1, plain=True))
    session, seen = counting_session()
    with VideoTranslationClient(live.url, session=session, sleep=lambda s: None) as api:
        status = api.run(timeout=30)
        assert status.result is JobResult.COMPLETED
        assert seen[0].startswith("POST /start") and len(seen) >= 2
        api.output_wait = 0.2
        with pytest.raises(UnsupportedFeatureError, match="outputs"):
            api.download(status.job_id, tmp_path / "out.bin")
        with pytest.raises(UnsupportedFeatureError, match="list jobs"):
            next(iter(api.jobs()))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("client_wide", [False, True])
def test_cancel_on_timeout_cancels_the_job_and_says_so(make_server, client_wide):
    """A wait that gives up cancels the server's job (per call or client-wide) and the
    WaitTimeout says the cancel took; without it the job runs on and cancelled is None."""
    live = make_server(fast_settings(min_delay=30, max_delay=30))
    with VideoTranslationClient(live.url, cancel_on_timeout=client_wide) as api:
        job = api.submit()
        with pytest.raises(WaitTimeout) as caught:
            job.result(timeout=0.2, cancel_on_timeout=None if client_wide else True)
        assert caught.value.cancelled is True
        assert caught.value.cancel_status.phase == "canceled"
        assert job.done() and job.last_status.phase == "canceled"
        assert api.get_status(job.id).phase == "canceled"
        other = api.submit()
        with pytest.raises(WaitTimeout) as caught:
            api.wait_for_completion(other.id, timeout=0.2, cancel_on_timeout=False)
        assert caught.value.cancelled is None
        assert not api.get_status(other.id).done


def test_cancel_on_timeout_of_a_batch_cancels_the_pending_jobs(make_server):
    """as_completed with cancel_on_timeout cancels every job still pending when it gives up."""
    live = make_server(fast_settings(min_delay=30, max_delay=30))
    with VideoTranslationClient(live.url) as api:
        ids = api.start_jobs(3)
        with pytest.raises(WaitTimeout) as caught:
            api.wait_many(ids, timeout=0.3, cancel_on_timeout=True)
        assert caught.value.cancelled is True
        assert {api.get_status(i).phase for i in ids} == {"canceled"}


# ----------------------------------------------------------- a server without the features
def bare_app() -> Flask:
    """A backend with only start and status: no /jobs, no outputs, no Prefer."""
    app = Flask("bare")
    ids = itertools.count(1)

    @app.post("/start")
    def start():
        return jsonify(job_id=f"b{next(ids)}", result="pending"), 201

    @app.get("/status/<job_id>")
    def status(job_id: str):
        return jsonify(job_id=job_id, result="completed")

    return app


@pytest.fixture(scope="module")
def bare_server() -> Iterator[str]:
    with serve_wsgi(bare_app()) as url:
        yield url


def test_a_server_without_the_features_fails_with_typed_errors(bare_server, tmp_path):
    """Against a backend without GET /jobs and outputs: run() works (one more request), jobs()
    and download() raise UnsupportedFeatureError naming what is missing, nothing hangs."""
    session, seen = counting_session()
    with VideoTranslationClient(bare_server, session=session, sleep=lambda s: None) as api:
        api.output_wait = 0.2
        assert api.run(timeout=10).result is JobResult.COMPLETED
        assert [line.split("?")[0] for line in seen] == ["POST /start", "GET /status/b1"]
        with pytest.raises(UnsupportedFeatureError) as listing:
            next(iter(api.jobs()))
        assert listing.value.feature == "GET /jobs"
        with pytest.raises(UnsupportedFeatureError) as output:
            api.download(api.submit(), tmp_path / "out.bin")
        assert output.value.feature == "outputs"
    assert list(tmp_path.iterdir()) == []  # no file, no partial one


def test_the_async_client_against_a_server_without_the_features(bare_server, tmp_path):
    """The asyncio twin: run() works, jobs() and download() raise UnsupportedFeatureError."""

    async def main() -> None:
        async with AsyncVideoTranslationClient(bare_server,
                                               sleep=lambda s: asyncio.sleep(0)) as api:
            api.output_wait = 0.2
            assert (await api.run(timeout=10)).result is JobResult.COMPLETED
            with pytest.raises(UnsupportedFeatureError):
                async for _ in api.jobs():
                    pass
            job = await api.submit()
            assert isinstance(job, AsyncJob)
            assert (await job).result is JobResult.COMPLETED
            with pytest.raises(UnsupportedFeatureError):
                await job.download(tmp_path / "out.bin")

    asyncio.run(main())


def test_async_handles_wait_cancel_and_call_back(make_server):
    """AsyncJob: await job, add_done_callback from the one watcher task, cancel on timeout."""
    live = make_server(fast_settings(min_delay=0.2, max_delay=0.2))

    async def main() -> None:
        async with AsyncVideoTranslationClient(live.url) as api:
            slow = await api.submit(delay=60)
            slow.add_done_callback(lambda status: None)  # a round of up to 300 s begins
            jobs = [await api.submit() for _ in range(5)]
            ended: list[str] = []
            everything = asyncio.Event()

            def on_done(status):
                ended.append(status.job_id)
                if len(ended) == len(jobs):
                    everything.set()

            for job in jobs:
                job.add_done_callback(on_done)
            await asyncio.wait_for(everything.wait(), 15)
            assert sorted(ended) == sorted(j.id for j in jobs)
            assert all(job.done() for job in jobs)
            assert (await jobs[0]).result is JobResult.COMPLETED
            assert not slow.done()
            await slow.cancel()

            quick = await api.run(delay=0.05, timeout=10)
            assert quick.result is JobResult.COMPLETED
            long = await api.submit(delay=30)
            with pytest.raises(WaitTimeout) as caught:
                await long.result(timeout=0.2, cancel_on_timeout=True)
            assert caught.value.cancelled is True

    asyncio.run(main())
