"""The sans-IO rules of a job's life beyond the wait: held starts, deadlines, outputs, downloads,
listing, cancel on timeout and the batch state (vtwait.core.lifecycle, download, batch_state)."""

from __future__ import annotations

import hashlib
import json

import pytest

from vtwait.core.batch import ManyJobs
from vtwait.core.batch_state import BatchState
from vtwait.core.download import MAX_DROPS, Action, Download, error_code
from vtwait.core.errors import (
    ChecksumMismatchError,
    NoOutputError,
    ProtocolError,
    ServerUnreachableError,
    UnsupportedFeatureError,
    WaitTimeout,
)
from vtwait.core.lifecycle import (
    JobOutput,
    OutputWait,
    jobs_query,
    output_of,
    read_jobs_page,
    read_start_answer,
    record_cancel,
    start_headers,
    start_hold,
)
from vtwait.core.sse import SSEEvent
from vtwait.core.status import parse_status_document

DATA = bytes(range(256)) * 40  # 10,240 bytes
DIGEST = hashlib.sha256(DATA).hexdigest()
OUTPUT = {"url": "http://127.0.0.1:1/outputs/j1?expires=2000000000&signature=ab",
          "expires_at": 2_000_000_000, "content_type": "video/mp4", "size": len(DATA),
          "sha256": DIGEST}


def completed(output=None, **extra):
    doc = {"job_id": "j1", "result": "completed", "phase": "completed", **extra}
    if output is not None:
        doc["output"] = output
    return parse_status_document(doc)


# ------------------------------------------------------------------------ start and deadline
@pytest.mark.parametrize(("hold", "deadline", "expected"), [
    (0, None, {}),
    (30, None, {"Prefer": "wait=30"}),
    (0, 600, {"Cancel-After": "600"}),
    (5, 0.5, {"Prefer": "wait=5", "Cancel-After": "0.5"}),
])
def test_start_headers(hold, deadline, expected):
    """A held start asks Prefer: wait=N; a deadline is Cancel-After in seconds."""
    assert start_headers(hold=hold, deadline=deadline) == expected


@pytest.mark.parametrize("deadline", [0, -1, float("inf"), float("nan"), "10", True])
def test_a_bad_deadline_is_a_value_error(deadline):
    """A deadline must be a positive finite number of seconds."""
    with pytest.raises(ValueError, match="deadline"):
        start_headers(deadline=deadline)


@pytest.mark.parametrize(("timeout", "cap", "hold"), [(600, 30, 30), (2.7, 30, 2), (0.4, 30, 0),
                                                      (60, 0, 0)])
def test_start_hold_is_whole_seconds_within_the_policy(timeout, cap, hold):
    """The hold asked for never passes the wait's timeout nor the policy's longest long-poll."""
    assert start_hold(timeout, cap) == hold


def test_a_200_start_carries_the_final_status():
    """A start held until the end (200) is the final status; 201 is the pending start."""
    done = read_start_answer(200, {"job_id": "j1", "result": "completed"},
                             {"Preference-Applied": "wait=30"})
    assert done.job_id == "j1" and done.final is not None and done.final.done
    assert done.wait_applied == 30
    pending = read_start_answer(201, {"job_id": "j2", "result": "pending"},
                                {"Location": "/status/j2"})
    assert pending.job_id == "j2" and pending.final is None and pending.wait_applied is None
    plain = read_start_answer(200, {"job_id": "j3", "result": "pending"}, {})
    assert plain.final is None  # a server that answers 200 to every start


# ------------------------------------------------------------------------------ outputs
def test_output_of_reads_a_completed_jobs_output():
    """The output of a completed job; none for a job without one or not completed."""
    output = output_of(completed(OUTPUT))
    assert output == JobOutput(url=OUTPUT["url"], expires_at=2e9, size=len(DATA), sha256=DIGEST,
                               content_type="video/mp4")
    assert output_of(completed()) is None
    assert output_of(completed({**OUTPUT, "size": -1})) is None
    assert output_of(parse_status_document({"job_id": "j", "result": "error",
                                            "output": OUTPUT})) is None


def test_output_wait_waits_out_the_late_output_then_names_the_missing_feature():
    """A completed job without output yet: doubling delays up to the limit, then
    UnsupportedFeatureError; a failed job: NoOutputError at once."""
    wait = OutputWait("j1", limit=0.5)
    delays = []
    with pytest.raises(UnsupportedFeatureError) as caught:
        while True:
            delays.append(wait.on_status(completed(), wall_now=0.0))
    assert caught.value.feature == "outputs"
    assert delays == [0.05, 0.1, 0.2, pytest.approx(0.15)]
    assert isinstance(OutputWait("j1").on_status(completed(OUTPUT), wall_now=0.0), JobOutput)
    with pytest.raises(NoOutputError, match="cancelled"):
        OutputWait("j1").on_status(parse_status_document(
            {"job_id": "j1", "result": "error", "phase": "canceled"}), wall_now=0.0)


def test_an_expired_url_is_renewed_once():
    """An output whose URL has expired asks for a fresh status once, then takes what it gets."""
    wait = OutputWait("j1")
    stale = completed({**OUTPUT, "expires_at": 100})
    assert wait.on_status(stale, wall_now=1000.0) == 0.0
    assert isinstance(wait.on_status(stale, wall_now=1000.0), JobOutput)


# ----------------------------------------------------------------------------- download
def test_a_download_resumes_after_a_drop_and_verifies():
    """Bytes up to a drop are kept; the resume asks Range from there with If-Range."""
    plan = Download(output_of(completed(OUTPUT)), job_id="j1")
    assert plan.request_headers() == {}
    assert plan.on_answer(200, {"ETag": '"e1"'}).action is Action.WRITE
    plan.on_data(DATA[:4000])
    step = plan.on_drop()
    assert step.action is Action.RETRY and step.offset == 4000
    assert plan.request_headers() == {"Range": "bytes=4000-", "If-Range": '"e1"'}
    step = plan.on_answer(206, {"Content-Range": f"bytes 4000-{len(DATA) - 1}/{len(DATA)}"})
    assert step.action is Action.WRITE and step.offset == 4000
    plan.on_data(DATA[4000:])
    assert plan.on_body_end().action is Action.DONE
    plan.verify()
    assert plan.progress.received == len(DATA) and plan.progress.resumes == 1


def test_a_200_to_a_range_request_starts_over():
    """A server that ignores Range (or a changed file under If-Range) sends all: write from 0."""
    plan = Download(output_of(completed(OUTPUT)))
    plan.on_answer(200, {})
    plan.on_data(DATA[:100])
    plan.on_drop()
    plan.request_headers()
    assert plan.on_answer(200, {}).offset == 0
    plan.on_data(DATA)
    plan.verify()
    assert plan.received == len(DATA) + 100


def test_a_wrong_content_range_is_a_protocol_error():
    """A 206 that does not start where the file stands fails the download."""
    plan = Download(output_of(completed(OUTPUT)))
    plan.on_answer(200, {})
    plan.on_data(DATA[:10])
    step = plan.on_answer(206, {"Content-Range": "bytes 0-99/10240"})
    assert step.action is Action.FAIL and isinstance(step.error, ProtocolError)


def test_refused_urls_are_refreshed_a_few_times_then_fail():
    """403 (expired, forged) asks for a fresh URL, up to MAX_REFRESHES times."""
    plan = Download(output_of(completed(OUTPUT)))
    actions = [plan.on_answer(403, {}, error_code="url_expired").action for _ in range(4)]
    assert actions == [Action.REFRESH] * 3 + [Action.FAIL]


def test_416_after_the_last_byte_is_done():
    """A drop after the last byte: the resume's 416 means the file is whole."""
    plan = Download(output_of(completed(OUTPUT)))
    plan.on_answer(200, {})
    plan.on_data(DATA)
    assert plan.on_answer(416, {}).action is Action.DONE


def test_drops_with_nothing_received_give_up():
    """Consecutive drops without a byte in between: MAX_DROPS retries, then the failure."""
    plan = Download(output_of(completed(OUTPUT)))
    steps = [plan.on_drop() for _ in range(MAX_DROPS + 1)]
    assert [s.action for s in steps] == [Action.RETRY] * MAX_DROPS + [Action.FAIL]
    assert steps[1].delay > 0


def test_a_checksum_mismatch_is_typed():
    """Bytes that are not the announced ones raise ChecksumMismatchError with both digests."""
    plan = Download(output_of(completed(OUTPUT)), job_id="j1")
    plan.on_answer(200, {})
    plan.on_data(b"x" * len(DATA))
    with pytest.raises(ChecksumMismatchError) as caught:
        plan.verify()
    assert caught.value.expected == (len(DATA), DIGEST)
    assert caught.value.actual[0] == len(DATA) and caught.value.actual[1] != DIGEST
    too_long = Download(output_of(completed(OUTPUT)))
    with pytest.raises(ChecksumMismatchError):
        too_long.on_data(DATA + b"!")


def test_error_code_reads_the_servers_error_body():
    """The code of the server's JSON error body; None for anything else."""
    assert error_code(b'{"error": {"code": "url_expired", "message": "..."}}') == "url_expired"
    assert error_code(b"<html>") is None


# -------------------------------------------------------------------- cancel and listing
def test_record_cancel_says_whether_the_cancel_took():
    """cancelled is True only when every cancel answered a cancelled job."""
    cancelled = parse_status_document({"job_id": "j1", "result": "error", "phase": "canceled"})
    ended = parse_status_document({"job_id": "j1", "result": "completed"})

    def timeout():
        return WaitTimeout("late", job_id="j1", last_status=None, attempts=1, elapsed=1.0)

    assert timeout().cancelled is None
    took = record_cancel(timeout(), {"j1": cancelled})
    assert took.cancelled is True and took.cancel_status == cancelled
    assert record_cancel(timeout(), {"j1": ended}).cancelled is False
    failed = record_cancel(timeout(), {"j1": ServerUnreachableError("down")})
    assert failed.cancelled is False and isinstance(failed.cancel_error, ServerUnreachableError)


def test_jobs_pages():
    """GET /jobs pages: the statuses and the next cursor; anything else is a ProtocolError."""
    assert jobs_query(result="completed", phase=None, limit=10, cursor="c1") == {
        "limit": "10", "result": "completed", "cursor": "c1"}
    page = read_jobs_page({"jobs": [{"job_id": "a", "result": "pending"}], "next_cursor": "n"})
    assert [s.job_id for s in page.statuses] == ["a"] and page.next_cursor == "n"
    assert read_jobs_page({"jobs": [], "next_cursor": None}).next_cursor is None
    for bad in ({"error": "x"}, {"jobs": [], "next_cursor": 3}, []):
        with pytest.raises(ProtocolError):
            read_jobs_page(bad)


# ------------------------------------------------------------------------- batch state
def test_a_batch_state_follows_its_batch_and_round_trips():
    """A bound state reads the stream's place from the live batch and counts a job finished
    once its status is handed out; its JSON resumes a new batch from that place."""
    state = BatchState.new(["a", "b", "c"])
    batch = ManyJobs(state.pending)
    state.bind(batch)
    chunk = batch.chunks[0]
    batch.on_event(chunk, SSEEvent("status", json.dumps({"job_id": "a", "result": "completed"}),
                                   "17", True))
    assert state.last_event_id == "17"
    assert state.pending == ["a", "b", "c"]  # ended, but not handed out yet: learned again
    for status in batch.take_ready():
        state.record(status)
    assert state.pending == ["b", "c"] and state.finished["a"]["result"] == "completed"

    again = BatchState.from_json(state.to_json())
    assert again.pending == ["b", "c"] and again.job_ids == ("a", "b", "c")
    resumed = ManyJobs(again.pending)
    again.bind(resumed)
    assert resumed.chunks[0].last_event_id == "17"
    params, headers = resumed.stream_request(resumed.chunks[0])
    assert headers["Last-Event-ID"] == "17" and params == [("job_id", "b"), ("job_id", "c"),
                                                                ("batch", "1")]
    assert again.statuses()["a"].done


@pytest.mark.parametrize("text", ["not json", "[]", '{"version": 2, "job_ids": []}',
                                  '{"version": 1, "job_ids": [""]}',
                                  '{"version": 1, "job_ids": ["a"], "finished": {"b": {}}}',
                                  '{"version": 1, "job_ids": ["a"], "last_event_id": "x1"}'])
def test_a_bad_batch_state_is_a_protocol_error(text):
    """A file that is not a batch state of this version is refused with a reason."""
    with pytest.raises(ProtocolError, match="batch state"):
        BatchState.from_json(text)
