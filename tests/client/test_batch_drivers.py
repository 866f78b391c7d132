"""Both clients' many-jobs drivers against a scripted ``/events`` backend over real loopback HTTP.

Each scenario runs twice, once per client (sync and asyncio), with the same assertions: one
strategy core, two transports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.fake_events import Refuse, ScriptedEvents, Stream, event, not_found, status_doc
from tests.helpers import serve_wsgi
from vtwait import (
    AsyncVideoTranslationClient,
    AuthenticationError,
    BatchError,
    InvalidRequestError,
    JobNotFoundError,
    RetryPolicy,
    VideoTranslationClient,
    WaitTimeout,
)

QUICK_RETRY = RetryPolicy(max_retries=1, backoff_factor=0.01, backoff_max=0.02)


def wait_many_sync(url: str, ids: list[str], timeout: float) -> dict[str, Any]:
    with VideoTranslationClient(url, retry=QUICK_RETRY) as api:
        return api.wait_many(ids, timeout=timeout)


def wait_many_async(url: str, ids: list[str], timeout: float) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async with AsyncVideoTranslationClient(url, retry=QUICK_RETRY) as api:
            return await api.wait_many(ids, timeout=timeout)

    return asyncio.run(run())


@pytest.fixture(params=["sync", "async"])
def wait_many(request) -> Callable[[str, list[str], float], dict[str, Any]]:
    """wait_many of one client or the other, called the same way."""
    return wait_many_sync if request.param == "sync" else wait_many_async


def results(found: dict[str, Any]) -> dict[str, str]:
    return {job_id: status.result.value for job_id, status in found.items()}


def test_a_dropped_stream_resumes_with_last_event_id(wait_many):
    """The stream ends mid-batch: reopened once, with Last-Event-ID and only the pending ids."""
    app = ScriptedEvents([
        Stream([event(status_doc("a", "pending")), event(status_doc("b", "pending")),
                event(status_doc("a"), 1)]),
        Stream([event(status_doc("b", "error"), 2)]),
    ], statuses={})
    with serve_wsgi(app) as url:
        found = wait_many(url, ["a", "b"], 10)
    assert results(found) == {"a": "completed", "b": "error"}
    first, second = app.streams()
    assert (first.job_ids, first.last_event_id) == (["a", "b"], None)
    assert (second.job_ids, second.last_event_id) == (["b"], "1")
    assert app.status_reads() == []


def test_410_reads_each_pending_job_once_then_a_fresh_stream(wait_many):
    """Resume refused (410): one status read per pending job, then a stream with no id."""
    app = ScriptedEvents([
        Stream([event(status_doc("a"), 5)]),
        Refuse(410, {"error": {"code": "event_id_expired", "message": "too old"}}),
        Stream([event(status_doc("c"), 30)]),
    ], statuses={"b": status_doc("b"), "c": status_doc("c", "pending")})
    with serve_wsgi(app) as url:
        found = wait_many(url, ["a", "b", "c"], 10)
    assert results(found) == {"a": "completed", "b": "completed", "c": "completed"}
    assert sorted(s.path for s in app.status_reads()) == ["/status/b", "/status/c"]
    streams = app.streams()
    assert [s.last_event_id for s in streams] == [None, "5", None]
    assert streams[2].job_ids == ["c"]


@pytest.mark.parametrize("refusal", [Refuse(404), Refuse(405), Refuse(406),
                                     Refuse(200, {"jobs": []})])
def test_a_server_without_events_costs_one_request_then_per_job_waits(wait_many, refusal):
    """404/405/406 or a JSON 200 on /events: one request spent, then status reads per job."""
    app = ScriptedEvents([refusal], statuses={"a": status_doc("a"), "b": status_doc("b", "error")})
    with serve_wsgi(app) as url:
        found = wait_many(url, ["a", "b"], 10)
    assert results(found) == {"a": "completed", "b": "error"}
    assert len(app.streams()) == 1 and len(app.status_reads()) == 2


def test_an_unknown_job_fails_alone(wait_many):
    """event: not_found fails that job only: BatchError after the others ended, carrying them."""
    app = ScriptedEvents([Stream([not_found("ghost"), event(status_doc("a"), 1)])], statuses={})
    with serve_wsgi(app) as url, pytest.raises(BatchError) as caught:
        wait_many(url, ["a", "ghost"], 10)
    assert isinstance(caught.value.failed["ghost"], JobNotFoundError)
    assert results(caught.value.finished) == {"a": "completed"}


def test_unknown_jobs_fail_alone_when_polling_too(wait_many):
    """Without /events, a 404 on one job's status fails that job only."""
    app = ScriptedEvents([Refuse(404)], statuses={"a": status_doc("a")})
    with serve_wsgi(app) as url, pytest.raises(BatchError) as caught:
        wait_many(url, ["ghost", "a"], 10)
    assert list(caught.value.failed) == ["ghost"]
    assert results(caught.value.finished) == {"a": "completed"}


def test_a_timeout_names_the_pending_jobs_and_carries_the_finished(wait_many):
    """A stream that goes quiet: WaitTimeout at the deadline, naming b, carrying a."""
    app = ScriptedEvents([Stream([event(status_doc("a"), 1), 3.0])], statuses={})
    with serve_wsgi(app) as url, pytest.raises(WaitTimeout) as caught:
        wait_many(url, ["a", "b"], 0.5)
    assert caught.value.pending == ("b",)
    assert results(caught.value.finished) == {"a": "completed"}


def test_duplicate_ids_are_waited_for_once(wait_many):
    """Duplicates: each id listed once on the stream and once in the result."""
    app = ScriptedEvents([Stream([event(status_doc("a"), 1), event(status_doc("b"), 2)])],
                         statuses={})
    with serve_wsgi(app) as url:
        found = wait_many(url, ["a", "b", "a", "b", "a"], 10)
    assert list(found) == ["a", "b"]
    assert app.streams()[0].job_ids == ["a", "b"]


@pytest.mark.parametrize(("refusal", "kind"), [(Refuse(401), AuthenticationError),
                                               (Refuse(400), InvalidRequestError)])
def test_a_refused_status_read_after_410_fails_the_whole_wait(wait_many, refusal, kind):
    """After a 410, a status read refused as a whole (401, 400) is raised by both clients, as
    the README says of refused credentials; it is not one job's failure (the sync client used
    to fail only that job, or to log a 400 and go on)."""
    app = ScriptedEvents([
        Stream([event(status_doc("a"), 5)]),
        Refuse(410, {"error": {"code": "event_id_expired", "message": "too old"}}),
        Stream([event(status_doc("b"), 30)]),
    ], statuses={"b": refusal})
    with serve_wsgi(app) as url, pytest.raises(kind):
        wait_many(url, ["a", "b"], 10)
    assert [s.path for s in app.status_reads()] == ["/status/b"]


def test_a_status_read_after_410_that_finds_no_job_fails_that_job_alone(wait_many):
    """After a 410, a 404 on one job's status read fails that job only; the others go on."""
    app = ScriptedEvents([
        Stream([event(status_doc("a"), 5)]),
        Refuse(410, {"error": {"code": "event_id_expired", "message": "too old"}}),
        Stream([event(status_doc("c"), 30)]),
    ], statuses={"c": status_doc("c", "pending")})
    with serve_wsgi(app) as url, pytest.raises(BatchError) as caught:
        wait_many(url, ["a", "ghost", "c"], 10)
    assert list(caught.value.failed) == ["ghost"]
    assert results(caught.value.finished) == {"a": "completed", "c": "completed"}


def test_refused_credentials_fail_the_whole_wait(wait_many):
    """401 on the stream raises AuthenticationError (no per-job fallback)."""
    app = ScriptedEvents([Refuse(401)], statuses={})
    with serve_wsgi(app) as url, pytest.raises(AuthenticationError):
        wait_many(url, ["a"], 10)


def test_as_completed_yields_in_the_order_jobs_end():
    """as_completed yields each final status as its event arrives (sync and async alike)."""
    chunks = [event(status_doc("c"), 1), event(status_doc("a", "error"), 2),
              event(status_doc("b"), 3)]

    async def run_async(url: str) -> list[str]:
        async with AsyncVideoTranslationClient(url) as api:
            return [str(s.job_id) async for s in api.as_completed(["a", "b", "c"], timeout=10)]

    for kind in ("sync", "async"):
        app = ScriptedEvents([Stream(list(chunks))], statuses={})
        with serve_wsgi(app) as url:
            if kind == "sync":
                with VideoTranslationClient(url) as api:
                    order = [s.job_id for s in api.as_completed(["a", "b", "c"], timeout=10)]
            else:
                order = asyncio.run(run_async(url))
        assert order == ["c", "a", "b"], kind
