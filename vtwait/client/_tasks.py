"""The asyncio client's waits for many jobs: the tasks side of :mod:`vtwait.core.batch`.

``AsyncVideoTranslationClient.as_completed`` and ``wait_many`` call :func:`as_completed` with the
client's :class:`AsyncTransport`, the typed interface these tasks use (never the client's private
attributes). Decisions come from :class:`~vtwait.core.batch.ManyJobs` and, per job,
:class:`~vtwait.core.planner.JobWait` (driven by the client's own single-job loop): one task per
open stream (one per chunk of at most 1,000 ids), or, on a server without ``/events``, one
long-polling task per job, at most :data:`MAX_CONNECTING` of them connecting at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import Any, Protocol

import aiohttp

from vtwait.core.batch import ManyJobs, Mode, StreamAction, StreamChunk
from vtwait.core.batch_state import BatchState
from vtwait.core.errors import (
    JobNotFoundError,
    ProtocolError,
    ServerUnreachableError,
    VideoTranslationError,
    WaitTimeout,
)
from vtwait.core.planner import Done, JobWait
from vtwait.core.sse import SSEParser
from vtwait.core.status import JobStatus

__all__ = ["CONNECTING_SLOT_MAX", "MAX_CONNECTING", "NO_ANSWER", "AsyncTransport", "as_completed"]

logger = logging.getLogger(__name__)

#: Per-job waits of a batch whose first request is still connecting, at most (see _BatchRun).
MAX_CONNECTING = 256
#: Longest a first request holds its connecting slot when the session cannot say it was sent.
CONNECTING_SLOT_MAX = 0.1
#: Errors that mean "no answer" (retried like the sync client's connection errors and timeouts).
NO_ANSWER = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError)


class AsyncTransport(Protocol):
    """The asyncio client as its batch tasks see it: ``AsyncVideoTranslationClient`` hands one
    out. Every request goes through the client (pacing, retries, error mapping)."""

    def new_batch(self, job_ids: Iterable[str]) -> ManyJobs:
        """The sans-IO state of a wait for these jobs (stream first, if the client says so)."""

    def clock(self) -> float:
        """The client's monotonic clock."""

    async def sleep(self, seconds: float) -> None:
        """The client's sleep."""

    async def open_stream(self, params: list[tuple[str, str]], headers: dict[str, str], *,
                          deadline: float) -> aiohttp.ClientResponse:
        """``GET /events`` with these parameters, streamed (raises the client's errors)."""

    async def get_status(self, job_id: str) -> JobStatus:
        """One status request, as ``AsyncVideoTranslationClient.get_status``."""

    def new_wait(self, job_id: str, *, started: float, timeout: float) -> JobWait:
        """The state machine of one job's wait within a batch."""

    async def wait_one(self, wait: JobWait, *,
                       on_sent: Callable[[], None] | None = None) -> Done:
        """Drive ``wait`` to its end, as ``wait_for_completion`` does."""

    async def observe_final(self, status: JobStatus, *, waited: float) -> None:
        """Tell the client a job's final status (its learned schedule feeds on it)."""


async def as_completed(client: AsyncTransport, job_ids: Iterable[str], *,
                       timeout: float,
                       state: BatchState | None = None) -> AsyncGenerator[JobStatus, None]:
    """Yield each job's final status as it ends (see ``AsyncVideoTranslationClient.as_completed``).

    ``state``: a :class:`BatchState` that follows the batch (resumed from its last event id).
    """
    batch = client.new_batch(job_ids)
    if state is not None:
        state.bind(batch)
    started = client.clock()
    run = _BatchRun(client, batch, started, started + timeout)
    try:
        if batch.mode is Mode.STREAM:
            run.spawn(run.stream(chunk) for chunk in batch.chunks)
        while not batch.done:
            if batch.mode is Mode.POLL and not run.polling:
                run.stop()
                run.polling = True
                run.spawn(run.poll(job_id) for job_id in list(batch.pending))
            for status in batch.take_ready():
                await client.observe_final(status, waited=client.clock() - started)
                yield status
            if batch.done:
                break
            left = run.deadline - client.clock()
            if left <= 0:
                raise batch.timeout_error(timeout=timeout, attempts=run.requests,
                                          elapsed=client.clock() - started)
            run.wake.clear()
            if run.error is not None:
                raise run.error
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.wake.wait(), left)
        for status in batch.take_ready():
            await client.observe_final(status, waited=client.clock() - started)
            yield status
    finally:
        run.stop()
    error = batch.batch_error()
    if error is not None:
        raise error


class _BatchRun:
    """The tasks of one as_completed: one per stream chunk, or one per job when polling."""

    def __init__(self, client: AsyncTransport, batch: ManyJobs, started: float, deadline: float):
        self.client, self.batch, self.started, self.deadline = client, batch, started, deadline
        self.tasks: set[asyncio.Task[None]] = set()
        self.wake = asyncio.Event()
        self.polling = False
        self.requests = 0
        self.error: BaseException | None = None
        # First polls still connecting: opening 10,000 connections at once overflows the server's
        # accept backlog (SYNs dropped, connect timeouts, retry storms); a few hundred at a time
        # open in about a second.
        self.connecting = asyncio.Semaphore(MAX_CONNECTING)

    def spawn(self, coroutines: Iterable[Awaitable[None]]) -> None:
        for coroutine in coroutines:
            task = asyncio.ensure_future(coroutine)
            self.tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self.error is None:
            self.error = task.exception()
        self.wake.set()

    def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()

    async def stream(self, chunk: StreamChunk) -> None:
        """Keep one chunk's event stream open until its jobs ended (or the batch falls back)."""
        client, batch = self.client, self.batch
        while not batch.chunk_done(chunk) and batch.mode is Mode.STREAM:
            params, headers = batch.stream_request(chunk)
            self.requests += 1
            try:
                response = await client.open_stream(params, headers, deadline=self.deadline)
            except ServerUnreachableError as exc:
                step = batch.on_stream_failure(chunk, exc)
            except VideoTranslationError as exc:
                step = batch.on_stream_answer(chunk, exc.status_code or 0, None)
                if step.action is StreamAction.FAIL:
                    raise
            else:
                step = batch.on_stream_answer(chunk, response.status,
                                              response.headers.get("Content-Type"))
                if step.action is StreamAction.READ:
                    step = await self._read(chunk, response)
                else:
                    response.release()
            logger.debug("stream %d: %s: %s (%.3f s)", chunk.index, step.action.value,
                         step.reason, step.delay)
            if step.action is StreamAction.RETRY:
                await client.sleep(step.delay)
            elif step.action is StreamAction.RESYNC:
                await self._resync(chunk)
            elif step.action in (StreamAction.FALLBACK, StreamAction.DONE):
                break
        self.wake.set()

    async def _read(self, chunk: StreamChunk, response: aiohttp.ClientResponse) -> Any:
        batch = self.batch
        parser = SSEParser(chunk.last_event_id)
        received = False
        try:
            async for data in response.content.iter_any():
                received = True
                for event in parser.feed(data):
                    batch.on_event(chunk, event)
                self.wake.set()
                if batch.chunk_done(chunk):
                    break
        except NO_ANSWER as exc:
            logger.debug("stream %d dropped: %s", chunk.index, exc)
        finally:
            response.close()
        return batch.on_stream_end(chunk, received=received, retry_ms=parser.retry)

    async def _resync(self, chunk: StreamChunk) -> None:
        """After a 410: one status read per job of the chunk still pending, then a fresh stream."""
        for job_id in self.batch.pending_in(chunk):
            self.requests += 1
            try:
                self.batch.on_status(job_id, await self.client.get_status(job_id))
            except VideoTranslationError as exc:
                self.batch.on_resync_failure(job_id, exc)
        self.wake.set()

    async def poll(self, job_id: str) -> None:
        """One job's wait (long-poll, hints, backoff), as wait_for_completion does it."""
        client = self.client
        wait = client.new_wait(job_id, started=self.started, timeout=self.deadline - self.started)
        await self.connecting.acquire()
        release = _Once(self.connecting.release)
        # A session made elsewhere has no headers-sent trace: then the slot frees after a while.
        asyncio.get_running_loop().call_later(CONNECTING_SLOT_MAX, release)
        try:
            done = await client.wait_one(wait, on_sent=release)
        except (JobNotFoundError, ProtocolError) as exc:
            self.batch.on_job_error(job_id, exc)
        except WaitTimeout as exc:
            if wait.out_of_attempts:  # this job's budget, not the batch's deadline
                self.batch.on_job_error(job_id, exc)
        else:
            self.batch.on_status(job_id, done.status)
        finally:
            self.requests += wait.attempts
            self.wake.set()


class _Once:
    """A callable that runs ``action`` on its first call only."""

    def __init__(self, action: Callable[[], Any]) -> None:
        self._action: Callable[[], Any] | None = action

    def __call__(self) -> None:
        action, self._action = self._action, None
        if action is not None:
            action()


