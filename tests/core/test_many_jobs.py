"""The sans-IO many-jobs core: stream chunks, resume, 410, fallback, unknown jobs, timeouts, duplicates.

No network and no clock: events are fed as the parser would give them.
"""

from __future__ import annotations

import json
import random

import pytest

from vtwait import BatchError, JobNotFoundError, JobResult, JobStatus, WaitTimeout
from vtwait.core.batch import (
    MAX_STREAM_FAILURES,
    ManyJobs,
    Mode,
    StreamAction,
    unique_job_ids,
)
from vtwait.core.sse import SSEEvent, SSEParser


def status_event(job_id: str, result: str = "completed", event_id: int | None = None,
                 **extra) -> SSEEvent:
    doc = {"job_id": job_id, "result": result, **extra}
    return SSEEvent("status", json.dumps(doc), str(event_id or ""), event_id is not None)


def not_found_event(job_id: str) -> SSEEvent:
    doc = {"job_id": job_id, "error": {"code": "not_found", "message": "no such job"}}
    return SSEEvent("not_found", json.dumps(doc), "", False)


def status(job_id: str, result: str = "completed") -> JobStatus:
    return JobStatus(job_id=job_id, result=JobResult(result))


def test_ids_are_chunked_by_1000_and_duplicates_waited_for_once():
    """2,500 ids with duplicates: 3 streams of <= 1,000 distinct ids, each listing its ids."""
    ids = [f"j{n}" for n in range(2500)]
    batch = ManyJobs(ids + ids[:10])
    assert [len(chunk.job_ids) for chunk in batch.chunks] == [1000, 1000, 500]
    params, headers = batch.stream_request(batch.chunks[2])
    assert params == [*(("job_id", f"j{n}") for n in range(2000, 2500)), ("batch", "1")]
    assert headers["Accept"] == "text/event-stream" and "Last-Event-ID" not in headers
    assert len(batch.pending) == 2500


def test_bad_ids_are_refused():
    """A lone string or an empty id is a clear error, not 'wait for each character'."""
    with pytest.raises(TypeError, match="not one string"):
        unique_job_ids("abc")
    with pytest.raises(ValueError, match="non-empty string"):
        unique_job_ids(["a", ""])


def test_snapshot_then_live_events_end_jobs_once_in_order():
    """Snapshot (no id) and live events: finals handed out once each, in arrival order."""
    batch = ManyJobs(["a", "b", "c"])
    chunk = batch.chunks[0]
    assert batch.on_stream_answer(chunk, 200, "text/event-stream; charset=utf-8").action \
        is StreamAction.READ
    for event in (status_event("a"), status_event("b", "pending", progress=0.5),
                  status_event("c", "error", event_id=3), status_event("c", event_id=4),
                  status_event("zzz", event_id=5), status_event("b", event_id=6)):
        batch.on_event(chunk, event)
    ready = batch.take_ready()
    assert [(s.job_id, s.result) for s in ready] == [("a", JobResult.COMPLETED),
                                                     ("c", JobResult.ERROR),
                                                     ("b", JobResult.COMPLETED)]
    assert batch.done and batch.take_ready() == [] and chunk.last_event_id == "6"
    assert batch.on_stream_end(chunk, received=True).action is StreamAction.DONE


def test_a_dropped_stream_resumes_from_the_last_id_with_the_pending_ids_only():
    """After a drop: reopen after the server's retry, with Last-Event-ID and only pending ids."""
    batch = ManyJobs(["a", "b", "c"])
    chunk = batch.chunks[0]
    parser = SSEParser()
    for event in parser.feed(b"retry: 250\n\nevent: status\ndata: {\"job_id\": \"a\", "
                             b"\"result\": \"pending\"}\n\nid: 17\nevent: status\ndata: "
                             b"{\"job_id\": \"b\", \"result\": \"completed\"}\n\n"):
        batch.on_event(chunk, event)
    step = batch.on_stream_end(chunk, received=True, retry_ms=parser.retry)
    assert (step.action, step.delay) == (StreamAction.RETRY, 0.25)
    params, headers = batch.stream_request(chunk)
    assert params == [("job_id", "a"), ("job_id", "c"), ("batch", "1")]
    assert headers["Last-Event-ID"] == "17"


def test_streams_that_keep_failing_back_off_then_fall_back_to_polling():
    """Empty drops and 503s back off (jittered, growing); past the limit the batch polls."""
    batch = ManyJobs(["a"], rng=random.Random(3))
    chunk = batch.chunks[0]
    delays = [batch.on_stream_end(chunk, received=False).delay,
              batch.on_stream_answer(chunk, 503, "application/json").delay,
              batch.on_stream_failure(chunk, ConnectionError()).delay]
    assert 0.025 <= delays[0] <= 0.05 and 0.05 <= delays[1] <= 0.1 and 0.1 <= delays[2] <= 0.2
    assert MAX_STREAM_FAILURES == 3
    assert batch.on_stream_end(chunk, received=False).action is StreamAction.FALLBACK
    assert batch.mode is Mode.POLL


def test_429_waits_as_long_as_retry_after_says():
    """Past MAX_STREAMS the server says when to come back; that beats our own backoff."""
    batch = ManyJobs(["a"])
    step = batch.on_stream_answer(batch.chunks[0], 429, "application/json", retry_after="2")
    assert (step.action, step.delay) == (StreamAction.RETRY, 2.0)


def test_410_reads_each_pending_job_then_opens_a_fresh_stream():
    """HTTP 410: resync (the id is dropped), status reads settle jobs, the fresh stream is clean."""
    batch = ManyJobs(["a", "b"])
    chunk = batch.chunks[0]
    chunk.last_event_id = "5"
    step = batch.on_stream_answer(chunk, 410, "application/json")
    assert step.action is StreamAction.RESYNC and chunk.last_event_id == ""
    assert batch.on_status("a", status("a")) is not None
    assert batch.on_status("b", status("b", "pending")) is None
    params, headers = batch.stream_request(chunk)
    assert params == [("job_id", "b"), ("batch", "1")] and "Last-Event-ID" not in headers


@pytest.mark.parametrize(("code", "content_type"), [(404, "application/json"),
                                                    (405, "text/html"), (406, None),
                                                    (200, "application/json"),
                                                    (414, "application/json")])
def test_a_server_without_events_falls_back_after_one_answer(code, content_type):
    """404, 405, 406, a JSON 200 (an old server), or a refused query: per-job waits instead."""
    batch = ManyJobs(["a"])
    assert batch.on_stream_answer(batch.chunks[0], code, content_type).action \
        is StreamAction.FALLBACK
    assert batch.mode is Mode.POLL


def test_refused_credentials_fail_the_whole_wait():
    """401 on the stream is no reason to poll: the status reads would be refused too."""
    batch = ManyJobs(["a"])
    assert batch.on_stream_answer(batch.chunks[0], 401, "application/json").action \
        is StreamAction.FAIL


def test_an_unknown_job_fails_alone_and_the_others_end():
    """event: not_found fails that job only; the BatchError carries the others' statuses."""
    batch = ManyJobs(["a", "ghost", "b"])
    chunk = batch.chunks[0]
    for event in (status_event("a"), not_found_event("ghost"), status_event("b", "error")):
        batch.on_event(chunk, event)
    assert batch.done
    error = batch.batch_error()
    assert isinstance(error, BatchError) and "ghost" in str(error)
    assert isinstance(error.failed["ghost"], JobNotFoundError)
    assert error.failed["ghost"].job_id == "ghost"
    assert list(error.finished) == ["a", "b"]


def test_a_timeout_names_the_pending_jobs_and_carries_the_finished():
    """WaitTimeout lists what is still pending (by name) and what finished."""
    ids = [f"j{n}" for n in range(8)]
    batch = ManyJobs(ids)
    batch.on_event(batch.chunks[0], status_event("j3"))
    error = batch.timeout_error(timeout=5, attempts=1, elapsed=5.0)
    assert isinstance(error, WaitTimeout) and isinstance(error, TimeoutError)
    assert error.pending == tuple(i for i in ids if i != "j3")
    assert list(error.finished) == ["j3"] and "j0, j1, j2, j4, j5 and 2 more" in str(error)


def test_unreadable_and_unknown_events_are_ignored():
    """Bad JSON, a document with no status, an unknown event kind: ignored, the wait goes on."""
    batch = ManyJobs(["a"])
    chunk = batch.chunks[0]
    for event in (SSEEvent("status", "{not json", "", False),
                  SSEEvent("status", '{"job_id": "a"}', "", False),
                  SSEEvent("message", '{"job_id": "a", "result": "completed"}', "9", True)):
        assert batch.on_event(chunk, event) is None
    assert not batch.done and chunk.last_event_id == "9"


def test_a_status_without_the_id_is_filed_under_the_id_asked_for():
    """A per-job answer whose document lacks the id still ends the job it was asked for."""
    batch = ManyJobs(["a"])
    ended = batch.on_status("a", JobStatus(job_id=None, result=JobResult.COMPLETED))
    assert ended is not None and ended.job_id == "a" and batch.results()["a"] is ended


def test_a_statuses_event_carries_several_changes_in_order():
    """?batch=1 (issue 19): one event, a list of documents, each recorded as a status event's."""
    batch = ManyJobs(["a", "b", "c"])
    chunk = batch.chunks[0]
    docs = [{"job_id": "b", "result": "pending", "progress": 0.5},
            {"job_id": "c", "result": "error"}, {"job_id": "zzz", "result": "completed"},
            {"result": "completed"}, {"job_id": "a", "result": "completed"},
            {"job_id": "b", "result": "completed"}, {"job_id": "a", "result": "error"}]
    last = batch.on_event(chunk, SSEEvent("statuses", json.dumps(docs), "9", True))
    assert [(s.job_id, s.result) for s in batch.take_ready()] == [
        ("c", JobResult.ERROR), ("a", JobResult.COMPLETED), ("b", JobResult.COMPLETED)]
    assert last is not None and last.job_id == "b"
    assert batch.done and chunk.last_event_id == "9"


def test_a_statuses_event_that_is_not_a_list_is_ignored():
    batch = ManyJobs(["a"])
    chunk = batch.chunks[0]
    for data in ('{"job_id": "a", "result": "completed"}', "[1, 2]", "not json"):
        assert batch.on_event(chunk, SSEEvent("statuses", data, "", False)) is None
    assert batch.pending == {"a": None}


def test_streams_ask_for_batched_events_unless_told_not_to():
    batch = ManyJobs(["a"])
    assert ("batch", "1") in batch.stream_request(batch.chunks[0])[0]
    batch.batched_events = False
    assert batch.stream_request(batch.chunks[0])[0] == [("job_id", "a")]
