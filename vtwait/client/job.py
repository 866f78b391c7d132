"""Job handles: what ``client.submit(...)`` returns (``Job``; ``AsyncJob`` on asyncio).

    job = api.submit(delay=5, deadline=600)
    job.add_done_callback(lambda status: print(job.id, status.result))
    status = job.result(timeout=60)            # the final JobStatus, or WaitTimeout
    path = job.download("out.mp4")             # verified, then renamed into place

    job = await api.submit(delay=5)            # asyncio: the same, awaited
    status = await job                         # or: await job.result(timeout=60)

A handle remembers the last status it saw; ``done()`` asks nothing. Callbacks are called once,
with the final status, also when the job had already ended. The sync client waits for every
pending callback of one client from one thread (:class:`CallbackWaiter`: the client's batch wait,
one event stream for all of them, restarted when a job is added), never a thread per job; the
asyncio client from one task. A callback that raises is logged and does not stop the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import vtwait.client._threads as threads
from vtwait.core.batch import ManyJobs, unique_job_ids
from vtwait.core.dialects import JobRef
from vtwait.core.download import DownloadProgress
from vtwait.core.errors import BatchError, VideoTranslationError, WaitTimeout
from vtwait.core.lifecycle import JobOutput, output_of
from vtwait.core.planner import JobWait
from vtwait.core.status import JobStatus

if TYPE_CHECKING:
    import os

    from vtwait.client._threads import Transport
    from vtwait.client.aio_lifecycle import AsyncLifecycle
    from vtwait.client.sync_lifecycle import SyncLifecycle

__all__ = ["CALLBACK_ROUND", "AsyncJob", "CallbackWaiter", "Job"]

logger = logging.getLogger(__name__)

#: Seconds one round of the callback waiter lasts at most (a job added meanwhile starts the next
#: round at once).
CALLBACK_ROUND = 300.0

Callback = Callable[[JobStatus], Any]


class _Handle:
    """What both handles share: the id, the last status seen, the callbacks (called once)."""

    def __init__(self, job_id: str, status: JobStatus | None = None) -> None:
        self.id = job_id
        self._status = status
        self._final: JobStatus | None = None
        self._callbacks: list[Callback] = []
        self._lock = threading.Lock()
        if status is not None:
            self._record(status)

    def __repr__(self) -> str:
        state = self._status.phase or self._status.result.value if self._status else "started"
        return f"<{type(self).__name__} {self.id} {state}>"

    @property
    def last_status(self) -> JobStatus | None:
        """The last status this handle saw (None: none yet)."""
        return self._status

    @property
    def output(self) -> JobOutput | None:
        """The output announced by the last status seen (None: not completed, or none yet)."""
        return output_of(self._status)

    def done(self) -> bool:
        """True once this handle has seen a final status (no request is made)."""
        return self._final is not None

    def _add_callback(self, fn: Callback) -> JobStatus | None:
        """Keep ``fn`` for the end; the final status instead, when it is known already."""
        with self._lock:
            if self._final is None:
                self._callbacks.append(fn)
                return None
            return self._final

    def _record_timeout(self, timeout: WaitTimeout) -> None:
        """Remember what a given-up wait saw: the cancel's final answer, else the last status."""
        seen = timeout.cancel_status or timeout.last_status
        if seen is not None:
            self._record(seen)

    def _record(self, status: JobStatus) -> None:
        """Remember a status; the first final one calls the callbacks."""
        with self._lock:
            self._status = status
            if not status.done or self._final is not None:
                return
            self._final = status
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            _call(fn, status)


def _call(fn: Callback, status: JobStatus) -> None:
    try:
        fn(status)
    except Exception:  # a caller's callback: logged, never stops the others
        logger.exception("job %s: done callback %r raised", status.job_id, fn)


class Job(_Handle):
    """A job started by :meth:`VideoTranslationClient.submit` (or ``client.job(job_id)``)."""

    def __init__(self, client: SyncLifecycle, job_id: str,
                 status: JobStatus | None = None) -> None:
        self._client = client
        super().__init__(job_id, status)

    @property
    def ref(self) -> JobRef:
        """Where the client asks about this job (the status monitor its start answer named):
        save ``ref.to_dict()`` to resume the wait in another process."""
        return self._client.job_ref(self.id)

    def status(self) -> JobStatus:
        """One status request; the status."""
        status = self._client.get_status(self.id)
        self._record(status)
        return status

    def result(self, timeout: float | None = None, *,
               cancel_on_timeout: bool | None = None) -> JobStatus:
        """Wait for the final status (at once if known); see ``wait_for_completion``.

        Raises:
            WaitTimeout: not final within ``timeout`` (``cancelled`` says whether the job was
                cancelled, with ``cancel_on_timeout``).
        """
        if self._final is not None:
            return self._final
        try:
            status = self._client.wait_for_completion(self.id, timeout=timeout,
                                                      cancel_on_timeout=cancel_on_timeout)
        except WaitTimeout as exc:
            self._record_timeout(exc)
            raise
        self._record(status)
        return status

    def cancel(self) -> JobStatus:
        """Cancel the job; its final status (``phase == "canceled"`` unless it had ended)."""
        status = self._client.cancel(self.id)
        self._record(status)
        return status

    def add_done_callback(self, fn: Callback) -> None:
        """Call ``fn(final_status)`` once the job ends (now, if it has ended)."""
        final = self._add_callback(fn)
        if final is not None:
            _call(fn, final)
        else:
            self._client._callback_waiter().watch(self)

    def download(self, path: str | os.PathLike[str], *,
                 on_progress: Callable[[DownloadProgress], Any] | None = None) -> Path:
        """Download the output to ``path`` (see :meth:`VideoTranslationClient.download`)."""
        return self._client.download(self, path, on_progress=on_progress)


class AsyncJob(_Handle):
    """A job started by :meth:`AsyncVideoTranslationClient.submit`; ``await job`` is
    ``await job.result()``."""

    def __init__(self, client: AsyncLifecycle, job_id: str,
                 status: JobStatus | None = None) -> None:
        self._client = client
        super().__init__(job_id, status)

    @property
    def ref(self) -> JobRef:
        """Where the client asks about this job (the status monitor its start answer named):
        save ``ref.to_dict()`` to resume the wait in another process."""
        return self._client.job_ref(self.id)

    async def status(self) -> JobStatus:
        """One status request; the status."""
        status = await self._client.get_status(self.id)
        self._record(status)
        return status

    async def result(self, timeout: float | None = None, *,
                     cancel_on_timeout: bool | None = None) -> JobStatus:
        """Wait for the final status (at once if known); see ``Job.result``."""
        if self._final is not None:
            return self._final
        try:
            status = await self._client.wait_for_completion(self.id, timeout=timeout,
                                                            cancel_on_timeout=cancel_on_timeout)
        except WaitTimeout as exc:
            self._record_timeout(exc)
            raise
        self._record(status)
        return status

    def __await__(self) -> Generator[Any, None, JobStatus]:
        return self.result().__await__()

    async def cancel(self) -> JobStatus:
        """Cancel the job; its final status."""
        status = await self._client.cancel(self.id)
        self._record(status)
        return status

    def add_done_callback(self, fn: Callback) -> None:
        """Call ``fn(final_status)`` once the job ends (soon, if it has ended): from the client's
        one watcher task, on the running loop."""
        final = self._add_callback(fn)
        if final is not None:
            asyncio.get_running_loop().call_soon(_call, fn, final)
        else:
            self._client._callback_watcher().watch(self)

    async def download(self, path: str | os.PathLike[str], *,
                       on_progress: Callable[[DownloadProgress], Any] | None = None) -> Path:
        """Download the output to ``path`` (see ``VideoTranslationClient.download``)."""
        return await self._client.download(self, path, on_progress=on_progress)


class CallbackWaiter:
    """The one thread of a sync client that waits for every job with a pending callback.

    Each round is one batch wait (:func:`vtwait.client._threads.as_completed`: an event stream
    for all of the round's jobs, or the per-job fallback) of at most :data:`CALLBACK_ROUND`
    seconds. A job added meanwhile interrupts the round (its stream is shut, so the wait wakes)
    and the next round takes every pending job in. The thread ends when no job is left.
    """

    def __init__(self, client: SyncLifecycle, *, round_seconds: float = CALLBACK_ROUND):
        self._client = client
        self._round = round_seconds
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._current: _Interruptible | None = None

    def watch(self, job: Job) -> None:
        """Wait for ``job`` (its callbacks are called from this waiter's thread)."""
        with self._lock:
            self._jobs[job.id] = job
            if self._current is not None:
                self._current.interrupt()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="vtwait-callbacks",
                                                daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Stop waiting (the client is closing): pending callbacks are dropped."""
        with self._lock:
            if self._jobs:
                logger.info("client closed: the done callbacks of %d jobs are dropped",
                            len(self._jobs))
            self._jobs = {}
            if self._current is not None:
                self._current.interrupt()

    def _run(self) -> None:
        while True:
            with self._lock:
                self._jobs = {i: j for i, j in self._jobs.items() if not j.done()}
                if not self._jobs:
                    self._thread = self._current = None
                    return
                jobs = dict(self._jobs)
                self._current = transport = _Interruptible(self._client._transport)
            self._one_round(jobs, transport)

    def _one_round(self, jobs: dict[str, Job], transport: _Interruptible) -> None:
        statuses = threads.as_completed(transport, list(jobs), timeout=self._round)
        try:
            for status in statuses:
                jobs[str(status.job_id)]._record(status)
        except WaitTimeout:
            return  # the round's end, or interrupted: the next round
        except BatchError as exc:
            with self._lock:
                for job_id, error in exc.failed.items():
                    logger.warning("job %s: its done callbacks are dropped: %s", job_id, error)
                    self._jobs.pop(job_id, None)
        except VideoTranslationError as exc:  # the server is down or refuses: try again later
            logger.warning("callback waiter: %s; retrying in %g s", exc, _RETRY_PAUSE)
            transport.sleep(_RETRY_PAUSE)
        finally:
            statuses.close()  # type: ignore[attr-defined]  # a generator: its streams close now


#: Seconds the callback waiter pauses after a round failed (server down, say).
_RETRY_PAUSE = 1.0


class _Interruptible:
    """A batch driver's transport (:class:`vtwait.client._threads.Transport`) whose wait can be
    ended from another thread: :meth:`interrupt` makes its clock run out (the deadline is
    reached) and wakes whatever the driver blocks on (its streams' reads, its sleeps)."""

    def __init__(self, inner: Transport) -> None:
        self._inner = inner
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._streams: list[Any] = []

    def interrupt(self) -> None:
        with self._lock:
            self._stopped.set()
            for response in self._streams:
                _shut(response)

    def new_batch(self, job_ids: Iterable[str]) -> ManyJobs:
        return self._inner.new_batch(job_ids)

    def clock(self) -> float:
        return math.inf if self._stopped.is_set() else self._inner.clock()

    def sleep(self, seconds: float) -> None:
        self._stopped.wait(seconds)

    def open_stream(self, params: list[tuple[str, str]], headers: dict[str, str], *,
                    deadline: float) -> Any:
        response = self._inner.open_stream(params, headers, deadline=deadline)
        with self._lock:
            self._streams.append(response)
            if self._stopped.is_set():
                _shut(response)
        return response

    def poll(self, job_id: str, *, deadline: float) -> tuple[JobStatus, float, float]:
        return self._inner.poll(job_id, deadline=deadline)

    def get_status(self, job_id: str) -> JobStatus:
        return self._inner.get_status(job_id)

    def new_wait(self, job_id: str, *, started: float, timeout: float) -> JobWait:
        return self._inner.new_wait(job_id, started=started, timeout=timeout)

    def observe_final(self, status: JobStatus, *, waited: float) -> None:
        self._inner.observe_final(status, waited=waited)


def _shut(response: Any) -> None:
    """Wake a read blocked on a streamed response (as the stream reader's own close does)."""
    with contextlib.suppress(ValueError, RuntimeError, OSError, AttributeError):
        response.raw.shutdown()


class AsyncCallbackWatcher:
    """The asyncio twin of :class:`CallbackWaiter`: one task per client; a job added during a
    round cancels the round, and the next takes every pending job in."""

    def __init__(self, client: AsyncLifecycle, *,
                 round_seconds: float = CALLBACK_ROUND) -> None:
        self._client = client
        self._round = round_seconds
        self._jobs: dict[str, AsyncJob] = {}
        self._task: asyncio.Task[None] | None = None
        self._current: asyncio.Task[None] | None = None

    def watch(self, job: AsyncJob) -> None:
        """Wait for ``job`` (its callbacks are called from this watcher's task)."""
        self._jobs[job.id] = job
        if self._current is not None:
            self._current.cancel()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        """Stop waiting (the client is closing): pending callbacks are dropped."""
        if self._jobs:
            logger.info("client closed: the done callbacks of %d jobs are dropped",
                        len(self._jobs))
        self._jobs = {}
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            self._jobs = {i: j for i, j in self._jobs.items() if not j.done()}
            if not self._jobs:
                return
            self._current = asyncio.get_running_loop().create_task(
                self._one_round(dict(self._jobs)))
            try:
                await self._current
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # this watcher itself is being cancelled
            finally:
                self._current = None

    async def _one_round(self, jobs: dict[str, AsyncJob]) -> None:
        statuses = self._client.as_completed(unique_job_ids(jobs), timeout=self._round,
                                             cancel_on_timeout=False)
        try:
            async for status in statuses:
                jobs[str(status.job_id)]._record(status)
        except WaitTimeout:
            return
        except BatchError as exc:
            for job_id, error in exc.failed.items():
                logger.warning("job %s: its done callbacks are dropped: %s", job_id, error)
                self._jobs.pop(job_id, None)
        except VideoTranslationError as exc:
            logger.warning("callback watcher: %s; retrying in %g s", exc, _RETRY_PAUSE)
            await asyncio.sleep(_RETRY_PAUSE)
        finally:
            await statuses.aclose()  # type: ignore[attr-defined]
