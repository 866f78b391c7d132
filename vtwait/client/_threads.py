"""The sync client's waits for many jobs: the transport side of :mod:`many_jobs`.

``VideoTranslationClient.as_completed``, ``wait_many`` and ``start_jobs`` call the functions here.
Decisions come from :class:`many_jobs.ManyJobs`; this module only moves bytes, in few threads:

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
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Self

import urllib3

from vtwait.core.planner import (
    AuthenticationError,
    JobNotFoundError,
    JobStatus,
    ProtocolError,
    ServerError,
    ServerUnreachableError,
    VideoTranslationError,
    _require,
)
from vtwait.core.batch import (
    JobWait,
    ManyJobs,
    Mode,
    StreamAction,
    StreamChunk,
    _is_event_stream,
)
from vtwait.core.sse import SSEParser

if TYPE_CHECKING:
    from vtwait.client.sync import VideoTranslationClient

__all__ = ["POLL_WORKERS", "STREAM_READ_TIMEOUT", "as_completed", "start_jobs"]

logger = logging.getLogger(__name__)

#: Threads that send per-job status requests when the server has no event stream (with the
#: caller's thread: 4 threads in all, whatever the number of jobs).
POLL_WORKERS = 3
#: Seconds a stream may stay silent (no event, no heartbeat) before it counts as dropped: three
#: of the server's default 15 s heartbeats.
STREAM_READ_TIMEOUT = 45.0
_READ_SIZE = 65536
# What a read of a stream raises when the stream drops (reset, timeout, shut down by close()).
_DROPS = (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError, ValueError)


def start_jobs(client: VideoTranslationClient, count: int, *, delay: float | None = None,
               outcome: str | None = None) -> list[str]:
    """Start ``count`` jobs one after another (each with its own Idempotency-Key); their ids."""
    _require(isinstance(count, int) and count >= 0, "count", count, "must be an int >= 0")
    return [client.start_job(delay=delay, outcome=outcome) for _ in range(count)]


def as_completed(client: VideoTranslationClient, job_ids: Any, *, timeout: float | None,
                 workers: int = POLL_WORKERS) -> Iterator[JobStatus]:
    """Yield each job's final status as it ends (see ``VideoTranslationClient.as_completed``)."""
    timeout = client._checked_timeout(timeout)
    batch = ManyJobs(job_ids, use_stream=client.use_event_stream, rng=client._rng)
    started = client._clock()
    deadline = started + timeout
    counter = [0]  # requests made, for the WaitTimeout
    if batch.mode is Mode.STREAM:
        with _Streams(client, batch, counter) as streams:
            yield from streams.run(started, deadline, timeout)
    if not batch.done:  # no event stream on this server (or it kept failing): per-job waits
        yield from _poll_loop(client, batch, started, deadline, timeout, counter, workers)
    error = batch.batch_error()
    if error is not None:
        raise error


class _Streams:
    """The open streams of one batch: reader threads in, events out to the caller's thread."""

    def __init__(self, client: VideoTranslationClient, batch: ManyJobs, counter: list[int]):
        self.client, self.batch, self.counter = client, batch, counter
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

    def run(self, started: float, deadline: float, timeout: float) -> Iterator[JobStatus]:
        client, batch = self.client, self.batch
        for chunk in batch.chunks:
            self._open(chunk)
        while not batch.done and batch.mode is Mode.STREAM:
            now = client._clock()
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
                client._observe_final(status.job_id, status, waited=client._clock() - started)
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
            heapq.heappush(self.waiting, (self.client._clock() + step.delay, chunk.index))
        elif step.action is StreamAction.RESYNC:
            _resync(self.client, batch, chunk, self.counter)
            self._open(chunk)
        elif step.action is StreamAction.FALLBACK:
            self.__exit__()

    def _open(self, chunk: StreamChunk) -> None:
        if self.batch.chunk_done(chunk) or self.stop.is_set():
            return
        params, headers = self.batch.stream_request(chunk)
        self.counter[0] += 1
        reader = _Reader(self.client, chunk, params, headers, self.inbox, self.stop)
        self.readers[chunk.index] = reader
        reader.start()

    def _close(self, chunk: StreamChunk) -> None:
        reader = self.readers.pop(chunk.index, None)
        if reader is not None:
            reader.close()


class _Reader(threading.Thread):
    """Opens one chunk's stream and feeds what it reads to the inbox, until it ends or is closed."""

    def __init__(self, client: VideoTranslationClient, chunk: StreamChunk,
                 params: list[tuple[str, str]], headers: dict[str, str],
                 inbox: queue.Queue[tuple[Any, ...]], stop: threading.Event):
        super().__init__(name=f"event-stream-{chunk.index}", daemon=True)
        self.client, self.chunk, self.params, self.headers = client, chunk, params, headers
        self.inbox, self.stop = inbox, stop
        self.response: Any = None
        self.closed = threading.Event()

    def run(self) -> None:
        client = self.client
        try:
            response = client._send(
                "GET", client.base_url + client.events_url, params=self.params,
                headers=self.headers, stream=True,
                timeout=(client.request_timeout[0], STREAM_READ_TIMEOUT))
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


def _resync(client: VideoTranslationClient, batch: ManyJobs, chunk: StreamChunk,
            counter: list[int]) -> None:
    """After a 410: one status read per job of the chunk still pending."""
    for job_id in batch.pending_in(chunk):
        counter[0] += 1
        try:
            batch.on_status(job_id, client.get_status(job_id))
        except (JobNotFoundError, AuthenticationError) as exc:
            batch.on_job_error(job_id, exc)
        except VideoTranslationError as exc:  # the fresh stream's snapshot covers this job
            logger.warning("job %s: status read after HTTP 410 failed: %s", job_id, exc)


def _poll_loop(client: VideoTranslationClient, batch: ManyJobs, started: float, deadline: float,
               timeout: float, counter: list[int], workers: int) -> Iterator[JobStatus]:
    """Per-job waits: one heap of next-poll times, requests sent by at most ``workers`` threads."""
    policy = replace(client.policy, long_poll=False)
    waits = {job_id: JobWait(job_id, client._new_planner(job_id, policy),
                             max_attempts=policy.max_attempts,
                             max_protocol_errors=policy.max_protocol_errors)
             for job_id in batch.pending}
    # A job whose start answer already said pending is not asked again at once (the learned
    # planner says when); others are asked now.
    heap = [(started + (first.delay if (first := wait.planner.first_delay(started)) else 0.0),
             n, job_id) for n, (job_id, wait) in enumerate(waits.items())]
    heapq.heapify(heap)
    sequence = len(heap)
    pool = concurrent.futures.ThreadPoolExecutor(workers, "status-poll") if workers else None
    inflight: dict[concurrent.futures.Future[Any], str] = {}

    def settle(job_id: str, outcome: tuple[JobStatus, float, float] | Exception) -> None:
        nonlocal sequence
        wait = waits[job_id]
        if isinstance(outcome, JobNotFoundError):
            batch.on_job_error(job_id, wait.not_found(outcome))
            return
        if isinstance(outcome, ServerError | ServerUnreachableError | ProtocolError):
            try:
                decision = wait.on_failure(outcome)
            except ProtocolError as exc:
                batch.on_job_error(job_id, exc)
                return
        elif isinstance(outcome, Exception):
            raise outcome
        else:
            status, sent_at, received_at = outcome
            answer = wait.on_answer(status, asked_wait=None, sent_at=sent_at,
                                    received_at=received_at)
            if answer is None:
                batch.on_status(job_id, status)
                return
            batch.on_status(job_id, status)
            decision = answer
        if wait.out_of_attempts:
            batch.on_job_error(job_id, wait.timeout("no final status after "
                                                    f"{wait.attempts} status requests",
                                                    elapsed=client._clock() - started))
            return
        sequence += 1
        heapq.heappush(heap, (client._clock() + decision.delay, sequence, job_id))

    def poll(job_id: str) -> tuple[JobStatus, float, float] | Exception:
        try:
            return client._poll(job_id, None)
        except VideoTranslationError as exc:
            return exc

    try:
        while not batch.done:
            now = client._clock()
            if now >= deadline:
                raise batch.timeout_error(timeout=timeout, attempts=counter[0],
                                          elapsed=now - started)
            while heap and heap[0][0] <= now and len(inflight) < max(workers, 1):
                job_id = heapq.heappop(heap)[2]
                waits[job_id].long_poll_for(deadline - now)  # counts the attempt
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
                    inflight, timeout=max(wake - client._clock(), 0.0),
                    return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    settle(inflight.pop(future), future.result())
            elif heap:
                pause = min(heap[0][0], deadline) - client._clock()
                if pause > 0:
                    client._sleep(pause)
            for status in batch.take_ready():
                client._observe_final(status.job_id, status, waited=client._clock() - started)
                yield status
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
