"""The asyncio client on aiohttp: the same API and decisions as the sync client, another transport.

    from vtwait.client.sync import AsyncVideoTranslationClient
    async with AsyncVideoTranslationClient("http://127.0.0.1:8000") as api:
        results = await api.wait_many(await api.start_jobs(500))   # {job_id: JobStatus}

Every decision comes from the sans-IO core the sync client uses: :class:`~vtwait.core.planner.JobWait`
(one job's wait: when to ask, sleep or stop), :class:`~vtwait.core.batch.ManyJobs` (event streams,
fallback, unknown jobs, deadline), :class:`~vtwait.core.retry.RetryState` (transient faults:
urllib3's schedule, ``Retry-After`` honoured, never past the deadline),
:class:`~vtwait.core.ratelimit.RatePacer` (one rate-limit budget for every task of the client; no
lock needed on one event loop) and :class:`~vtwait.core.sse.SSEParser`. This module only moves
bytes and sleeps. aiohttp, not httpx: thousands of held long-polls cost
httpx's ``AsyncClient`` ~25x the CPU (encode/httpx issue 3215). All durations are in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
import os
import random
import time
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, Self

import aiohttp
from multidict import CIMultiDictProxy

import vtwait.client._tasks as _tasks
from vtwait.client.aio_lifecycle import AsyncLifecycle
from vtwait.client.base import (
    STREAM_READ_TIMEOUT,
    BatchAdapter,
    ClientConfig,
    job_start_body,
    start_body,
    started_ids,
)
from vtwait.client.history import DurationHistory
from vtwait.client.tracing import ClientTracing
from vtwait.core.batch import unique_job_ids
from vtwait.core.batch_state import BatchState
from vtwait.core.dialects import JobRef, StatusReader
from vtwait.core.errors import (
    ServerUnreachableError,
    VideoTranslationError,
    WaitTimeout,
)
from vtwait.core.planner import Done, JobWait, Sleep, Step
from vtwait.core.policy import (
    DEFAULT_BASE_URL,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    PollingPolicy,
    RetryPolicy,
    require,
)
from vtwait.core.quiet import RepeatedWarnings
from vtwait.core.retry import RetryState, error_for_answer, error_message, is_transient
from vtwait.core.starts import batch_limit, batch_start_body, offers_batch, read_batch_answer
from vtwait.core.status import JobStatus, decode_json

__all__ = ["AsyncVideoTranslationClient"]

logger = logging.getLogger(__name__)

#: Starts in flight at once in :meth:`AsyncVideoTranslationClient.start_jobs`.
DEFAULT_START_CONCURRENCY = 64
# Errors that mean "no answer" (retried like the sync client's connection errors and timeouts).
_NO_ANSWER = _tasks.NO_ANSWER
# Client middlewares (each request of a redirect chain) came with aiohttp 3.12.
_HAS_MIDDLEWARES = "middlewares" in inspect.signature(aiohttp.ClientSession).parameters


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str | None = None  #: where it came from (after redirects)


class AsyncVideoTranslationClient(AsyncLifecycle):
    """Starts video-translation jobs and waits for their final status, on asyncio.

    Takes the arguments of :class:`client.VideoTranslationClient`; differences: ``session`` is an
    ``aiohttp.ClientSession``, ``auth`` a ``(user, password)`` pair, ``sleep`` a coroutine function,
    ``connection_limit`` bounds open connections (0: none; many held long-polls need many), and
    ``trace_configs`` are aiohttp ``TraceConfig`` objects for the session it makes (to observe its
    requests); ``cancel_on_timeout`` is the sync client's. Use it as ``async with``, or call
    :meth:`close`. Every optional argument's None means its default.
    """

    def __init__(self, base_url: str | None = DEFAULT_BASE_URL, username: str | None = None,
                 password: str | None = None, *, auth: tuple[str, str] | None = None,
                 policy: PollingPolicy | None = None, retry: RetryPolicy | None = None,
                 wait_timeout: float | None = DEFAULT_WAIT_TIMEOUT,
                 request_timeout: tuple[float, float] | None = DEFAULT_REQUEST_TIMEOUT,
                 status_url: str | None = "/status/{job_id}",
                 single_status_url: str | None = "/status", start_url: str | None = "/start",
                 cancel_url: str | None = "/status/{job_id}/cancel",
                 session: aiohttp.ClientSession | None = None,
                 respect_rate_limits: bool | None = True,
                 clock: Callable[[], float] | None = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] | None = asyncio.sleep,
                 rng: random.Random | None = None, connection_limit: int | None = 0,
                 trace_configs: Sequence[aiohttp.TraceConfig] | None = (),
                 history_path: str | os.PathLike[str] | None = None,
                 history: DurationHistory | None = None, cancel_on_timeout: bool | None = False,
                 bearer_token: str | None = None, api_key: str | None = None,
                 api_key_header: str | None = None, status_reader: StatusReader | None = None,
                 tracer_provider: Any = None):
        config = ClientConfig.from_args(
            base_url, username, password, auth=auth, policy=policy, retry=retry,
            wait_timeout=wait_timeout, request_timeout=request_timeout, status_url=status_url,
            single_status_url=single_status_url, start_url=start_url, cancel_url=cancel_url,
            respect_rate_limits=respect_rate_limits, clock=clock, rng=rng,
            bearer_token=bearer_token, api_key=api_key, api_key_header=api_key_header,
            status_reader=status_reader, tracer_provider=tracer_provider)
        connection_limit = 0 if connection_limit is None else connection_limit
        trace_configs = () if trace_configs is None else trace_configs
        require(connection_limit >= 0, "connection_limit", connection_limit, "must be >= 0")
        super().__init__(config, history=history, history_path=history_path)  # one pacer: no lock
        self.cancel_on_timeout = bool(cancel_on_timeout)
        self._sleep = asyncio.sleep if sleep is None else sleep
        self._connection_limit = connection_limit
        self._trace_configs = [_headers_sent_trace(), *trace_configs]
        auth = config.auth
        # aiohttp 3.14 deprecates BasicAuth objects; the header it recommends instead:
        self._auth_header = aiohttp.encode_basic_auth(*auth) if auth is not None else None
        # A bearer token or API key goes on each hop (redirects too) to base_url's origin only:
        # a client middleware (aiohttp >= 3.12) on the session this client makes; else headers.
        self._credential_middleware = bool(self._credentials.headers) and session is None \
            and _HAS_MIDDLEWARES
        self._owns_session = session is None
        self._session = session
        self._transport = _Transport(self)  # what the batch tasks (_tasks.py) use
        # One line per kind of transient fault, then a count (a storm of 503s is one line).
        self._fault_warnings = RepeatedWarnings(logger)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections this client opened (and stop waiting for done callbacks)."""
        self._stop_callbacks()
        self._fault_warnings.flush(self._clock())
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session (made on first use, inside the running loop)."""
        if self._session is None:
            extra: dict[str, Any] = {}
            if self._credential_middleware:
                extra["middlewares"] = (self._add_credentials,)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connection_limit, limit_per_host=0),
                headers={"Accept": "application/json"}, trace_configs=self._trace_configs,
                **extra)
        return self._session

    # ------------------------------------------------------------------------------ public API
    async def start_job(self, delay: float | None = None, outcome: str | None = None, *,
                        callback_url: str | None = None, callback_id: str | None = None) -> str:
        """Start a job and return its id (see ``VideoTranslationClient.start_job``)."""
        ticket = await self._pace(math.inf)  # before sent_at: a pacing sleep is not the start's
        sent_at = self._clock()
        answer = await self._send("POST", self.base_url + self.start_url,
                                  json=start_body(delay, outcome, callback_url, callback_id),
                                  headers={"Idempotency-Key": uuid.uuid4().hex}, ticket=ticket)
        received_at = self._clock()
        document = _json(answer, job_id=None)
        start_url = answer.url or self.base_url + self.start_url
        job_id = self._start_ref(document, answer.headers, answer.status, start_url).job_id
        logger.info("started job %s", job_id)
        self._note_start(job_id, document, answer.headers.get("Retry-After"), sent_at,
                         received_at, start_url)
        return job_id

    async def start_jobs(self, count: int, *, delay: float | None = None,
                         outcome: str | None = None,
                         concurrency: int = DEFAULT_START_CONCURRENCY) -> list[str]:
        """Start ``count`` jobs; their ids in order (see :meth:`start_many`)."""
        require(isinstance(count, int) and count >= 0, "count", count, "must be an int >= 0")
        return await self.start_many([{"delay": delay, "outcome": outcome}] * count,
                                     concurrency=concurrency)

    async def start_many(self, jobs: Iterable[Mapping[str, Any]], *,
                         concurrency: int = DEFAULT_START_CONCURRENCY) -> list[str]:
        """Start one job per mapping of :meth:`start_job`'s arguments; their ids, in order.

        Batches of ``batch_start_size`` jobs, one after another, when the server offers
        ``POST /start/batch``; else one request per job, at most ``concurrency`` at a time (see
        ``VideoTranslationClient.start_many``).

        Raises:
            StartBatchError: some jobs could not be started; the others were (``job_ids``).
            TypeError: a mapping holds a key :meth:`start_job` does not take.
        """
        require(concurrency >= 1, "concurrency", concurrency, "must be >= 1")
        bodies = [job_start_body(job) for job in jobs]
        job_ids: list[str | None] = [None] * len(bodies)
        failed: dict[int, VideoTranslationError] = {}
        offset = 0
        while offset < len(bodies):
            if self._batch_start_offered is False:
                await self._start_each(bodies, offset, concurrency, job_ids, failed)
                break
            chunk = bodies[offset:offset + self.batch_start_size]
            if await self._start_batch(chunk, offset, job_ids, failed):
                offset += len(chunk)
        return started_ids(job_ids, failed)

    async def get_status(self, job_id: str | JobRef | None = None) -> JobStatus:
        """One status request. ``job_id=None`` asks the server's single-job ``GET /status``."""
        return (await self._poll(self._job_key(job_id), None, math.inf))[0]

    async def cancel(self, job_id: str | JobRef) -> JobStatus:
        """Cancel a queued or running job; its final status (see ``VideoTranslationClient.cancel``:
        a job that had already ended returns its final status, 404 is JobNotFoundError)."""
        job_id = self.track(job_id) if isinstance(job_id, JobRef) else job_id
        answer = await self._send("POST", self._cancel_url(job_id), job_id=job_id, accept=(409,))
        document = _json(answer, job_id=job_id) if answer.body.strip() else None
        status = self._cancel_answer(job_id, document, answer.headers, answer.status,
                                     observe=False, url=answer.url)
        if status is None or not status.done:
            return await self.wait_for_completion(job_id)
        await self._observe_final_off_loop(job_id, status)
        return status

    async def wait_for_completion(self, job_id: str | JobRef | None = None, *,
                                  timeout: float | None = None, max_attempts: int | None = None,
                                  on_update: Callable[[JobStatus], None] | None = None,
                                  cancel_on_timeout: bool | None = None) -> JobStatus:
        """Wait until the job is ``completed`` or ``error`` and return that final status.

        Same arguments, decisions and errors as ``VideoTranslationClient.wait_for_completion``.
        """
        job_id = self._job_key(job_id)
        try:
            return await self._wait_for_completion(job_id, timeout=timeout,
                                                   max_attempts=max_attempts, on_update=on_update)
        except WaitTimeout as exc:
            if job_id is None or not self._cancel_on(cancel_on_timeout):
                raise
            raise await self._cancel_after_timeout(exc, [job_id]) from None

    async def _wait_for_completion(self, job_id: str | None, *, timeout: float | None,
                                   max_attempts: int | None,
                                   on_update: Callable[[JobStatus], None] | None) -> JobStatus:
        wait = self._new_wait(job_id, started=self._clock(),
                              timeout=self._checked_timeout(timeout),
                              max_attempts=self._checked_max_attempts(max_attempts),
                              on_update=on_update)
        if self._tracing is None:
            done = await self._wait_one(wait)
        else:
            with self._tracing.wait(job_id, wait) as span:
                done = await self._wait_one(wait)
                span.done(done.status)
        await self._observe_final_off_loop(job_id, done.status,
                                           waited=done.received_at - wait.started,
                                           received_at=done.received_at)
        return done.status

    async def as_completed(self, job_ids: Iterable[str], *, timeout: float | None = None,
                           cancel_on_timeout: bool | None = None) -> AsyncIterator[JobStatus]:
        """Yield each job's final status the moment this client learns of it.

        Same strategy and errors as ``VideoTranslationClient.as_completed``; per-job waits (a
        server without ``/events``) are one task per job, each long-polling. Stop early with
        ``contextlib.aclosing`` so the streams close at once.
        """
        statuses = self._as_completed(job_ids, timeout=self._checked_timeout(timeout))
        async with contextlib.aclosing(statuses):  # an early stop closes the streams at once
            try:
                async for status in statuses:
                    yield status
            except WaitTimeout as exc:
                if not self._cancel_on(cancel_on_timeout):
                    raise
                raise await self._cancel_after_timeout(exc, list(exc.pending)) from None

    async def wait_many(self, job_ids: Iterable[str], *, timeout: float | None = None,
                        cancel_on_timeout: bool | None = None) -> dict[str, JobStatus]:
        """Wait for every job; ``{job_id: final JobStatus}`` in the order given."""
        ids = unique_job_ids(job_ids)
        ended = {status.job_id: status async for status in self.as_completed(
            ids, timeout=timeout, cancel_on_timeout=cancel_on_timeout)}
        return {job_id: ended[job_id] for job_id in ids}

    # -------------------------------------------------------------------------------- internals
    async def _observe_final_off_loop(self, job_id: str | None, status: JobStatus, *,
                                      waited: float | None = None,
                                      received_at: float | None = None) -> None:
        """``_observe_final``; a history on disk commits from a worker thread, not on the event
        loop (a SQLite commit may wait up to ``HISTORY_LOCK_TIMEOUT`` for another process)."""
        received_at = self._clock() if received_at is None else received_at
        observe = functools.partial(self._observe_final, job_id, status, waited=waited,
                                    received_at=received_at)
        if self._history.on_disk:
            await asyncio.get_running_loop().run_in_executor(None, observe)
        else:
            observe()

    async def _wait_one(self, wait: JobWait, *,
                        on_sent: Callable[[], None] | None = None) -> Done:
        """Drive one job's :class:`JobWait` on this transport until it is done.

        ``on_sent`` is called once the first request is on the wire (or has failed).
        """
        step: Step = wait.next(self._clock())
        while not isinstance(step, Done):
            if isinstance(step, Sleep):
                await self._sleep(step.delay)
                step = wait.next(self._clock())
                continue
            try:
                status, sent_at, received_at = await self._poll(wait.job_id, step.wait,
                                                                wait.deadline, on_sent=on_sent)
            except VideoTranslationError as exc:
                step = wait.on_failure(exc, now=self._clock())
            else:
                step = wait.on_answer(status, asked_wait=step.wait, sent_at=sent_at,
                                      received_at=received_at, now=self._clock())
            finally:
                if on_sent is not None:
                    on_sent()
                    on_sent = None
        return step

    async def _poll(self, job_id: str | None, wait: int | None, deadline: float, *,
                    on_sent: Callable[[], None] | None = None) -> tuple[JobStatus, float, float]:
        headers, params, read = self._status_request(wait)
        ticket = await self._pace(deadline)  # before sent_at: a pacing sleep is no server hold
        sent_at = self._clock()
        answer = await self._send("GET", self._status_url(job_id), headers=headers,
                                  params=params, job_id=job_id, read_timeout=read,
                                  deadline=deadline, on_sent=on_sent, ticket=ticket)
        received_at = self._clock()
        return self._read_status(_json(answer, job_id=job_id), answer.headers,
                                 job_id, answer.url), sent_at, received_at

    async def _start_each(self, bodies: list[dict[str, Any] | None], offset: int,
                          concurrency: int, job_ids: list[str | None],
                          failed: dict[int, VideoTranslationError]) -> None:
        """One ``POST /start`` per job from ``offset`` on, ``concurrency`` at a time."""
        gate = asyncio.Semaphore(concurrency)

        async def start(index: int) -> None:
            async with gate:
                try:
                    job_ids[index] = await self.start_job(**(bodies[index] or {}))
                except VideoTranslationError as exc:
                    failed[index] = exc

        await asyncio.gather(*(start(index) for index in range(offset, len(bodies))))

    async def _start_batch(self, bodies: list[dict[str, Any] | None], offset: int,
                           job_ids: list[str | None],
                           failed: dict[int, VideoTranslationError]) -> bool:
        """One ``POST /start/batch``; False when it started nothing (no route, or a lower cap:
        the caller goes on one job at a time, or in smaller batches)."""
        ticket = await self._pace(math.inf)
        sent_at = self._clock()
        url = self.base_url + self.start_batch_url
        answer = await self._send(
            "POST", url, json=batch_start_body(bodies, [uuid.uuid4().hex for _ in bodies]),
            ticket=ticket, accept=(400, 404, 405))
        received_at = self._clock()
        if not offers_batch(answer.status):
            logger.info("no batch start at %s: one request per job", self.start_batch_url)
            self._batch_start_offered = False
            return False
        limit = batch_limit(answer.status, answer.headers)
        if limit is not None and limit < len(bodies):
            self.batch_start_size = limit
            return False
        if answer.status == 400:
            raise error_for_answer("POST", url, 400, error_message(answer.body, ""), job_id=None)
        self._batch_start_offered = True
        started = read_batch_answer(_json(answer, job_id=None), count=len(bodies))
        self._note_batch(started, offset, sent_at, received_at, job_ids, failed)
        return True

    async def _pace(self, deadline: float, not_before: float = -math.inf) -> int | None:
        """Sleep until the next request may go (the rate limit) and book it; its ticket.

        ``not_before``: this task has slept until then already (a sleep that returns early, in
        tests, never makes it sleep the same hold twice).
        """
        if self._pacer is None:
            return None
        while True:
            now = max(self._clock(), not_before)
            ticket, delay = self._pacing_delay(now, deadline)
            if delay > 0:
                await self._sleep(delay)
                not_before = now + delay
            if ticket is not None:
                return ticket

    def _observe(self, headers: Any, status: int | None, ticket: int | None) -> float | None:
        """Tell the pacer what an answer said (None: no answer); a 429 holds every task back.

        Returns:
            The 429's hold in seconds, if any.
        """
        if self._pacer is None:
            return None
        limit, hold = self._rate_limit_answer(headers, status)
        now = self._clock()
        self._pacer.observe(limit, ticket=ticket, at=now)
        if hold is not None:
            self._pacer.throttle(now + hold)
        return hold

    async def _send(self, method: str, url: str, *, job_id: str | None = None,
                    read_timeout: float | None = None, deadline: float = math.inf,
                    stream: bool = False, on_sent: Callable[[], None] | None = None,
                    accept: tuple[int, ...] = (), ticket: int | None = None,
                    **kwargs: Any) -> Any:
        """One request with the transient retries; an _Answer (or, ``stream``: the response).

        Every attempt is paced by the rate limit first (the first one's booking may be passed in:
        ``ticket``), and every answer is fed back to the pacer. ``on_sent`` is called when the
        request's headers are on the wire (the session's trace). Codes in ``accept`` are answers,
        not errors.

        Raises:
            The client's exception for an error answer, like the sync client's ``_send``.
        """
        connect, read = self.request_timeout
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect,
                                        sock_read=read if read_timeout is None else read_timeout)
        retries = RetryState(self.retry, rng=self._rng)
        if self._auth_header is not None:
            kwargs["headers"] = {**kwargs.get("headers", {}), "Authorization": self._auth_header}
        elif self._credentials.headers and not self._credential_middleware:
            kwargs["headers"] = {**kwargs.get("headers", {}),
                                 **self._credentials.headers_for(url)}
        if on_sent is not None:
            kwargs["trace_request_ctx"] = _SentHook(on_sent)
        slept_until = -math.inf
        while True:
            if ticket is None:
                ticket = await self._pace(deadline, slept_until)
            try:
                response = await self._request(method, url, retries.retries, timeout, kwargs)
            except _NO_ANSWER as exc:
                self._observe(None, None, ticket)
                delay = retries.after_fault(time_left=deadline - self._clock())
                if delay is None:
                    raise ServerUnreachableError(
                        f"{method} {url}: no answer from the server after {retries.retries} "
                        f"retries ({type(exc).__name__}); is it running?", job_id=job_id) from exc
                fault = type(exc).__name__
            else:
                self._observe(response.headers, response.status, ticket)
                if stream and response.status < 400:
                    return response
                try:
                    body = await response.read()
                except _NO_ANSWER as exc:
                    response.release()
                    delay = retries.after_fault(time_left=deadline - self._clock())
                    if delay is None:
                        raise ServerUnreachableError(f"{method} {url}: the answer broke off "
                                                     f"({type(exc).__name__})",
                                                     job_id=job_id) from exc
                    fault = type(exc).__name__
                else:
                    answer = _Answer(response.status, response.headers, body, str(response.url))
                    if answer.status < 400 or answer.status in accept:
                        return answer
                    if not is_transient(answer.status):
                        raise self._error(method, url, answer, job_id, retries)
                    delay = retries.after_fault(status=answer.status, headers=answer.headers,
                                                time_left=deadline - self._clock())
                    if delay is None:
                        raise self._error(method, url, answer, job_id, retries)
                    fault = f"HTTP {answer.status}"
            self._fault_warnings.warning(fault, self._clock(),
                                         "transient fault (%s); retrying in %.3f s", fault, delay)
            ticket = None  # the retry is booked like any request
            if delay > 0:
                slept_until = self._clock() + delay
                await self._sleep(delay)

    async def _request(self, method: str, url: str, attempt: int, timeout: aiohttp.ClientTimeout,
                       kwargs: dict[str, Any]) -> aiohttp.ClientResponse:
        """One attempt on the session (``attempt``: the retries before it); a ``CLIENT`` span
        around it (until the answer's headers), whose ``traceparent`` goes along, when tracing."""
        tracing = self._tracing
        if tracing is None:
            return await self.session.request(method, url, timeout=timeout, **kwargs)
        headers = dict(kwargs.get("headers") or {})
        span = tracing.start_request(method, url, headers, attempt)
        try:
            response = await self.session.request(method, url, timeout=timeout,
                                                  **{**kwargs, "headers": headers})
        except BaseException as exc:
            tracing.end_request(span, None, exc)
            raise
        tracing.end_request(span, response.status)
        return response

    def _as_completed(self, job_ids: Iterable[str], *, timeout: float,
                      state: BatchState | None = None) -> AsyncGenerator[JobStatus, None]:
        """The batch tasks' ``as_completed`` on this client; when tracing, under a ``wait batch``
        span that is the parent of every request they send."""
        if self._tracing is None:
            return _tasks.as_completed(self._transport, job_ids, timeout=timeout, state=state)
        job_ids = unique_job_ids(job_ids)
        traced = _TracedTransport(self._transport, self._tracing, len(job_ids))
        return traced.run(_tasks.as_completed(traced, job_ids, timeout=timeout, state=state))

    async def _add_credentials(self, request: Any, handler: Any) -> Any:
        """The session's middleware: each hop's credential headers, by its origin."""
        for name in self._credentials.headers:
            request.headers.popall(name, None)
        request.headers.update(self._credentials.headers_for(str(request.url)))
        return await handler(request)

    @staticmethod
    def _error(method: str, url: str, answer: _Answer, job_id: str | None,
               retries: RetryState) -> VideoTranslationError:
        return error_for_answer(method, url, answer.status, error_message(answer.body),
                                job_id=job_id, retries=retries.retries)


class _Transport(BatchAdapter[AsyncVideoTranslationClient]):
    """The client as its batch tasks use it (:class:`vtwait.client._tasks.AsyncTransport`)."""

    async def sleep(self, seconds: float) -> None:
        await self._client._sleep(seconds)

    async def open_stream(self, params: list[tuple[str, str]], headers: dict[str, str], *,
                          deadline: float) -> aiohttp.ClientResponse:
        client = self._client
        response: aiohttp.ClientResponse = await client._send(
            "GET", client.base_url + client.events_url, params=params, headers=headers,
            stream=True, read_timeout=STREAM_READ_TIMEOUT, deadline=deadline)
        return response

    async def get_status(self, job_id: str) -> JobStatus:
        return await self._client.get_status(job_id)

    def new_wait(self, job_id: str, *, started: float, timeout: float) -> JobWait:
        return self._client._new_wait(job_id, started=started, timeout=timeout)

    async def wait_one(self, wait: JobWait, *,
                       on_sent: Callable[[], None] | None = None) -> Done:
        return await self._client._wait_one(wait, on_sent=on_sent)

    async def observe_final(self, status: JobStatus, *, waited: float) -> None:
        await self._client._observe_final_off_loop(status.job_id, status, waited=waited)


class _TracedTransport:
    """A batch's transport when tracing: the client's, under the batch's ``wait batch`` span
    (its tasks' requests are the span's children; each job's end is an event on it)."""

    def __init__(self, inner: _tasks.AsyncTransport, tracing: ClientTracing, jobs: int) -> None:
        self._inner, self._tracing = inner, tracing
        self.span = tracing.start_batch(jobs)

    def __getattr__(self, name: str) -> Any:  # new_batch, clock, sleep, new_wait: as they are
        return getattr(self._inner, name)

    async def open_stream(self, params: list[tuple[str, str]], headers: dict[str, str], *,
                          deadline: float) -> aiohttp.ClientResponse:
        with self._tracing.activate(self.span):
            return await self._inner.open_stream(params, headers, deadline=deadline)

    async def get_status(self, job_id: str) -> JobStatus:
        with self._tracing.activate(self.span):
            return await self._inner.get_status(job_id)

    async def wait_one(self, wait: JobWait, *,
                       on_sent: Callable[[], None] | None = None) -> Done:
        with self._tracing.activate(self.span):
            return await self._inner.wait_one(wait, on_sent=on_sent)

    async def observe_final(self, status: JobStatus, *, waited: float) -> None:
        self._tracing.job_ended(self.span, status)
        await self._inner.observe_final(status, waited=waited)

    async def run(self, statuses: AsyncGenerator[JobStatus, None]
                  ) -> AsyncGenerator[JobStatus, None]:
        """``statuses`` as they come; the span ends with them (marked by what ended them)."""
        error: BaseException | None = None
        try:
            async for status in statuses:
                yield status
        except GeneratorExit:  # the caller stopped early: no failure
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            await statuses.aclose()
            self._tracing.end_batch(self.span, error)


@dataclass(frozen=True)
class _SentHook:
    """The ``trace_request_ctx`` of a request whose sending someone waits for."""

    on_sent: Callable[[], None]


def _headers_sent_trace() -> aiohttp.TraceConfig:
    """A trace that calls a request's ``_SentHook`` once its headers are on the wire."""

    async def on_headers_sent(session: Any, context: Any, params: Any) -> None:
        hook = context.trace_request_ctx
        if isinstance(hook, _SentHook):
            hook.on_sent()

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(on_headers_sent)
    return trace


def _json(answer: _Answer, *, job_id: str | None) -> Any:
    return decode_json(answer.body, status_code=answer.status,
                       content_type=answer.headers.get("Content-Type"), job_id=job_id)
