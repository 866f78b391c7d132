"""The sync client's job life beyond the wait: submit, run, download, list, resume a batch.

    job = api.submit(delay=5, deadline=600)            # a Job handle (vtwait.client.job)
    status = api.run(delay=1, timeout=60)              # start and wait in one held request
    api.download(job, "out.mp4", on_progress=print)    # verified, resumable, then renamed
    for status in api.jobs(result="completed"): ...    # GET /jobs, following the cursor
    for status in api.watch_batch(state): ...          # a batch resumed from a BatchState

:class:`SyncLifecycle` is a part of :class:`~vtwait.client.sync.VideoTranslationClient` (a mixin
on its transport: ``_send``, ``_pace``, ``_nap``); every decision comes from the core
(:mod:`vtwait.core.lifecycle`, :mod:`vtwait.core.download`, :mod:`vtwait.core.batch_state`), shared
with the asyncio client. All durations are in seconds.
"""

from __future__ import annotations

import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

import vtwait.client._threads as threads
from vtwait.client.base import ClientBase, start_body
from vtwait.client.job import CallbackWaiter, Job
from vtwait.core.batch_state import BatchState
from vtwait.core.dialects import JobRef
from vtwait.core.download import Action, Download, DownloadProgress, Step, error_code
from vtwait.core.errors import (
    UnsupportedFeatureError,
    VideoTranslationError,
    WaitTimeout,
)
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
    from vtwait.client._threads import Transport

__all__ = ["DOWNLOAD_CHUNK", "SyncLifecycle"]

logger = logging.getLogger(__name__)

#: Bytes read from an output's body at a time.
DOWNLOAD_CHUNK = 1 << 16
#: Where the server lists jobs (``GET /jobs``).
JOBS_URL = "/jobs"


class _NoAuth(requests.auth.AuthBase):
    """No credentials: an output URL is presigned, and may live on another host."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


class SyncLifecycle(ClientBase):
    """Job handles, one-call runs, deadlines, outputs, listing and batch resume (sync)."""

    if TYPE_CHECKING:  # the transport's part, in VideoTranslationClient
        session: requests.Session
        _transport: Transport

        def _send(self, method: str, url: str, *, job_id: str | None = None,
                  accept: tuple[int, ...] = (), paced: bool = False, deadline: float = math.inf,
                  **kwargs: Any) -> requests.Response: ...

        def _pace(self, deadline: float = math.inf) -> None: ...

        def _nap(self, seconds: float) -> None: ...

        def get_status(self, job_id: str | None = None) -> JobStatus: ...

        def cancel(self, job_id: str) -> JobStatus: ...

        def wait_for_completion(self, job_id: str | None = None, *,
                                timeout: float | None = None, max_attempts: int | None = None,
                                on_update: Callable[[JobStatus], None] | None = None,
                                cancel_on_timeout: bool | None = None) -> JobStatus: ...

        def as_completed(self, job_ids: Iterable[str], *, timeout: float | None = None,
                         cancel_on_timeout: bool | None = None) -> Iterator[JobStatus]: ...

    #: Cancel the server's job when a wait gives up (each wait may say otherwise).
    cancel_on_timeout = False
    jobs_url = JOBS_URL
    #: Seconds a download waits for a completed job's output to appear (the late-output race).
    output_wait = OUTPUT_WAIT
    _waiter: CallbackWaiter | None = None

    # ---------------------------------------------------------------------- start and run
    def submit(self, delay: float | None = None,
               outcome: str | None = None, *, deadline: float | None = None,
               callback_url: str | None = None, callback_id: str | None = None) -> Job:
        """Start a job; its :class:`~vtwait.client.job.Job` handle.

        Args:
            delay, outcome, callback_url, callback_id: As :meth:`start_job` takes them.
            deadline: Seconds after which the server cancels the job if it has not ended
                (``Cancel-After``; its final document says ``cancel_reason: "deadline"``).
        """
        answer = self._start(delay, outcome, callback_url, callback_id, hold=0,
                             deadline=deadline)
        return Job(self, answer.job_id, answer.final)

    def job(self, job_id: str | JobRef) -> Job:
        """A handle on a job started elsewhere (no request is made); a :class:`JobRef` (saved
        by another process, say) is asked about at its status monitor."""
        return Job(self, self.track(job_id) if isinstance(job_id, JobRef) else job_id)

    def run(self, delay: float | None = None, outcome: str | None = None,
            *, timeout: float | None = None, deadline: float | None = None,
            cancel_on_timeout: bool | None = None, callback_url: str | None = None,
            callback_id: str | None = None,
            on_update: Callable[[JobStatus], None] | None = None) -> JobStatus:
        """Start a job and wait for its final status, in one request when the job ends within
        the server's hold (``Prefer: wait``); else the wait goes on as ``wait_for_completion``.

        A server that ignores the preference costs one more request, nothing else.

        Raises:
            WaitTimeout: as ``wait_for_completion`` (with ``cancel_on_timeout``, the job is
                cancelled and ``cancelled`` says whether that took).
        """
        timeout = self._checked_timeout(timeout)
        started = self._clock()
        hold = start_hold(timeout, self.policy.max_long_poll) if self.policy.long_poll else 0
        answer = self._start(delay, outcome, callback_url, callback_id, hold=hold,
                             deadline=deadline)
        if answer.final is not None:
            if on_update is not None:
                on_update(answer.final)
            return answer.final
        left = timeout - (self._clock() - started)
        return self.wait_for_completion(answer.job_id, timeout=max(left, 1e-3),
                                        cancel_on_timeout=cancel_on_timeout, on_update=on_update)

    def _start(self, delay: float | None, outcome: str | None,
               callback_url: str | None, callback_id: str | None, *, hold: int,
               deadline: float | None) -> StartAnswer:
        headers = {"Idempotency-Key": uuid.uuid4().hex,
                   **start_headers(hold=hold, deadline=deadline)}
        self._pace()  # before sent_at: a pacing sleep is not part of the start
        sent_at = self._clock()
        connect, read = self.request_timeout
        response = self._send("POST", self.base_url + self.start_url,
                              json=start_body(delay, outcome, callback_url, callback_id),
                              headers=headers, timeout=(connect, read + hold), paced=True)
        received_at = self._clock()
        document = _json(response, None)
        start_url = response.url or self.base_url + self.start_url
        ref = self._start_ref(document, response.headers, response.status_code, start_url)
        answer = read_start_answer(response.status_code, document, response.headers,
                                   job_id=ref.job_id)
        logger.info("started job %s%s", answer.job_id, " (ended within the held start)"
                    if answer.final else "")
        if answer.final is None:
            self._note_start(answer.job_id, document, response.headers.get("Retry-After"),
                             sent_at, received_at, start_url)
        else:  # it ran within the hold: its duration is below the round trip
            self._learner.note_start(answer.job_id, None, sent_at=sent_at, received_at=sent_at)
            self._observe_final(answer.job_id, answer.final, received_at=received_at)
        return answer

    # ------------------------------------------------------------------ cancel on timeout
    def _cancel_on(self, cancel_on_timeout: bool | None) -> bool:
        return self.cancel_on_timeout if cancel_on_timeout is None else bool(cancel_on_timeout)

    def _cancel_after_timeout(self, timeout: WaitTimeout,
                              job_ids: list[str]) -> WaitTimeout:
        """Cancel the jobs a wait gave up on; ``timeout`` says whether that took."""
        outcomes: dict[str, JobStatus | VideoTranslationError] = {}
        for job_id in job_ids:
            try:
                response = self._send("POST", self._cancel_url(job_id), job_id=job_id,
                                      accept=(409,), timeout=self.request_timeout)
                status = self._cancel_answer(job_id, _json(response, job_id), response.headers,
                                             response.status_code, url=response.url)
                # A cancel that answers no status (AIP-151's {}): ask where the job is now.
                outcomes[job_id] = status if status is not None else self.get_status(job_id)
            except VideoTranslationError as exc:
                outcomes[job_id] = exc
        return record_cancel(timeout, outcomes)

    # ------------------------------------------------------------------------- callbacks
    def _stop_callbacks(self) -> None:
        """Called by ``close()``: the callback waiter's thread ends."""
        if self._waiter is not None:
            self._waiter.stop()

    def _callback_waiter(self) -> CallbackWaiter:
        if self._waiter is None:
            self._waiter = CallbackWaiter(self)
        return self._waiter

    # ----------------------------------------------------------------------------- listing
    def jobs(self, result: str | None = None, phase: str | None = None,
             *, page_size: int | None = JOBS_PAGE_SIZE) -> Iterator[JobStatus]:
        """Every job the server keeps, newest first (``GET /jobs``, following its cursor).

        Args:
            result: Only jobs with this result (``pending``, ``completed``, ``error``).
            phase: Only jobs in this phase (``queued``, ``running``, ``completed``, ...).
            page_size: Jobs per request.

        Raises:
            UnsupportedFeatureError: the server has no ``GET /jobs``.
        """
        cursor: str | None = None
        url = self.base_url + self.jobs_url
        limit = JOBS_PAGE_SIZE if page_size is None else page_size
        while True:
            response = self._send("GET", url, params=jobs_query(
                result=None if result is None else str(result), phase=phase, limit=limit,
                cursor=cursor), accept=(404, 405), timeout=self.request_timeout)
            if response.status_code in (404, 405):
                raise UnsupportedFeatureError(
                    f"GET {url}: HTTP {response.status_code}: this server cannot list jobs",
                    feature="GET /jobs", status_code=response.status_code)
            page = read_jobs_page(_json(response, None))
            yield from page.statuses
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # ------------------------------------------------------------------------ batch resume
    def watch_batch(self, state: BatchState, *,
                    timeout: float | None = None) -> Iterator[JobStatus]:
        """Yield the final status of each job of ``state`` still pending, as it ends, keeping
        ``state`` current (save ``state.to_json()`` whenever; a new process resumes from it).

        Jobs that ended while nobody watched are learned from the event stream (its log from
        ``state.last_event_id``, then a snapshot), not by one status request each. Raises as
        :meth:`as_completed`.
        """
        pending = state.pending
        if not pending:
            return iter(())
        return _recording(threads.as_completed(self._transport, pending,
                                               timeout=self._checked_timeout(timeout),
                                               state=state), state)

    # ---------------------------------------------------------------------------- download
    def download(self, job_or_id: Job | str,
                 path: str | os.PathLike[str], *,
                 on_progress: Callable[[DownloadProgress], Any] | None = None,
                 timeout: float | None = None) -> Path:
        """Download a job's output to ``path``; the path.

        Waits for the job to end first if it has not (``timeout``), and for a completed job's
        output to appear. Streams into a temporary file beside ``path``; resumes with ``Range``
        after a dropped connection; reads the status again for a fresh URL when the old one is
        refused (expired); renames the file into place only when its size and SHA-256 are the
        server's. ``on_progress(DownloadProgress)`` is called after each chunk.

        Raises:
            NoOutputError: the job ended in error or was cancelled.
            ChecksumMismatchError: the bytes are not the announced ones (nothing is kept).
            UnsupportedFeatureError: the server announces no output for a completed job.
            WaitTimeout: the job did not end within ``timeout``.
        """
        job_id = job_or_id.id if isinstance(job_or_id, Job) else str(job_or_id)
        status = job_or_id.last_status if isinstance(job_or_id, Job) else None
        if status is None or not status.done:
            status = self.wait_for_completion(job_id, timeout=timeout)
        output = self._output(job_id, status)
        plan = Download(output, job_id=job_id)
        target = Path(path)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with open(partial, "wb") as file:
                step = Step(Action.RETRY)
                while step.action is not Action.DONE:
                    if step.action is Action.FAIL:
                        assert step.error is not None
                        raise step.error
                    if step.action is Action.REFRESH:
                        plan.on_refreshed(self._output(job_id, self.get_status(job_id)))
                    elif step.delay > 0:
                        self._nap(step.delay)
                    step = self._download_once(plan, file, on_progress)
            plan.verify()
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        logger.info("job %s: output saved to %s (%d bytes, %d resumes)", job_id, target,
                    plan.written, plan.progress.resumes)
        return target

    def _output(self, job_id: str, status: JobStatus) -> JobOutput:
        """The job's output, waiting out the late-output race (:class:`OutputWait`)."""
        wait = OutputWait(job_id, limit=self.output_wait)
        while True:
            found = wait.on_status(status, wall_now=time.time())
            if isinstance(found, JobOutput):
                return found
            if found > 0:
                self._nap(found)
            status = self.get_status(job_id)

    def _download_once(self, plan: Download, file: Any,
                       on_progress: Callable[[DownloadProgress], Any] | None) -> Step:
        """One request for the output (from where the file stands); the next step."""
        headers = {"Accept": "*/*", **plan.request_headers()}
        try:
            response = self.session.get(plan.output.url, headers=headers, stream=True,
                                        auth=_NoAuth(), timeout=self.request_timeout)
        except requests.RequestException as exc:
            logger.debug("job %s: output request failed: %s", plan.job_id, exc)
            return plan.on_drop()
        with response:
            code = response.status_code
            step = plan.on_answer(code, response.headers,
                                  error_code=error_code(response.content) if code >= 400 else None)
            if step.action is not Action.WRITE:
                return step
            file.seek(step.offset)
            file.truncate()
            try:
                for chunk in response.iter_content(DOWNLOAD_CHUNK):
                    file.write(chunk)
                    plan.on_data(chunk)
                    if on_progress is not None:
                        on_progress(plan.progress)
            except requests.RequestException as exc:
                logger.debug("job %s: output body broke off: %s", plan.job_id, exc)
                return plan.on_drop()
        return plan.on_body_end()


def _recording(statuses: Iterator[JobStatus], state: BatchState) -> Iterator[JobStatus]:
    """``statuses``, each recorded in ``state`` as handed out just before it is yielded."""
    for status in statuses:
        state.record(status)
        yield status


def _json(response: requests.Response, job_id: str | None) -> Any:
    return decode_json(response.content, status_code=response.status_code,
                       content_type=response.headers.get("Content-Type"), job_id=job_id)

