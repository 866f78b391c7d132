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
an event stream for all of them, in rounds), never a thread per job; the asyncio client from one
task. A callback that raises is logged and does not stop the others.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vtwait.core.batch import unique_job_ids
from vtwait.core.download import DownloadProgress
from vtwait.core.errors import BatchError, VideoTranslationError, WaitTimeout
from vtwait.core.lifecycle import JobOutput, output_of
from vtwait.core.status import JobStatus

if TYPE_CHECKING:
    import os

    from vtwait.client.aio_lifecycle import AsyncLifecycle
    from vtwait.client.sync_lifecycle import SyncLifecycle

__all__ = ["CALLBACK_ROUND", "AsyncJob", "CallbackWaiter", "Job"]

logger = logging.getLogger(__name__)

#: Seconds one round of the callback waiter waits for its jobs before it takes in the jobs whose
#: callbacks were added since (at once, when one of its jobs ends first).
CALLBACK_ROUND = 2.0

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

    Each round is one batch wait (``as_completed``: an event stream for all of them) of at most
    :data:`CALLBACK_ROUND` seconds; jobs added meanwhile join the next round, which starts at
    once when one of the round's jobs ends. The thread ends when no job is left.
    """

    def __init__(self, client: SyncLifecycle, *, round_seconds: float = CALLBACK_ROUND):
        self._client = client
        self._round = round_seconds
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._added = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, job: Job) -> None:
        """Wait for ``job`` (its callbacks are called from this waiter's thread)."""
        with self._lock:
            self._jobs[job.id] = job
            self._added.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="vtwait-callbacks",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                self._jobs = {i: j for i, j in self._jobs.items() if not j.done()}
                if not self._jobs:
                    self._thread = None
                    return
                jobs = dict(self._jobs)
                self._added.clear()
            self._one_round(jobs)

    def _one_round(self, jobs: dict[str, Job]) -> None:
        statuses = self._client.as_completed(list(jobs), timeout=self._round,
                                             cancel_on_timeout=False)
        try:
            for status in statuses:
                jobs[str(status.job_id)]._record(status)
                if self._added.is_set():
                    return  # take the new jobs in now
        except WaitTimeout:
            return
        except BatchError as exc:
            self._drop(exc.failed)
        except VideoTranslationError as exc:  # the server is down or refuses: try again later
            logger.warning("callback waiter: %s; retrying in %g s", exc, self._round)
            self._added.wait(self._round)
        finally:
            close = getattr(statuses, "close", None)  # a generator: stop its streams now
            if close is not None:
                close()

    def _drop(self, failed: dict[str, VideoTranslationError]) -> None:
        with self._lock:
            for job_id, error in failed.items():
                logger.warning("job %s: its done callbacks are dropped: %s", job_id, error)
                self._jobs.pop(job_id, None)


class AsyncCallbackWatcher:
    """The asyncio twin of :class:`CallbackWaiter`: one task per client, in rounds."""

    def __init__(self, client: AsyncLifecycle, *,
                 round_seconds: float = CALLBACK_ROUND) -> None:
        self._client = client
        self._round = round_seconds
        self._jobs: dict[str, AsyncJob] = {}
        self._added = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def watch(self, job: AsyncJob) -> None:
        """Wait for ``job`` (its callbacks are called from this watcher's task)."""
        self._jobs[job.id] = job
        self._added.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self._jobs = {i: j for i, j in self._jobs.items() if not j.done()}
            if not self._jobs:
                return
            jobs = dict(self._jobs)
            self._added.clear()
            await self._one_round(jobs)

    async def _one_round(self, jobs: dict[str, AsyncJob]) -> None:
        statuses = self._client.as_completed(unique_job_ids(jobs), timeout=self._round,
                                             cancel_on_timeout=False)
        try:
            async for status in statuses:
                jobs[str(status.job_id)]._record(status)
                if self._added.is_set():
                    return
        except WaitTimeout:
            return
        except BatchError as exc:
            for job_id, error in exc.failed.items():
                logger.warning("job %s: its done callbacks are dropped: %s", job_id, error)
                self._jobs.pop(job_id, None)
        except VideoTranslationError as exc:
            logger.warning("callback watcher: %s; retrying in %g s", exc, self._round)
            try:
                await asyncio.wait_for(self._added.wait(), self._round)
            except TimeoutError:
                pass
        finally:
            await statuses.aclose()  # type: ignore[attr-defined]
