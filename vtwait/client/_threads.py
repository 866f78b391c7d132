"""The sync client's waits for many jobs: the transport side of :mod:`vtwait.core.batch`.

``VideoTranslationClient.as_completed`` and ``wait_many`` call :func:`as_completed` with the
client's :class:`Transport`, the typed interface these drivers use (never the client's private
attributes). Decisions come from :class:`~vtwait.core.batch.ManyJobs` and, per job,
:class:`~vtwait.core.planner.JobWait`; this module only moves bytes, in few threads:

- **Event stream**: one reader thread per open stream (one per chunk of at most 1,000 ids) feeds
  an SSE parser and hands events to the caller's thread over a queue; the caller's thread owns all
  state. 1,000 jobs: the caller's thread and one reader.
- **Per-job waits** (a server without ``/events``): one loop over a heap of next-poll times, the
  requests sent by a small bounded pool (:data:`POLL_WORKERS` threads, never one per job). A pooled
  thread held by one job's long-poll would stall the others, so these waits use hints and backoff.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import heapq
import http.client
import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Protocol, Self

import requests
import urllib3

from vtwait.core.batch import ManyJobs, Mode, StreamAction, StreamChunk, _is_event_stream
from vtwait.core.batch_state import BatchState
from vtwait.core.errors import (
    JobNotFoundError,
    ProtocolError,
    VideoTranslationError,
    WaitTimeout,
)
from vtwait.core.planner import Ask, Done, JobWait, Sleep
from vtwait.core.sse import SSEParser
from vtwait.core.status import JobStatus

__all__ = ["POLL_WORKERS", "Transport", "as_completed"]

logger = logging.getLogger(__name__)

#: Threads that send per-job status requests when the server has no event stream (with the
#: caller's thread: 4 threads in all, whatever the number of jobs).
POLL_WORKERS = 3
_READ_SIZE = 65536
# What a read of a stream raises when the stream drops (reset, timeout, shut down by close()).
_DROPS = (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError, ValueError)


class Transport(Protocol):
    """The sync client as its batch drivers see it: ``VideoTranslationClient`` hands one out.

    Every request goes through the client (its pacing, retries and error mapping); every sleep
    is the client's injected one, every time its clock's.
    """

    def new_batch(self, job_ids: Iterable[str]) -> ManyJobs:
        """The sans-IO state of a wait for these jobs (stream first, if the client says so)."""

    def clock(self) -> float:
        """The client's monotonic clock."""

    def sleep(self, seconds: float) -> None:
        """The client's sleep."""

    def open_stream(self, params: list[tuple[str, str]], headers: dict[str, str], *,
                    deadline: float) -> requests.Response:
        """``GET /events`` with these parameters, streamed (raises the client's errors)."""

    def poll(self, job_id: str, *, deadline: float) -> tuple[JobStatus, float, float]:
        """One status request with no long-poll: ``(status, sent_at, received_at)``."""

    def get_status(self, job_id: str) -> JobStatus:
        """One status request, as ``VideoTranslationClient.get_status``."""

    def new_wait(self, job_id: str, *, started: float, timeout: float) -> JobWait:
        """The state machine of one job's wait within a batch (no long-poll)."""

    def observe_final(self, status: JobStatus, *, waited: float) -> None:
        """Tell the client a job's final status (its learned schedule feeds on it)."""


def as_completed(client: Transport, job_ids: Iterable[str], *, timeout: float,
                 workers: int = POLL_WORKERS,
                 state: BatchState | None = None) -> Iterator[JobStatus]:
    """Yield each job's final status as it ends (see ``VideoTranslationClient.as_completed``).

    ``state``: a :class:`BatchState` that follows the batch (resumed from its last event id).
    """
    batch = client.new_batch(job_ids)
    if state is not None:
        state.bind(batch)
    started = client.clock()
    deadline = started + timeout
    counter = [0]  # requests made, for the WaitTimeout
    if batch.mode is Mode.STREAM:
        with _Streams(client, batch, counter, deadline) as streams:
            yield from streams.run(started, timeout)
    if not batch.done:  # no event stream on this server (or it kept failing): per-job waits
        yield from _poll_loop(client, batch, started, timeout, counter, workers)
    error = batch.batch_error()
    if error is not None:
        raise error


class _Streams:
    """The open streams of one batch: reader threads in, events out to the caller's thread."""

    def __init__(self, client: Transport, batch: ManyJobs, counter: list[int], deadline: float):
        self.client, self.batch, self.counter, self.deadline = client, batch, counter, deadline
        self.inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.stop = threading.Event()
        self.readers: dict[int, _Reader] = {}
        self.waiting: list[tuple[float, int]] = []  # (open at, chunk index): reopen later

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        for reader in list(self.readers.values()):
            reader.close()

    def run(self, started: float, timeout: float) -> Iterator[JobStatus]:
        client, batch, deadline = self.client, self.batch, self.deadline
        for chunk in batch.chunks:
            self._open(chunk)
        while not batch.done and batch.mode is Mode.STREAM:
            now = client.clock()
            while self.waiting and self.waiting[0][0] <= now:
                self._open(batch.chunks[heapq.heappop(self.waiting)[1]])
            if now >= deadline:
                raise batch.timeout_error(timeout=timeout, attempts=self.counter[0],
                                          elapsed=now - started)
            until = min([deadline] + [at for at, _ in self.waiting[:1]])
            try:
                message = self.inbox.get(timeout=max(until - now, 0.0))
            except queue.Empty:
                continue
            self._handle(message)
            for status in batch.take_ready():
                client.observe_final(status, waited=client.clock() - started)
                yield status

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind, reader = message[0], message[1]
        batch, chunk = self.batch, reader.chunk
        if self.readers.get(chunk.index) is not reader:
            return  # from a reader already replaced or closed
        if kind == "events":
            for event in message[2]:
                batch.on_event(chunk, event)
            if batch.chunk_done(chunk):
                self._close(chunk)
            return
        if kind == "answer":
            status, content_type, error = message[2:]
            if error is not None and status is None:
                step = batch.on_stream_failure(chunk, error)
            else:
                step = batch.on_stream_answer(chunk, status, content_type)
                if step.action is StreamAction.FAIL:
                    raise error
        else:  # "end": the stream ended or broke
            step = batch.on_stream_end(chunk, received=message[2], retry_ms=message[3])
        logger.debug("stream %d: %s: %s (%.3f s)", chunk.index, step.action.value, step.reason,
                     step.delay)
        if step.action is StreamAction.READ:
            return
        self._close(chunk)
        if step.action is StreamAction.RETRY:
            heapq.heappush(self.waiting, (self.client.clock() + step.delay, chunk.index))
        elif step.action is StreamAction.RESYNC:
            self._resync(chunk)
            self._open(chunk)
        elif step.action is StreamAction.FALLBACK:
            self.__exit__()

    def _resync(self, chunk: StreamChunk) -> None:
        """After a 410: one status read per job of the chunk still pending."""
        for job_id in self.batch.pending_in(chunk):
            self.counter[0] += 1
            try:
                self.batch.on_status(job_id, self.client.get_status(job_id))
            except VideoTranslationError as exc:
                self.batch.on_resync_failure(job_id, exc)

    def _open(self, chunk: StreamChunk) -> None:
        if self.batch.chunk_done(chunk) or self.stop.is_set():
            return
        params, headers = self.batch.stream_request(chunk)
        self.counter[0] += 1
        reader = _Reader(self.client, chunk, params, headers, self.inbox, self.stop,
                         self.deadline)
        self.readers[chunk.index] = reader
        reader.start()

    def _close(self, chunk: StreamChunk) -> None:
        reader = self.readers.pop(chunk.index, None)
        if reader is not None:
            reader.close()


class _Reader(threading.Thread):
    """Opens one chunk's stream and feeds what it reads to the inbox, until it ends or is closed."""

    def __init__(self, client: Transport, chunk: StreamChunk, params: list[tuple[str, str]],
                 headers: dict[str, str], inbox: queue.Queue[tuple[Any, ...]],
                 stop: threading.Event, deadline: float):
        super().__init__(name=f"event-stream-{chunk.index}", daemon=True)
        self.client, self.chunk, self.params, self.headers = client, chunk, params, headers
        self.inbox, self.stop, self.deadline = inbox, stop, deadline
        self.response: Any = None
        self.closed = threading.Event()

    def run(self) -> None:
        try:
            response = self.client.open_stream(self.params, self.headers, deadline=self.deadline)
        except VideoTranslationError as exc:
            self.inbox.put(("answer", self, exc.status_code, None, exc))
            return
        self.response = response
        try:
            content_type = response.headers.get("Content-Type")
            self.inbox.put(("answer", self, response.status_code, content_type, None))
            if not _is_event_stream(content_type) or self.closed.is_set():
                return
            parser = SSEParser(self.chunk.last_event_id)
            received = False
            try:
                while not self.closed.is_set():
                    data = response.raw.read1(_READ_SIZE)
                    if not data:
                        break
                    received = True
                    events = parser.feed(data)
                    if events:
                        self.inbox.put(("events", self, events))
            except _DROPS as exc:  # a drop: reset, timeout, shutdown by close()
                logger.debug("stream %d dropped: %s", self.chunk.index, exc)
            self.inbox.put(("end", self, received, parser.retry))
        finally:
            response.close()

    def close(self) -> None:
        """Stop reading: wakes a blocked read (socket shutdown) so the thread ends now."""
        self.closed.set()
        response = self.response
        if response is not None:
            with contextlib.suppress(ValueError, RuntimeError, OSError):  # closed: nothing blocks
                response.raw.shutdown()


def _poll_loop(client: Transport, batch: ManyJobs, started: float, timeout: float,
               counter: list[int], workers: int) -> Iterator[JobStatus]:
    """Per-job waits: one heap of next-poll times, requests sent by at most ``workers`` threads.

    Each job's :class:`JobWait` says when it asks next; a job that cannot be waited for (unknown,
    unreadable, out of attempts) fails alone. The batch's deadline is this loop's.
    """
    deadline = started + timeout
    waits = {job_id: client.new_wait(job_id, started=started, timeout=timeout)
             for job_id in batch.pending}
    # A job whose start answer already said pending is not asked again at once (the learned
    # planner says when); others are asked now.
    heap: list[tuple[float, int, str]] = []
    for job_id, wait in waits.items():
        step = wait.next(started)
        heap.append((started + (step.delay if isinstance(step, Sleep) else 0.0), len(heap),
                     job_id))
    heapq.heapify(heap)
    sequence = len(heap)
    pool = concurrent.futures.ThreadPoolExecutor(workers, "status-poll") if workers else None
    inflight: dict[concurrent.futures.Future[Any], str] = {}

    def settle(job_id: str, outcome: tuple[JobStatus, float, float] | Exception) -> None:
        nonlocal sequence
        wait, now = waits[job_id], client.clock()
        step: Sleep | Done
        try:
            if isinstance(outcome, VideoTranslationError):
                step = wait.on_failure(outcome, now=now)
            elif isinstance(outcome, Exception):
                raise outcome
            else:
                status, sent_at, received_at = outcome
                batch.on_status(job_id, status)
                step = wait.on_answer(status, asked_wait=None, sent_at=sent_at,
                                      received_at=received_at, now=now)
        except (JobNotFoundError, ProtocolError) as exc:
            batch.on_job_error(job_id, exc)
            return
        except WaitTimeout as exc:
            if wait.out_of_attempts:  # this job's budget; the batch's deadline is raised below
                batch.on_job_error(job_id, exc)
            return
        if isinstance(step, Sleep):
            sequence += 1
            heapq.heappush(heap, (now + step.delay, sequence, job_id))

    def poll(job_id: str) -> tuple[JobStatus, float, float] | Exception:
        try:
            return client.poll(job_id, deadline=deadline)
        except VideoTranslationError as exc:
            return exc

    try:
        while not batch.done:
            now = client.clock()
            if now >= deadline:
                raise batch.timeout_error(timeout=timeout, attempts=counter[0],
                                          elapsed=now - started)
            while heap and heap[0][0] <= now and len(inflight) < max(workers, 1):
                job_id = heapq.heappop(heap)[2]
                ask = waits[job_id].next(now)  # counts the attempt
                assert isinstance(ask, Ask)
                counter[0] += 1
                if pool is None:
                    settle(job_id, poll(job_id))
                else:
                    inflight[pool.submit(poll, job_id)] = job_id
            if inflight:
                wake = deadline
                if heap and len(inflight) < max(workers, 1):
                    wake = min(wake, heap[0][0])
                done, _ = concurrent.futures.wait(
                    inflight, timeout=max(wake - client.clock(), 0.0),
                    return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    settle(inflight.pop(future), future.result())
            elif heap:
                pause = min(heap[0][0], deadline) - client.clock()
                if pause > 0:
                    client.sleep(pause)
            for status in batch.take_ready():
                client.observe_final(status, waited=client.clock() - started)
                yield status
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
