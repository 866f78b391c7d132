"""The sans-IO core of waiting for many jobs at once, shared by the sync and asyncio clients.

    batch = ManyJobs(job_ids)                       # duplicates dropped, order kept
    params, headers = batch.stream_request(chunk)   # GET /events for one chunk of <= 1,000 ids
    step = batch.on_stream_answer(chunk, 200, "text/event-stream")   # READ, RETRY, RESYNC, ...
    for event in parser.feed(data):
        batch.on_event(chunk, event)                # a final status is recorded, and handed out
    for status in batch.take_ready(): ...           # by take_ready() (as_completed yields these)

The strategy, per server, falling back in order: one event stream per chunk of at most
:data:`MAX_STREAM_JOBS` ids (a dropped stream is reopened with ``Last-Event-ID``; a ``410`` costs one
status read per job still pending, then a fresh stream); per-job waits (long-poll, hints, backoff;
one :class:`~vtwait.core.planner.JobWait` per job). A server without ``/events`` (404, 405, 406,
or an answer that is not ``text/event-stream``) costs the one request that found out. A job the
server does not know is failed alone (:class:`~vtwait.core.errors.JobNotFoundError`), the others go on.
No sockets, no clock: the transports pass the time in. All durations are in seconds.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from vtwait.core.dialects import read_job_status
from vtwait.core.errors import (
    BatchError,
    JobNotFoundError,
    ProtocolError,
    VideoTranslationError,
    WaitTimeout,
)
from vtwait.core.planner import TRANSIENT_FAILURES
from vtwait.core.policy import exponential_delays
from vtwait.core.sse import SSEEvent
from vtwait.core.status import JobStatus, parse_retry_after

__all__ = ["MAX_STREAM_JOBS", "ManyJobs", "Mode", "StreamAction", "StreamChunk",
           "StreamStep", "unique_job_ids"]

logger = logging.getLogger(__name__)

#: Ids one event stream may watch (the server's ``MAX_STREAM_JOBS`` default).
MAX_STREAM_JOBS = 1000
#: Consecutive failed opens of one chunk's stream (no event in between) before the batch falls
#: back to per-job waits: the stream route may be broken while status reads still work.
MAX_STREAM_FAILURES = 3
# Reconnect delays after a stream drops without having delivered anything: doubling, jittered.
_RECONNECT_FIRST, _RECONNECT_MAX = 0.05, 5.0
# How many pending ids a timeout message names before "and N more".
_NAMED_IN_MESSAGE = 5


class Mode(str, enum.Enum):
    """How a batch is being waited for."""

    STREAM = "stream"  #: one event stream per chunk of ids
    POLL = "poll"  #: one wait per job (long-poll, hints, backoff)


class StreamAction(str, enum.Enum):
    """What the transport does next with one chunk's stream."""

    READ = "read"  #: the answer is the stream: feed its bytes to an SSE parser
    RETRY = "retry"  #: open the stream again after ``delay``
    RESYNC = "resync"  #: read each pending job's status once, then open a fresh stream
    FALLBACK = "fallback"  #: this server has no usable event stream: wait per job
    FAIL = "fail"  #: raise the error the answer stands for (e.g. refused credentials)
    DONE = "done"  #: no job left to watch in this chunk: close it


@dataclass(frozen=True)
class StreamStep:
    """One decision about a chunk's stream, with the reason (for the debug log)."""

    action: StreamAction
    delay: float = 0.0
    reason: str = ""


@dataclass
class StreamChunk:
    """One event stream's share of a batch: at most MAX_STREAM_JOBS ids and where it left off."""

    index: int
    job_ids: tuple[str, ...]
    #: The last event id seen on this chunk's stream ("" before any): sent as Last-Event-ID.
    last_event_id: str = ""
    #: The server's ``retry:`` in milliseconds, if it sent one.
    retry_ms: int | None = None
    #: Streams opened for this chunk.
    opens: int = 0
    #: Consecutive failed opens or empty drops (reset by anything received).
    failures: int = 0


def unique_job_ids(job_ids: Iterable[str]) -> list[str]:
    """The ids in order with duplicates dropped; ValueError for an empty or non-str id."""
    if isinstance(job_ids, str):
        raise TypeError(f"job_ids must be a collection of job ids, not one string: {job_ids!r}")
    ids = list(dict.fromkeys(job_ids))
    for job_id in ids:
        if not isinstance(job_id, str) or not job_id:
            raise ValueError(f"every job id must be a non-empty string, got {job_id!r}")
    return ids


class ManyJobs:
    """The state of one wait for many jobs: what is pending, what ended, what each stream needs.

    Args:
        job_ids: The jobs (duplicates are waited for once).
        use_stream: Start with the event stream (False: per-job waits from the start).
        chunk_size: Ids per stream (the server's limit; 1,000 by default).
        rng: Randomness for the reconnect jitter.
    """

    def __init__(self, job_ids: Iterable[str], *, use_stream: bool = True,
                 chunk_size: int = MAX_STREAM_JOBS, rng: random.Random | None = None) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
        ids = unique_job_ids(job_ids)
        self.job_ids: tuple[str, ...] = tuple(ids)
        #: Jobs not final yet, each with the last status seen (None before any).
        self.pending: dict[str, JobStatus | None] = dict.fromkeys(ids)
        #: Jobs that ended, in the order they were learned of.
        self.finished: dict[str, JobStatus] = {}
        #: Jobs that cannot be waited for, with why (e.g. JobNotFoundError).
        self.failed: dict[str, VideoTranslationError] = {}
        self.mode = Mode.STREAM if use_stream and ids else Mode.POLL
        self.chunks = [StreamChunk(n, tuple(ids[i:i + chunk_size]))
                       for n, i in enumerate(range(0, len(ids), chunk_size))]
        self._ready: deque[JobStatus] = deque()
        self._rng = rng or random.Random()
        self._chunk_of = {job_id: n // chunk_size for n, job_id in enumerate(ids)}
        self._left = [len(chunk.job_ids) for chunk in self.chunks]  # pending per chunk
        #: Ask streams for several changes per event (``?batch=1``, a ``statuses`` event).
        self.batched_events = True

    # ------------------------------------------------------------------------------ outcomes
    @property
    def done(self) -> bool:
        """True once every job ended or failed."""
        return not self.pending

    def take_ready(self) -> list[JobStatus]:
        """The final statuses recorded since the last call, in the order they were learned."""
        ready = list(self._ready)
        self._ready.clear()
        return ready

    def on_status(self, job_id: str, status: JobStatus) -> JobStatus | None:
        """Record a status of a pending job; returns it if it is final (and newly so)."""
        if job_id not in self.pending:
            return None  # not ours, or already ended: a duplicate final is dropped here
        if status.job_id != job_id:  # a document without the id, or with it in another form
            status = dataclasses.replace(status, job_id=job_id)
        if not status.done:
            self.pending[job_id] = status
            return None
        del self.pending[job_id]
        self._left[self._chunk_of[job_id]] -= 1
        self.finished[job_id] = status
        self._ready.append(status)
        return status

    def on_job_error(self, job_id: str, error: VideoTranslationError) -> None:
        """Record that a pending job cannot be waited for (it alone fails; the others go on)."""
        if self.pending.pop(job_id, _ABSENT) is not _ABSENT:
            self._left[self._chunk_of[job_id]] -= 1
            self.failed[job_id] = error
            logger.warning("job %s cannot be waited for: %s", job_id, error)

    def on_resync_failure(self, job_id: str, error: VideoTranslationError) -> None:
        """A job's status read after a 410 failed: a 404 fails that job alone; a transient
        failure is left to the fresh stream's snapshot of the job; anything else (refused
        credentials, a rejected request) is raised, since it would fail every job alike.

        Raises:
            VideoTranslationError: ``error``, when it is neither a 404 nor transient.
        """
        if isinstance(error, JobNotFoundError):
            self.on_job_error(job_id, error)
        elif isinstance(error, TRANSIENT_FAILURES):
            logger.warning("job %s: status read after HTTP 410 failed: %s", job_id, error)
        else:
            raise error

    def results(self) -> dict[str, JobStatus]:
        """``{job_id: final status}`` in the order the ids were given."""
        return {job_id: self.finished[job_id] for job_id in self.job_ids
                if job_id in self.finished}

    def batch_error(self) -> BatchError | None:
        """The error to raise once the others ended, if some jobs could not be waited for."""
        if not self.failed:
            return None
        names = _name_some(list(self.failed))
        first = next(iter(self.failed.values()))
        error = BatchError(f"{len(self.failed)} of {len(self.job_ids)} jobs could not be waited "
                           f"for ({names}): {first}", failed=self.failed,
                           finished=self.results())
        error.__cause__ = first
        return error

    def timeout_error(self, *, timeout: float, attempts: int, elapsed: float) -> WaitTimeout:
        """The WaitTimeout of a deadline reached with jobs still pending."""
        pending = tuple(self.pending)
        return WaitTimeout(
            f"{len(pending)} of {len(self.job_ids)} jobs not final within {timeout:g} s "
            f"({_name_some(pending)}); pass a larger timeout or check the server",
            job_id=pending[0] if len(pending) == 1 else None,
            last_status=self.pending[pending[0]] if len(pending) == 1 else None,
            attempts=attempts, elapsed=elapsed, pending=pending, finished=self.results(),
            failed=self.failed)

    # ----------------------------------------------------------------------------- streams
    def chunk_done(self, chunk: StreamChunk) -> bool:
        """True once no job of ``chunk`` is pending (cheap: called after every read)."""
        return self._left[chunk.index] == 0

    def pending_in(self, chunk: StreamChunk) -> list[str]:
        """The ids of ``chunk`` still pending."""
        return [job_id for job_id in chunk.job_ids if job_id in self.pending]

    def stream_request(self, chunk: StreamChunk) -> tuple[list[tuple[str, str]], dict[str, str]]:
        """Query parameters and headers of ``GET /events`` for ``chunk`` (its pending ids only)."""
        params = [("job_id", job_id) for job_id in self.pending_in(chunk)]
        if self.batched_events:  # several changes per event (issue 19); servers without it
            params.append(("batch", "1"))  # ignore the parameter and send one event each
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if chunk.last_event_id:
            headers["Last-Event-ID"] = chunk.last_event_id
        return params, headers

    def on_stream_answer(self, chunk: StreamChunk, status: int, content_type: str | None, *,
                         retry_after: str | None = None) -> StreamStep:
        """What an answer to ``GET /events`` means (after the transport's own retries)."""
        if 200 <= status < 300 and _is_event_stream(content_type):
            chunk.opens += 1
            return StreamStep(StreamAction.READ, reason="stream open")
        if 200 <= status < 300 or status in (404, 405, 406):
            return self._fall_back(f"GET /events answered HTTP {status} ({content_type or 'no type'}):"
                                   " no event stream")
        if status == 410:  # our Last-Event-ID is older than what the server retains
            chunk.last_event_id = ""
            return StreamStep(StreamAction.RESYNC, reason="Last-Event-ID expired (HTTP 410)")
        if status in (401, 403):
            return StreamStep(StreamAction.FAIL, reason=f"HTTP {status}")
        if status in (400, 414, 431):  # the server's stream refused our query: poll instead
            return self._fall_back(f"GET /events refused the query (HTTP {status})")
        delay = parse_retry_after(retry_after, maximum=60.0) if status == 429 else None
        return self._stream_failed(chunk, f"HTTP {status}", delay)

    def on_stream_failure(self, chunk: StreamChunk, error: Exception) -> StreamStep:
        """A stream that could not be opened at all (no answer after the transport's retries)."""
        return self._stream_failed(chunk, type(error).__name__, None)

    def on_event(self, chunk: StreamChunk, event: SSEEvent) -> JobStatus | None:
        """Record one parsed event; returns the final status it carries, if new."""
        chunk.failures = 0
        if event.has_id:
            chunk.last_event_id = event.last_event_id
        if event.event not in ("status", "not_found", "statuses"):
            return None  # an event kind this client does not know: ignored
        try:
            document = json.loads(event.data)
        except (ValueError, RecursionError):
            logger.warning("event stream: unreadable %s event ignored: %.120r", event.event,
                           event.data)
            return None
        if event.event == "statuses":
            return self._on_statuses(document)
        if event.event == "not_found":
            job_id = document.get("job_id") if isinstance(document, dict) else None
            if isinstance(job_id, str) and job_id in self.pending:
                error = document.get("error")
                message = error.get("message") if isinstance(error, dict) else None
                self.on_job_error(job_id, JobNotFoundError(
                    f"job {job_id} not found ({message or 'unknown to the server'}); it may have "
                    "expired, or the server may have restarted", job_id=job_id, status_code=404))
            return None
        try:
            status = read_job_status(document, job_id=None)  # its links (output) too
        except ProtocolError as exc:
            logger.warning("event stream: status event ignored: %s", exc)
            return None
        if status.job_id is None:
            return None
        return self.on_status(status.job_id, status)

    def _on_statuses(self, documents: object) -> JobStatus | None:
        """Several changes in one event (``?batch=1``): each document as a ``status`` event's;
        returns the last final status they carry, if any (every one is in take_ready())."""
        if not isinstance(documents, list):
            logger.warning("event stream: statuses event without a list ignored")
            return None
        last = None
        for document in documents:
            try:
                status = read_job_status(document, job_id=None)  # its links (output) too
            except ProtocolError as exc:
                logger.warning("event stream: status in a statuses event ignored: %s", exc)
                continue
            if status.job_id is not None:
                last = self.on_status(status.job_id, status) or last
        return last

    def on_stream_end(self, chunk: StreamChunk, *, received: bool,
                      retry_ms: int | None = None) -> StreamStep:
        """A stream that ended or broke: reopen it (with Last-Event-ID), or close it if done.

        Args:
            chunk: The chunk whose stream ended.
            received: Whether anything (an event, a heartbeat) came on it before it ended.
            retry_ms: The last ``retry:`` the server sent on it, if any.
        """
        if retry_ms is not None:
            chunk.retry_ms = retry_ms
        if self.chunk_done(chunk):
            return StreamStep(StreamAction.DONE, reason="every job of the chunk ended")
        base = min((chunk.retry_ms or 0) / 1000, _RECONNECT_MAX)
        if received:
            chunk.failures = 0
            return StreamStep(StreamAction.RETRY, base, "stream dropped: resume")
        return self._stream_failed(chunk, "stream ended with nothing received", None)

    def _stream_failed(self, chunk: StreamChunk, what: str, delay: float | None) -> StreamStep:
        chunk.failures += 1
        if chunk.failures > MAX_STREAM_FAILURES:
            return self._fall_back(f"event stream failed {chunk.failures} times in a row ({what})")
        if delay is None:
            first = max((chunk.retry_ms or 0) / 1000, _RECONNECT_FIRST)
            steps = exponential_delays(first, 2.0, _RECONNECT_MAX)
            for _ in range(chunk.failures - 1):
                next(steps)
            step = next(steps)
            delay = step / 2 + self._rng.uniform(0.0, step / 2)  # equal jitter
        return StreamStep(StreamAction.RETRY, delay, f"{what}: reopen")

    def _fall_back(self, reason: str) -> StreamStep:
        if self.mode is Mode.STREAM:
            logger.info("%s; waiting per job instead", reason)
        self.mode = Mode.POLL
        return StreamStep(StreamAction.FALLBACK, reason=reason)


_ABSENT = object()


def _is_event_stream(content_type: str | None) -> bool:
    if not content_type:
        return False
    return content_type.split(";")[0].strip().lower() == "text/event-stream"


def _name_some(job_ids: list[str] | tuple[str, ...]) -> str:
    named = ", ".join(job_ids[:_NAMED_IN_MESSAGE])
    more = len(job_ids) - _NAMED_IN_MESSAGE
    return named + (f" and {more} more" if more > 0 else "")
