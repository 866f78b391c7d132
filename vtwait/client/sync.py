"""Client for the video-translation backend: start a job, learn the moment it is done.

    from vtwait.client.sync import VideoTranslationClient
    with VideoTranslationClient("http://127.0.0.1:8000", username="admin", password="...") as api:
        status = api.wait_for_completion(api.start_job())   # status.result: completed | error

How the wait decides when to ask again, per answer, in this order of preference:

1. **Long-poll.** Every status request carries ``Prefer: wait=N`` (RFC 7240) and ``?wait=N``. A
   server that holds the request answers the moment the job ends: one request, one round trip. A
   server that ignores both answers at once and costs nothing extra.
2. **Server hints.** ``eta_seconds`` in the body (precise) or ``Retry-After`` (whole seconds). The
   first long ETA gets one check-in halfway, which measures how fast the server's ETA really runs
   against our clock; the next ask lands just after the job ends instead of up to the ETA's error late.
3. **The learned schedule** when the server says nothing (``vtwait.core.learned``): once the
   route has shown ``PollingPolicy.learn_after`` (20) jobs, ask where their durations say a job has
   likely ended, ``learned_budget`` (3.5) requests per job on average. ``history_path=`` keeps
   what was learned in a SQLite file.
4. **Exponential backoff with jitter** before that, and for a job that outlives every job seen
   (:class:`PollingPolicy`): 1 s growing x1.3 up to 20 s, each delay shortened by up to 20 % at
   random.

The wait itself is :class:`vtwait.core.planner.JobWait`, a state machine shared with the asyncio
client: this module sends what it asks and sleeps what it says. Transient faults (connection
refused or reset, read timeouts, 429, 502, 503, 504) are retried in :meth:`_send` on the schedule of
:class:`vtwait.core.retry.RetryState` (the asyncio client's too), honouring ``Retry-After``; its
sleeps use the injected sleep function and never pass the wait's deadline. A poll that still fails
is an unanswered poll: the wait goes on until its deadline.

Rate limits: every request of one client instance, from every thread, is paced by one
:class:`~vtwait.core.ratelimit.RatePacer` fed with the servers' ``RateLimit``/``X-RateLimit-*``
fields, so that the quota is not run out; a 429 holds every request back until the server's
``Retry-After`` (or reset). A ``Retry-After`` beside quota left is the limiter's window, not a poll
hint.

All durations are in seconds. The exceptions are drawn in :mod:`vtwait.core.errors`.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

import vtwait.client._threads as threads
from vtwait.client.base import (
    STREAM_READ_TIMEOUT,
    BatchAdapter,
    ClientConfig,
    job_start_body,
    start_body,
    started_ids,
)
from vtwait.client.credentials import Credentials
from vtwait.client.history import DurationHistory
from vtwait.client.sync_lifecycle import SyncLifecycle
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

__all__ = ["TranslationStatusClient", "VideoTranslationClient"]

logger = logging.getLogger(__name__)

# What a request raises when no answer (or only part of one) came: retried as transient.
_NO_ANSWER = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)



class VideoTranslationClient(SyncLifecycle):
    """Starts video-translation jobs and waits for their final status.

    Args:
        base_url: The server, e.g. ``http://127.0.0.1:8000``.
        username, password: HTTP Basic credentials; default to ``API_USERNAME`` / ``API_PASSWORD``.
        auth: Anything ``requests`` takes as ``auth`` (overrides username and password).
        policy: How to wait (:class:`PollingPolicy`).
        retry: How to retry transient faults (:class:`RetryPolicy`).
        wait_timeout: Default deadline of :meth:`wait_for_completion`.
        request_timeout: (connect, read) timeout of one request.
        status_url: Template of a job's status URL; ``{job_id}`` is filled in (URL-quoted).
        single_status_url: The single-job status URL, used when no job id is given.
        start_url: Where ``start_job`` posts.
        cancel_url: Template of the URL ``cancel`` posts to; ``{job_id}`` is filled in.
        session: A ``requests.Session`` to use instead of a new one. Its adapters are kept, with
            whatever retries they make: the client retries transient faults itself only on the
            session it makes.
        respect_rate_limits: Pace requests by the server's rate-limit fields (one budget for
            every thread using this client) and hold them all back after a 429.
        history_path: SQLite file where the learned job durations are kept across runs and shared
            with other processes; None keeps them in memory for this client's life.
        history: A :class:`DurationHistory` to share between clients (overrides history_path).
        cancel_on_timeout: Cancel the server's job when a wait gives up (each wait's own
            ``cancel_on_timeout`` overrides it); the ``WaitTimeout`` says whether that took.
        clock, sleep, rng: Injected for tests: a monotonic clock, a sleep function, a Random.
        bearer_token: Send ``Authorization: Bearer <token>`` (default ``API_BEARER_TOKEN``).
        api_key: Send this key in the header ``api_key_header`` (default ``X-Api-Key``; the
            environment's ``API_KEY`` and ``API_KEY_HEADER``). One credential scheme per client;
            a bearer token or API key goes only to ``base_url``'s origin.
        status_reader: How to read status answers of an API no built-in dialect reads: a
            :class:`StatusMapping` or a callable from the decoded answer to a JobStatus.

    The status monitor a start answer names (``Operation-Location``, ``Location`` on a 201 or
    202, a link in the body) is where the job is asked about, unless ``status_url`` is given;
    ``job_ref(job_id)`` tells where that is. Every optional argument's None means its default.
    """

    def __init__(self, base_url: str | None = DEFAULT_BASE_URL, username: str | None = None,
                 password: str | None = None, *, auth: Any = None,
                 policy: PollingPolicy | None = None, retry: RetryPolicy | None = None,
                 wait_timeout: float | None = DEFAULT_WAIT_TIMEOUT,
                 request_timeout: tuple[float, float] | None = DEFAULT_REQUEST_TIMEOUT,
                 status_url: str | None = "/status/{job_id}",
                 single_status_url: str | None = "/status", start_url: str | None = "/start",
                 cancel_url: str | None = "/status/{job_id}/cancel",
                 session: requests.Session | None = None,
                 respect_rate_limits: bool | None = True,
                 clock: Callable[[], float] | None = time.monotonic,
                 sleep: Callable[[float], None] | None = time.sleep,
                 rng: random.Random | None = None,
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
        super().__init__(config, history=history, history_path=history_path)
        self.cancel_on_timeout = bool(cancel_on_timeout)
        self._sleep = time.sleep if sleep is None else sleep
        self._pacer_lock = threading.Lock()  # the one pacer's calls come from every thread
        # Per thread: the booking of the request being sent, and when its last sleep ended.
        self._local = threading.local()
        self._transport = _Transport(self)  # what the batch drivers (_threads.py) use
        # One line per kind of transient fault, then a count (a storm of 503s is one line).
        self._fault_warnings = RepeatedWarnings(logger)
        auth = config.auth
        self._owns_session = session is None
        self.session = session or requests.Session()
        if auth is not None:
            self.session.auth = auth
        elif config.credentials.headers:
            self.session.auth = _HeaderAuth(config.credentials)
        if self._owns_session:  # no retries in urllib3: _send retries, on RetryState's schedule
            adapter = HTTPAdapter(max_retries=0, pool_maxsize=32)
            self.session.mount("http://", adapter)
            self.session.mount("https://", adapter)
        self.session.headers.setdefault("Accept", "application/json")

    def __enter__(self) -> VideoTranslationClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections this client opened (and stop waiting for done callbacks)."""
        self._stop_callbacks()
        self._fault_warnings.flush(self._clock())
        if self._owns_session:
            self.session.close()

    # ------------------------------------------------------------------------------ public API
    def start_job(self, delay: float | None = None, outcome: str | None = None, *,
                  callback_url: str | None = None, callback_id: str | None = None) -> str:
        """Start a job and return its id.

        Args:
            delay: Fix the job's duration (a test and demo feature of the simulator).
            outcome: Fix its fate, ``"completed"`` or ``"error"``.
            callback_url: Where the server POSTs the final status, signed (see
                :func:`verify_webhook`).
            callback_id: Your own reference, echoed in the status document and the webhook.

        A fresh ``Idempotency-Key`` goes with each call, so a start that is retried after a dropped
        connection never makes two jobs.
        """
        self._pace()  # before sent_at: a pacing sleep is not part of the start
        sent_at = self._clock()
        response = self._send("POST", self.base_url + self.start_url,
                              json=start_body(delay, outcome, callback_url, callback_id),
                              headers={"Idempotency-Key": uuid.uuid4().hex},
                              timeout=self.request_timeout, paced=True)
        received_at = self._clock()
        document = _json(response, job_id=None)
        job_id = self._start_ref(document, response.headers, response.status_code,
                                 response.url or self.base_url + self.start_url).job_id
        logger.info("started job %s", job_id)
        self._note_start(job_id, document, response.headers.get("Retry-After"), sent_at,
                         received_at, response.url)
        return job_id

    def get_status(self, job_id: str | JobRef | None = None) -> JobStatus:
        """One status request. ``job_id=None`` asks the server's single-job ``GET /status``."""
        return self._poll(self._job_key(job_id), None)[0]

    def cancel(self, job_id: str | JobRef) -> JobStatus:
        """Cancel a queued or running job and return its final status.

        A job that had already ended is no error: the server answers 409 with its document, and
        that final status is returned (``completed`` stays completed). A cancelled job's status
        is an ``error`` result with ``phase == "canceled"``. Should a server answer with a status
        that is not final yet, the cancel is awaited with :meth:`wait_for_completion`.

        Raises:
            JobNotFoundError: the server does not know the job (404).
            InvalidRequestError: the server refused, e.g. 405 from a server without cancel.
        """
        job_id = self.track(job_id) if isinstance(job_id, JobRef) else job_id
        response = self._send("POST", self._cancel_url(job_id), job_id=job_id, accept=(409,),
                              timeout=self.request_timeout)
        document = _json(response, job_id=job_id) if response.content.strip() else None
        status = self._cancel_answer(job_id, document, response.headers, response.status_code,
                                     url=response.url)
        return status if status is not None and status.done else self.wait_for_completion(job_id)

    def wait_for_completion(self, job_id: str | JobRef | None = None, *,
                            timeout: float | None = None, max_attempts: int | None = None,
                            on_update: Callable[[JobStatus], None] | None = None,
                            cancel_on_timeout: bool | None = None) -> JobStatus:
        """Wait until the job is ``completed`` or ``error`` and return that final status.

        An ``error`` result is a normal return. Args: ``timeout`` seconds (default
        ``wait_timeout``; ``math.inf`` to wait forever), ``max_attempts`` status requests (default
        the policy's), ``on_update(status)`` called whenever the result or progress changes,
        ``cancel_on_timeout`` (default: the client's) cancels the job when the wait gives up.
        ``job_id`` may be a :class:`JobRef` (say, saved by another process): it is asked about
        at the ref's status monitor.

        Raises:
            WaitTimeout: the deadline or attempt budget ran out (carries the last status seen;
                ``cancelled`` says whether the cancel took, with ``cancel_on_timeout``).
            JobNotFoundError, AuthenticationError, InvalidRequestError, ProtocolError: as named.
        """
        job_id = self._job_key(job_id)
        try:
            return self._wait_for_completion(job_id, timeout=timeout, max_attempts=max_attempts,
                                             on_update=on_update)
        except WaitTimeout as exc:
            if job_id is None or not self._cancel_on(cancel_on_timeout):
                raise
            raise self._cancel_after_timeout(exc, [job_id]) from None

    def _wait_for_completion(self, job_id: str | None, *, timeout: float | None,
                             max_attempts: int | None,
                             on_update: Callable[[JobStatus], None] | None) -> JobStatus:
        wait = self._new_wait(job_id, started=self._clock(),
                              timeout=self._checked_timeout(timeout),
                              max_attempts=self._checked_max_attempts(max_attempts),
                              on_update=on_update)
        if self._tracing is None:
            return self._drive(wait)
        with self._tracing.wait(job_id, wait) as span:
            status = self._drive(wait)
            span.done(status)
            return status

    def _drive(self, wait: JobWait) -> JobStatus:
        """Drive one job's wait to its final status, on this thread."""
        job_id = wait.job_id
        step: Step = wait.next(wait.started)
        while not isinstance(step, Done):
            if isinstance(step, Sleep):
                self._nap(step.delay)
                step = wait.next(self._clock())
                continue
            try:
                status, sent_at, received_at = self._poll(job_id, step.wait, wait.deadline)
            except VideoTranslationError as exc:
                step = wait.on_failure(exc, now=self._clock())
            else:
                step = wait.on_answer(status, asked_wait=step.wait, sent_at=sent_at,
                                      received_at=received_at, now=self._clock())
        self._observe_final(job_id, step.status, waited=step.received_at - wait.started,
                            received_at=step.received_at)
        return step.status

    # --------------------------------------------------------------------------- many jobs
    def as_completed(self, job_ids: Iterable[str], *, timeout: float | None = None,
                     cancel_on_timeout: bool | None = None) -> Iterator[JobStatus]:
        """Yield each job's final status the moment this client learns of it.

        One event stream per 1,000 ids when the server has one (a handful of requests for any
        number of jobs), else per-job waits from one loop and a few threads. Duplicate ids are
        waited for once.

        Args:
            job_ids: The jobs to wait for.
            timeout: Seconds for the whole batch (default ``wait_timeout``).

        Raises:
            WaitTimeout: the deadline passed; ``pending`` names the jobs not final, ``finished``
                holds what ended (statuses already yielded).
            BatchError: after every other job ended, if some could not be waited for
                (``failed``: e.g. JobNotFoundError for a job the server does not know).
            AuthenticationError: the server refused the credentials.
        """
        statuses = self._as_completed(job_ids, timeout=self._checked_timeout(timeout))
        if not self._cancel_on(cancel_on_timeout):
            return statuses
        return self._cancelling_on_timeout(statuses)

    def _cancelling_on_timeout(self, statuses: Iterator[JobStatus]) -> Iterator[JobStatus]:
        try:
            yield from statuses
        except WaitTimeout as exc:
            raise self._cancel_after_timeout(exc, list(exc.pending)) from None

    def wait_many(self, job_ids: Iterable[str], *, timeout: float | None = None,
                  cancel_on_timeout: bool | None = None) -> dict[str, JobStatus]:
        """Wait for every job; ``{job_id: final JobStatus}`` in the order given.

        Raises the same errors as :meth:`as_completed`; they carry what finished.
        """
        ids = unique_job_ids(job_ids)
        ended = {status.job_id: status for status in self.as_completed(
            ids, timeout=timeout, cancel_on_timeout=cancel_on_timeout)}
        return {job_id: ended[job_id] for job_id in ids}

    def start_jobs(self, count: int, *, delay: float | None = None,
                   outcome: str | None = None) -> list[str]:
        """Start ``count`` jobs, each with its own idempotency key; their ids (see
        :meth:`start_many`: batches of ``batch_start_size`` when the server offers them)."""
        require(isinstance(count, int) and count >= 0, "count", count, "must be an int >= 0")
        return self.start_many([{"delay": delay, "outcome": outcome}] * count)

    def start_many(self, jobs: Iterable[Mapping[str, Any]]) -> list[str]:
        """Start one job per mapping of :meth:`start_job`'s arguments; their ids, in order.

        With a server that offers ``POST /start/batch``, up to ``batch_start_size`` jobs go in one
        request (each with its own idempotency key, so a retried batch starts nothing twice);
        with one that does not (404/405, remembered), one request per job.

        Raises:
            StartBatchError: some jobs could not be started; the others were (``job_ids``).
            TypeError: a mapping holds a key :meth:`start_job` does not take.
        """
        bodies = [job_start_body(job) for job in jobs]
        job_ids: list[str | None] = [None] * len(bodies)
        failed: dict[int, VideoTranslationError] = {}
        offset = 0
        while offset < len(bodies):
            if self._batch_start_offered is False:
                for index in range(offset, len(bodies)):
                    try:
                        job_ids[index] = self._start_one(bodies[index])
                    except VideoTranslationError as exc:
                        failed[index] = exc
                break
            chunk = bodies[offset:offset + self.batch_start_size]
            if self._start_batch(chunk, offset, job_ids, failed):
                offset += len(chunk)
        return started_ids(job_ids, failed)

    # -------------------------------------------------------------------------------- internals
    def _as_completed(self, job_ids: Iterable[str], *, timeout: float,
                      state: BatchState | None = None) -> Iterator[JobStatus]:
        """The batch drivers' ``as_completed`` on this client; when tracing, under a
        ``wait batch`` span that is the parent of every request they send (from any thread)."""
        if self._tracing is None:
            return threads.as_completed(self._transport, job_ids, timeout=timeout, state=state)
        job_ids = unique_job_ids(job_ids)
        traced = _TracedTransport(self._transport, self._tracing, len(job_ids))
        return traced.run(threads.as_completed(traced, job_ids, timeout=timeout, state=state))

    def _start_one(self, body: Mapping[str, Any] | None) -> str:
        return self.start_job(**(body or {}))

    def _start_batch(self, bodies: list[dict[str, Any] | None], offset: int,
                     job_ids: list[str | None], failed: dict[int, VideoTranslationError]) -> bool:
        """One ``POST /start/batch``; False when it started nothing (no route, or a lower cap:
        the caller goes on one job at a time, or in smaller batches)."""
        self._pace()
        sent_at = self._clock()
        response = self._send(
            "POST", self.base_url + self.start_batch_url,
            json=batch_start_body(bodies, [uuid.uuid4().hex for _ in bodies]),
            timeout=self.request_timeout, paced=True, accept=(400, 404, 405))
        received_at = self._clock()
        if not offers_batch(response.status_code):
            logger.info("no batch start at %s: one request per job", self.start_batch_url)
            self._batch_start_offered = False
            return False
        limit = batch_limit(response.status_code, response.headers)
        if limit is not None and limit < len(bodies):
            self.batch_start_size = limit
            return False
        if response.status_code == 400:
            raise error_for_answer("POST", response.url, 400,
                                   error_message(response.content, response.reason or ""),
                                   job_id=None)
        self._batch_start_offered = True
        started = read_batch_answer(_json(response, job_id=None), count=len(bodies))
        self._note_batch(started, offset, sent_at, received_at, job_ids, failed)
        return True

    def _nap(self, seconds: float) -> None:
        """Every sleep of the client: the injected sleep, remembered as time that has passed."""
        self._local.awake_at = self._now() + seconds
        self._sleep(seconds)

    def _now(self) -> float:
        """This thread's time for the pacer: at least the end of its last sleep (so a sleep
        function that returns early, as in tests, never makes it sleep the same wait twice)."""
        return max(self._clock(), getattr(self._local, "awake_at", -math.inf))

    def _pace(self, deadline: float = math.inf) -> None:
        """Sleep until this thread's next request may go, and book it; never past ``deadline``."""
        if self._pacer is None:
            return
        while True:
            with self._pacer_lock:
                ticket, delay = self._pacing_delay(self._now(), deadline)
            if delay > 0:
                self._nap(delay)
            if ticket is not None:
                self._local.ticket = ticket
                return

    def _observe(self, headers: Any, status_code: int | None) -> None:
        """Tell the pacer what an answer said (None: no answer at all); a 429 holds all back."""
        if self._pacer is None:
            return
        limit, hold = self._rate_limit_answer(headers, status_code)
        with self._pacer_lock:
            now = self._clock()
            self._pacer.observe(limit, ticket=getattr(self._local, "ticket", None), at=now)
            if hold is not None:
                self._pacer.throttle(now + hold)

    def _poll(self, job_id: str | None, wait: int | None,
              deadline: float = math.inf) -> tuple[JobStatus, float, float]:
        headers, params, read = self._status_request(wait)
        self._pace(deadline)  # before sent_at: a pacing sleep is no hold by the server
        sent_at = self._clock()
        response = self._send("GET", self._status_url(job_id), headers=headers, params=params,
                              timeout=(self.request_timeout[0], read), job_id=job_id, paced=True,
                              deadline=deadline)
        received_at = self._clock()
        return self._read_status(_json(response, job_id=job_id), response.headers,
                                 job_id, response.url), sent_at, received_at

    def _send(self, method: str, url: str, *, job_id: str | None = None,
              accept: tuple[int, ...] = (), paced: bool = False, deadline: float = math.inf,
              **kwargs: Any) -> requests.Response:
        """Every request of the client goes through here; one answer, after the retries.

        Each attempt is paced by the rate limit first (the first one's unless the caller just did:
        ``paced=True``), and its answer (or none) fed back to the pacer. Transient faults are
        retried on :class:`RetryState`'s schedule, never past ``deadline``, on the session this
        client made. An error status is raised as its typed exception, except codes in ``accept``.
        """
        retries = RetryState(self.retry, rng=self._rng) if self._owns_session else None
        attempt = 0  # retries so far
        while True:
            if not paced:
                self._pace(deadline)
            paced = False
            try:
                response = self._request(method, url, attempt, kwargs)
            except _NO_ANSWER as exc:
                self._observe(None, None)
                delay = None
                if retries is not None:
                    delay = retries.after_fault(time_left=deadline - self._clock())
                if delay is None:
                    made = retries.retries if retries else 0
                    raise ServerUnreachableError(
                        f"{method} {url}: no answer from the server after {made} retries "
                        f"({type(exc).__name__}); is it running?", job_id=job_id) from exc
                fault = type(exc).__name__
            except requests.RequestException as exc:
                self._observe(None, None)
                raise ServerUnreachableError(f"{method} {url}: {exc}", job_id=job_id) from exc
            else:
                self._observe(response.headers, response.status_code)
                code = response.status_code
                if code < 400 or code in accept:
                    return response
                delay = None
                if retries is not None and is_transient(code):
                    delay = retries.after_fault(status=code, headers=response.headers,
                                                time_left=deadline - self._clock())
                if delay is None:
                    raise error_for_answer(method, url, code,
                                           error_message(response.content, response.reason or ""),
                                           job_id=job_id, retries=retries.retries if retries else 0)
                response.close()
                fault = f"HTTP {code}"
            self._fault_warnings.warning(fault, self._clock(),
                                         "transient fault (%s); retrying in %.3f s", fault, delay)
            attempt += 1
            if delay > 0:
                self._nap(delay)

    def _request(self, method: str, url: str, attempt: int,
                 kwargs: dict[str, Any]) -> requests.Response:
        """One attempt on the session (``attempt``: the retries before it); a ``CLIENT`` span
        around it, whose ``traceparent`` goes along, when tracing."""
        tracing = self._tracing
        if tracing is None:
            return self.session.request(method, url, **kwargs)
        headers = dict(kwargs.get("headers") or {})
        span = tracing.start_request(method, url, headers, attempt)
        try:
            response = self.session.request(method, url, **{**kwargs, "headers": headers})
        except BaseException as exc:
            tracing.end_request(span, None, exc)
            raise
        tracing.end_request(span, response.status_code)
        return response


class _Transport(BatchAdapter[VideoTranslationClient]):
    """The client as its batch drivers use it (:class:`vtwait.client._threads.Transport`)."""

    def sleep(self, seconds: float) -> None:
        self._client._nap(seconds)

    def open_stream(self, params: list[tuple[str, str]], headers: dict[str, str], *,
                    deadline: float) -> requests.Response:
        client = self._client
        return client._send("GET", client.base_url + client.events_url, params=params,
                            headers=headers, stream=True, deadline=deadline,
                            timeout=(client.request_timeout[0], STREAM_READ_TIMEOUT))

    def poll(self, job_id: str, *, deadline: float) -> tuple[JobStatus, float, float]:
        return self._client._poll(job_id, None, deadline)

    def get_status(self, job_id: str) -> JobStatus:
        return self._client.get_status(job_id)

    def new_wait(self, job_id: str, *, started: float, timeout: float) -> JobWait:
        # A pooled thread held by one job's long-poll would stall the others: no long-poll.
        policy = replace(self._client.policy, long_poll=False)
        return self._client._new_wait(job_id, started=started, timeout=timeout, policy=policy)

    def observe_final(self, status: JobStatus, *, waited: float) -> None:
        self._client._observe_final(status.job_id, status, waited=waited)


class _TracedTransport:
    """A batch's transport when tracing: the client's, under the batch's ``wait batch`` span
    (its drivers' requests, from any thread, are the span's children; each job's end is an
    event on it). The span ends when the batch's generator ends (:func:`traced_batch`)."""

    def __init__(self, inner: threads.Transport, tracing: ClientTracing, jobs: int) -> None:
        self._inner, self._tracing = inner, tracing
        self.span = tracing.start_batch(jobs)

    def __getattr__(self, name: str) -> Any:  # new_batch, clock, sleep, new_wait: as they are
        return getattr(self._inner, name)

    def open_stream(self, params: list[tuple[str, str]], headers: dict[str, str], *,
                    deadline: float) -> requests.Response:
        with self._tracing.activate(self.span):
            return self._inner.open_stream(params, headers, deadline=deadline)

    def poll(self, job_id: str, *, deadline: float) -> tuple[JobStatus, float, float]:
        with self._tracing.activate(self.span):
            return self._inner.poll(job_id, deadline=deadline)

    def get_status(self, job_id: str) -> JobStatus:
        with self._tracing.activate(self.span):
            return self._inner.get_status(job_id)

    def observe_final(self, status: JobStatus, *, waited: float) -> None:
        self._tracing.job_ended(self.span, status)
        self._inner.observe_final(status, waited=waited)

    def run(self, statuses: Iterator[JobStatus]) -> Iterator[JobStatus]:
        """``statuses`` as they come; the span ends with them (marked by what ended them)."""
        error: BaseException | None = None
        try:
            yield from statuses
        except GeneratorExit:  # the caller stopped early: no failure
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._tracing.end_batch(self.span, error)


class _HeaderAuth(AuthBase):
    """A bearer token or API key, on requests to ``base_url``'s origin only (a redirect to
    another origin drops it); no secret in repr."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self._credentials.headers_for(request.url or ""))
        request.register_hook("response", self._on_response)
        return request

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        # requests copies a request's headers onto its redirect and strips only Authorization
        # on a change of host: drop the credential headers before a hop to another origin.
        if response.is_redirect and response.request is not None:
            target = urljoin(response.url, response.headers.get("location", ""))
            if not self._credentials.headers_for(target):
                for name in self._credentials.headers:
                    response.request.headers.pop(name, None)
        return response

    def __repr__(self) -> str:
        return f"<{self._credentials.scheme} credentials>"


def _json(response: requests.Response, *, job_id: str | None) -> Any:
    return decode_json(response.content, status_code=response.status_code,
                       content_type=response.headers.get("Content-Type"), job_id=job_id)


#: The name earlier tools used.
TranslationStatusClient = VideoTranslationClient
