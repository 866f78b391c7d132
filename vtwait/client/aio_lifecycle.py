"""The asyncio client's job life beyond the wait: the twin of :mod:`vtwait.client.sync_lifecycle`.

    job = await api.submit(delay=5, deadline=600)      # an AsyncJob handle; await job
    status = await api.run(delay=1, timeout=60)        # start and wait in one held request
    await api.download(job, "out.mp4")                 # verified, resumable, then renamed
    async for status in api.jobs(result="completed"): ...
    async for status in api.watch_batch(state): ...

The same decisions as the sync client, from the same core (:mod:`vtwait.core.lifecycle`,
:mod:`vtwait.core.download`, :mod:`vtwait.core.batch_state`); this module only moves bytes and
sleeps. The file is written from a worker thread only when it is opened or renamed; each chunk's
write is small. All durations are in seconds.
"""

from __future__ import annotations

import logging
import math
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

import vtwait.client._tasks as _tasks
from vtwait.client.base import ClientBase, start_body
from vtwait.client.job import AsyncCallbackWatcher, AsyncJob
from vtwait.client.sync_lifecycle import DOWNLOAD_CHUNK, JOBS_URL
from vtwait.core.batch_state import BatchState
from vtwait.core.dialects import JobRef
from vtwait.core.download import Action, Download, DownloadProgress, Step, error_code
from vtwait.core.errors import UnsupportedFeatureError, VideoTranslationError, WaitTimeout
from vtwait.core.lifecycle import (
    JOBS_PAGE_SIZE,
    OUTPUT_WAIT,
    JobOutput,
    OutputWait,
    StartAnswer,
    jobs_query,
    read_jobs_page,
    read_start_answer,
    record_cancel,
    start_headers,
    start_hold,
)
from vtwait.core.status import JobStatus, decode_json

if TYPE_CHECKING:
    from vtwait.client._tasks import AsyncTransport

__all__ = ["AsyncLifecycle"]

logger = logging.getLogger(__name__)


class AsyncLifecycle(ClientBase):
    """Job handles, one-call runs, deadlines, outputs, listing and batch resume (asyncio)."""

    #: Cancel the server's job when a wait gives up (each wait may say otherwise).
    cancel_on_timeout = False
    jobs_url = JOBS_URL
    #: Seconds a download waits for a completed job's output to appear (the late-output race).
    output_wait = OUTPUT_WAIT
    _watcher: AsyncCallbackWatcher | None = None

    if TYPE_CHECKING:  # the transport's part, in AsyncVideoTranslationClient
        _transport: AsyncTransport
        _sleep: Callable[[float], Awaitable[Any]]

        @property
        def session(self) -> aiohttp.ClientSession: ...

        async def _send(self, method: str, url: str, *, job_id: str | None = None,
                        read_timeout: float | None = None, deadline: float = math.inf,
                        stream: bool = False, on_sent: Callable[[], None] | None = None,
                        accept: tuple[int, ...] = (), ticket: int | None = None,
                        **kwargs: Any) -> Any: ...

        async def _pace(self, deadline: float, not_before: float = -math.inf) -> int | None: ...

        async def _observe_final_off_loop(self, job_id: str | None, status: JobStatus, *,
                                          waited: float | None = None,
                                          received_at: float | None = None) -> None: ...

        async def get_status(self, job_id: str | None = None) -> JobStatus: ...

        async def cancel(self, job_id: str) -> JobStatus: ...

        async def wait_for_completion(self, job_id: str | None = None, *,
                                      timeout: float | None = None,
                                      max_attempts: int | None = None,
                                      on_update: Callable[[JobStatus], None] | None = None,
                                      cancel_on_timeout: bool | None = None) -> JobStatus: ...

        def as_completed(self, job_ids: Iterable[str], *, timeout: float | None = None,
                         cancel_on_timeout: bool | None = None) -> AsyncIterator[JobStatus]: ...

    # ---------------------------------------------------------------------- start and run
    async def submit(self, delay: float | None = None, outcome: str | None = None, *,
                     deadline: float | None = None, callback_url: str | None = None,
                     callback_id: str | None = None) -> AsyncJob:
        """Start a job; its :class:`~vtwait.client.job.AsyncJob` (see the sync ``submit``)."""
        answer = await self._start(delay, outcome, callback_url, callback_id, hold=0,
                                   deadline=deadline)
        return AsyncJob(self, answer.job_id, answer.final)

    def job(self, job_id: str | JobRef) -> AsyncJob:
        """A handle on a job started elsewhere (no request is made); a :class:`JobRef` (saved
        by another process, say) is asked about at its status monitor."""
        return AsyncJob(self, self.track(job_id) if isinstance(job_id, JobRef) else job_id)

    async def run(self, delay: float | None = None, outcome: str | None = None, *,
                  timeout: float | None = None, deadline: float | None = None,
                  cancel_on_timeout: bool | None = None, callback_url: str | None = None,
                  callback_id: str | None = None,
                  on_update: Callable[[JobStatus], None] | None = None) -> JobStatus:
        """Start a job and wait for its final status (see the sync ``run``)."""
        timeout = self._checked_timeout(timeout)
        started = self._clock()
        hold = start_hold(timeout, self.policy.max_long_poll) if self.policy.long_poll else 0
        answer = await self._start(delay, outcome, callback_url, callback_id, hold=hold,
                                   deadline=deadline)
        if answer.final is not None:
            if on_update is not None:
                on_update(answer.final)
            return answer.final
        left = timeout - (self._clock() - started)
        return await self.wait_for_completion(answer.job_id, timeout=max(left, 1e-3),
                                              cancel_on_timeout=cancel_on_timeout,
                                              on_update=on_update)

    async def _start(self, delay: float | None, outcome: str | None, callback_url: str | None,
                     callback_id: str | None, *, hold: int,
                     deadline: float | None) -> StartAnswer:
        headers = {"Idempotency-Key": uuid.uuid4().hex,
                   **start_headers(hold=hold, deadline=deadline)}
        ticket = await self._pace(math.inf)
        sent_at = self._clock()
        answer = await self._send("POST", self.base_url + self.start_url,
                                  json=start_body(delay, outcome, callback_url, callback_id),
                                  headers=headers, ticket=ticket,
                                  read_timeout=self.request_timeout[1] + hold)
        received_at = self._clock()
        document = decode_json(answer.body, status_code=answer.status,
                               content_type=answer.headers.get("Content-Type"), job_id=None)
        start_url = answer.url or self.base_url + self.start_url
        ref = self._start_ref(document, answer.headers, answer.status, start_url)
        start = read_start_answer(answer.status, document, answer.headers, job_id=ref.job_id)
        logger.info("started job %s%s", start.job_id, " (ended within the held start)"
                    if start.final else "")
        if start.final is None:
            self._note_start(start.job_id, document, answer.headers.get("Retry-After"), sent_at,
                             received_at, start_url)
        else:
            self._learner.note_start(start.job_id, None, sent_at=sent_at, received_at=sent_at)
            await self._observe_final_off_loop(start.job_id, start.final,
                                               received_at=received_at)
        return start

    # ------------------------------------------------------------------ cancel on timeout
    def _cancel_on(self, cancel_on_timeout: bool | None) -> bool:
        return self.cancel_on_timeout if cancel_on_timeout is None else bool(cancel_on_timeout)

    async def _cancel_after_timeout(self, timeout: WaitTimeout,
                                    job_ids: list[str]) -> WaitTimeout:
        """Cancel the jobs a wait gave up on; ``timeout`` says whether that took."""
        outcomes: dict[str, JobStatus | VideoTranslationError] = {}
        for job_id in job_ids:
            try:
                answer = await self._send("POST", self._cancel_url(job_id), job_id=job_id,
                                          accept=(409,))
                document = decode_json(answer.body, status_code=answer.status,
                                       content_type=answer.headers.get("Content-Type"),
                                       job_id=job_id)
                status = self._cancel_answer(job_id, document, answer.headers, answer.status,
                                             observe=False, url=answer.url)
                # A cancel that answers no status (AIP-151's {}): ask where the job is now.
                outcomes[job_id] = status if status is not None else await self.get_status(
                    job_id)
            except VideoTranslationError as exc:
                outcomes[job_id] = exc
        return record_cancel(timeout, outcomes)

    def _stop_callbacks(self) -> None:
        """Called by ``close()``: the callback watcher's task is cancelled."""
        if self._watcher is not None:
            self._watcher.stop()

    def _callback_watcher(self) -> AsyncCallbackWatcher:
        if self._watcher is None:
            self._watcher = AsyncCallbackWatcher(self)
        return self._watcher

    # ----------------------------------------------------------------------------- listing
    async def jobs(self, result: str | None = None, phase: str | None = None, *,
                   page_size: int | None = JOBS_PAGE_SIZE) -> AsyncIterator[JobStatus]:
        """Every job the server keeps, newest first (see the sync ``jobs``)."""
        cursor: str | None = None
        url = self.base_url + self.jobs_url
        limit = JOBS_PAGE_SIZE if page_size is None else page_size
        while True:
            answer = await self._send("GET", url, params=jobs_query(
                result=None if result is None else str(result), phase=phase, limit=limit,
                cursor=cursor), accept=(404, 405))
            if answer.status in (404, 405):
                raise UnsupportedFeatureError(
                    f"GET {url}: HTTP {answer.status}: this server cannot list jobs",
                    feature="GET /jobs", status_code=answer.status)
            page = read_jobs_page(decode_json(answer.body, status_code=answer.status,
                                              content_type=answer.headers.get("Content-Type"),
                                              job_id=None))
            for status in page.statuses:
                yield status
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # ------------------------------------------------------------------------ batch resume
    async def watch_batch(self, state: BatchState, *,
                          timeout: float | None = None) -> AsyncIterator[JobStatus]:
        """Yield the final status of each job of ``state`` still pending (see the sync
        ``watch_batch``), keeping ``state`` current."""
        pending = state.pending
        if not pending:
            return
        statuses = _tasks.as_completed(self._transport, pending,
                                       timeout=self._checked_timeout(timeout), state=state)
        try:
            async for status in statuses:
                state.record(status)
                yield status
        finally:
            await statuses.aclose()

    # ---------------------------------------------------------------------------- download
    async def download(self, job_or_id: AsyncJob | str, path: str | os.PathLike[str], *,
                       on_progress: Callable[[DownloadProgress], Any] | None = None,
                       timeout: float | None = None) -> Path:
        """Download a job's output to ``path`` (see the sync ``download``)."""
        job_id = job_or_id.id if isinstance(job_or_id, AsyncJob) else str(job_or_id)
        status = job_or_id.last_status if isinstance(job_or_id, AsyncJob) else None
        if status is None or not status.done:
            status = await self.wait_for_completion(job_id, timeout=timeout)
        plan = Download(await self._output(job_id, status), job_id=job_id)
        target = Path(path)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with open(partial, "wb") as file:  # noqa: ASYNC230  (small writes; see the docstring)
                step = Step(Action.RETRY)
                while step.action is not Action.DONE:
                    if step.action is Action.FAIL:
                        assert step.error is not None
                        raise step.error
                    if step.action is Action.REFRESH:
                        plan.on_refreshed(await self._output(job_id,
                                                             await self.get_status(job_id)))
                    elif step.delay > 0:
                        await self._sleep(step.delay)
                    step = await self._download_once(plan, file, on_progress)
            plan.verify()
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        logger.info("job %s: output saved to %s (%d bytes, %d resumes)", job_id, target,
                    plan.written, plan.progress.resumes)
        return target

    async def _output(self, job_id: str, status: JobStatus) -> JobOutput:
        wait = OutputWait(job_id, limit=self.output_wait)
        while True:
            found = wait.on_status(status, wall_now=time.time())
            if isinstance(found, JobOutput):
                return found
            if found > 0:
                await self._sleep(found)
            status = await self.get_status(job_id)

    async def _download_once(self, plan: Download, file: Any,
                             on_progress: Callable[[DownloadProgress], Any] | None) -> Step:
        headers = {"Accept": "*/*", **plan.request_headers()}
        connect, read = self.request_timeout
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)
        try:
            response = await self.session.get(plan.output.url, headers=headers, timeout=timeout)
        except _tasks.NO_ANSWER as exc:
            logger.debug("job %s: output request failed: %s", plan.job_id, exc)
            return plan.on_drop()
        async with response:
            code = response.status
            body = await _read_error(response) if code >= 400 else b""
            step = plan.on_answer(code, response.headers,
                                  error_code=error_code(body) if code >= 400 else None)
            if step.action is not Action.WRITE:
                return step
            file.seek(step.offset)
            file.truncate()
            try:
                async for chunk in response.content.iter_chunked(DOWNLOAD_CHUNK):
                    file.write(chunk)
                    plan.on_data(chunk)
                    if on_progress is not None:
                        on_progress(plan.progress)
            except _tasks.NO_ANSWER as exc:
                logger.debug("job %s: output body broke off: %s", plan.job_id, exc)
                return plan.on_drop()
        return plan.on_body_end()


async def _read_error(response: aiohttp.ClientResponse) -> bytes:
    try:
        return await response.read()
    except _tasks.NO_ANSWER:
        return b""
