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
3. **The learned schedule** when the server says nothing (``learned_planner.py``): once the
   route has shown ``PollingPolicy.learn_after`` (20) jobs, ask where their durations say a job has
   likely ended, ``learned_budget`` (3.5) requests per job on average. ``history_path=`` keeps
   what was learned in a SQLite file.
4. **Exponential backoff with jitter** before that, and for a job that outlives every job seen
   (:class:`PollingPolicy`): 1 s growing x1.3 up to 20 s, each delay shortened by up to 20 % at
   random.

Transient faults (connection refused or reset, read timeouts, 429, 502, 503, 504) are retried by
urllib3's ``Retry`` on the session's adapter, honouring ``Retry-After``; its sleeps use the injected
sleep function and never pass the wait's deadline. A poll that still fails is an unanswered poll:
the wait goes on until its deadline. The decisions live in :class:`WaitPlanner`, which does no I/O.

Rate limits: every request of one client instance, from every thread, is paced by one
:class:`rate_pacing.RatePacer` fed with the servers' ``RateLimit``/``X-RateLimit-*`` fields, so
that the quota is not run out; a 429 holds every request back until the server's ``Retry-After``
(or reset). A ``Retry-After`` beside quota left is the limiter's window, not a poll hint.

All durations are in seconds. Exceptions::

    VideoTranslationError
    ├── AuthenticationError      401/403; never retried
    ├── JobNotFoundError         404 (also LookupError)
    ├── InvalidRequestError      another 4xx: the server rejected what was sent (also ValueError)
    ├── ServerError              5xx or 429 still answered after the retries
    ├── ServerUnreachableError   no answer at all after the retries (also ConnectionError)
    ├── ProtocolError            an answer with no usable status in it (also ValueError)
    ├── WaitTimeout              deadline or attempt budget spent (also TimeoutError)
    ├── BatchError               some jobs of a batch could not be waited for (the rest ended)
    └── WebhookVerificationError a forged, stale or malformed webhook delivery (also ValueError)
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
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

import vtwait.client._threads as batch_sync
from vtwait.client.base import ClientBase, ClientConfig, start_answer_job_id
from vtwait.core.planner import (
    _TRANSIENT_STATUSES,
    DEFAULT_BASE_URL,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    FINAL_RESULTS,
    AuthenticationError,
    BatchError,
    Decision,
    InvalidRequestError,
    JobNotFoundError,
    JobResult,
    JobStatus,
    PollingPolicy,
    ProtocolError,
    RetryPolicy,
    ServerError,
    ServerUnreachableError,
    VideoTranslationError,
    WaitPlanner,
    WaitTimeout,
    WebhookVerificationError,
    _describe,
    equal_jitter,
    exponential_delays,
    full_jitter,
    parse_preference_applied,
    parse_retry_after,
    parse_status_document,
    read_status_answer,
    scaled_jitter,
)
from vtwait.core.durations import DurationModel, Schedule
from vtwait.client.history import DurationHistory
from vtwait.core.learned import LearnedPlanner
from vtwait.core.batch import unique_job_ids
from vtwait.core.ratelimit import RateLimit, RatePacer, parse_rate_limit
from vtwait.core.retry import error_for_answer
from vtwait.core.webhook import DEFAULT_WEBHOOK_TOLERANCE, verify_webhook

if TYPE_CHECKING:  # imported on first use at run time (see __getattr__ below)
    from vtwait.client.aio import AsyncVideoTranslationClient

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_WAIT_TIMEOUT",
    "DEFAULT_WEBHOOK_TOLERANCE",
    "FINAL_RESULTS",
    "AsyncVideoTranslationClient",
    "AuthenticationError",
    "BatchError",
    "Decision",
    "DurationHistory",
    "DurationModel",
    "InvalidRequestError",
    "JobNotFoundError",
    "JobResult",
    "JobStatus",
    "LearnedPlanner",
    "PollingPolicy",
    "ProtocolError",
    "RateLimit",
    "RatePacer",
    "RetryPolicy",
    "Schedule",
    "ServerError",
    "ServerUnreachableError",
    "TranslationStatusClient",
    "VideoTranslationClient",
    "VideoTranslationError",
    "WaitPlanner",
    "WaitTimeout",
    "WebhookVerificationError",
    "equal_jitter",
    "exponential_delays",
    "full_jitter",
    "scaled_jitter",
    "parse_preference_applied",
    "parse_rate_limit",
    "parse_retry_after",
    "parse_status_document",
    "read_status_answer",
    "verify_webhook",
]

logger = logging.getLogger(__name__)


def __getattr__(name: str) -> Any:
    # The asyncio client is imported on first use: aiohttp would add ~0.1 s to every `import client`.
    if name == "AsyncVideoTranslationClient":
        from vtwait.client.aio import AsyncVideoTranslationClient

        return AsyncVideoTranslationClient
    raise AttributeError(f"module 'client' has no attribute {name!r}")


# ------------------------------------------------------------------------------ the transport
class _OutOfTime(Exception):
    """Raised from a retry sleep that would pass the deadline: give up instead of sleeping."""


class _DeadlineRetry(Retry):
    """urllib3's Retry with the client's sleep function, a clamp on Retry-After, and a deadline.

    ``before_retry(delay, response)``, when given, takes over the sleep before each retry (the
    client's rate pacing: a 429 holds back every thread, and the retry is booked like any request).
    """

    def __init__(self, *args: Any, sleep: Callable[[float], None] = time.sleep,
                 time_left: Callable[[], float] = lambda: math.inf,
                 max_retry_after: float = 60.0,
                 before_retry: Callable[[float, Any], None] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._sleep, self._time_left, self._max_retry_after = sleep, time_left, max_retry_after
        self._before_retry = before_retry

    def new(self, **kw: Any) -> _DeadlineRetry:
        retry = super().new(**kw)
        retry._sleep, retry._time_left = self._sleep, self._time_left
        retry._max_retry_after, retry._before_retry = self._max_retry_after, self._before_retry
        return retry

    def sleep(self, response: Any = None) -> None:
        delay = None
        if response is not None and self.respect_retry_after_header:
            # Unlike urllib3's own, 'Retry-After: 0' means now, not "no header".
            delay = parse_retry_after(response.headers.get("Retry-After"),
                                      maximum=self._max_retry_after)
            # A 429 without Retry-After: the quota's reset.
            if delay is None and getattr(response, "status", None) == 429:
                limit = parse_rate_limit(response.headers.items())
                if limit is not None and limit.reset is not None:
                    delay = min(limit.reset, self._max_retry_after)
        if delay is None:
            delay = self.get_backoff_time()
        if delay >= self._time_left():
            raise _OutOfTime(f"{self._last_fault()}, and the next retry, in {delay:.3f} s, "
                             "would pass the deadline")
        logger.warning("transient fault (%s); retrying in %.3f s", self._last_fault(), delay)
        if self._before_retry is not None:
            self._before_retry(delay, response)
        elif delay > 0:
            self._sleep(delay)

    def _last_fault(self) -> str:
        last = self.history[-1] if self.history else None
        if last is None:
            return "unknown"
        return f"HTTP {last.status}" if last.status else type(last.error).__name__


class VideoTranslationClient(ClientBase):
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
        session: A ``requests.Session`` to use instead of a new one (its adapters are kept).
        respect_rate_limits: Pace requests by the server's rate-limit fields (one budget for
            every thread using this client) and hold them all back after a 429.
        history_path: SQLite file where the learned job durations are kept across runs and shared
            with other processes; None keeps them in memory for this client's life.
        history: A :class:`DurationHistory` to share between clients (overrides history_path).
        clock, sleep, rng: Injected for tests: a monotonic clock, a sleep function, a Random.

    Every optional argument's None means its default.
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
                 history: DurationHistory | None = None):
        config = ClientConfig.from_args(
            base_url, username, password, auth=auth, policy=policy, retry=retry,
            wait_timeout=wait_timeout, request_timeout=request_timeout, status_url=status_url,
            single_status_url=single_status_url, start_url=start_url, cancel_url=cancel_url,
            respect_rate_limits=respect_rate_limits, clock=clock, rng=rng)
        super().__init__(config, history=history, history_path=history_path)
        self._sleep = time.sleep if sleep is None else sleep
        self._deadline = threading.local()  # per thread: a client may serve several threads
        self._pacer_lock = threading.Lock()  # the one pacer's calls come from every thread
        # Per thread: the booking of the request being sent, and when its last sleep ended.
        self._local = threading.local()
        auth = config.auth
        self._owns_session = session is None
        self.session = session or requests.Session()
        if auth is not None:
            self.session.auth = auth
        if self._owns_session:
            adapter = HTTPAdapter(max_retries=self._urllib3_retry(), pool_maxsize=32)
            self.session.mount("http://", adapter)
            self.session.mount("https://", adapter)
        self.session.headers.setdefault("Accept", "application/json")

    #: Where the job event stream is (``GET /events``, Server-Sent Events).
    events_url = "/events"
    #: Whether waits for many jobs try the event stream first (False: per-job waits only).
    use_event_stream = True

    def __enter__(self) -> VideoTranslationClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections this client opened."""
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
        body = {k: v for k, v in (("delay", delay), ("outcome", outcome),
                                  ("callback_url", callback_url), ("callback_id", callback_id))
                if v is not None}
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        self._pace()  # before sent_at: a pacing sleep is not part of the start
        sent_at = self._clock()
        response = self._send("POST", self.base_url + self.start_url, json=body or None,
                              headers=headers, timeout=self.request_timeout, paced=True)
        received_at = self._clock()
        document = self._json(response, job_id=None)
        job_id = start_answer_job_id(document, response.headers.get("Location", ""))
        logger.info("started job %s", job_id)
        self._note_start(job_id, document, response.headers.get("Retry-After"), sent_at,
                         received_at)
        return job_id

    def get_status(self, job_id: str | None = None) -> JobStatus:
        """One status request. ``job_id=None`` asks the server's single-job ``GET /status``."""
        return self._poll(job_id, wait=None)[0]

    def cancel(self, job_id: str) -> JobStatus:
        """Cancel a queued or running job and return its final status.

        A job that had already ended is no error: the server answers 409 with its document, and
        that final status is returned (``completed`` stays completed). A cancelled job's status
        is an ``error`` result with ``phase == "canceled"``. Should a server answer with a status
        that is not final yet, the cancel is awaited with :meth:`wait_for_completion`.

        Raises:
            JobNotFoundError: the server does not know the job (404).
            InvalidRequestError: the server refused, e.g. 405 from a server without cancel.
        """
        response = self._send("POST", self._cancel_url(job_id), job_id=job_id, accept=(409,),
                              timeout=self.request_timeout)
        status = read_status_answer(self._json(response, job_id=job_id), response.headers,
                                    job_id=job_id, max_hint_delay=self.policy.max_hint_delay)
        logger.info("job %s: cancel answered %d: %s%s", job_id, response.status_code,
                    status.phase or status.result,
                    "" if response.status_code != 409 else " (it had already ended)")
        if not status.done:
            return self.wait_for_completion(job_id)
        self._observe_final(job_id, status)
        return status

    def wait_for_completion(self, job_id: str | None = None, *, timeout: float | None = None,
                            max_attempts: int | None = None,
                            on_update: Callable[[JobStatus], None] | None = None) -> JobStatus:
        """Wait until the job is ``completed`` or ``error`` and return that final status.

        An ``error`` result is a normal return. Args: ``timeout`` seconds (default
        ``wait_timeout``; ``math.inf`` to wait forever), ``max_attempts`` status requests (default
        the policy's), ``on_update(status)`` called whenever the result or progress changes.

        Raises:
            WaitTimeout: the deadline or attempt budget ran out (carries the last status seen).
            JobNotFoundError, AuthenticationError, InvalidRequestError, ProtocolError: as named.
        """
        timeout = self._checked_timeout(timeout)
        max_attempts = self._checked_max_attempts(max_attempts)
        planner = self._new_planner(job_id)
        label = job_id or "(default job)"
        started = self._clock()
        deadline = started + timeout
        self._deadline.value = deadline
        last: JobStatus | None = None
        last_error: Exception | None = None
        attempts = protocol_errors = 0
        try:
            if (first := planner.first_delay(started)) is not None:
                logger.debug("job %s: first ask in %.3f s: %s", label, first.delay, first.reason)
                self._sleep(min(first.delay, timeout))
            while True:
                now = self._clock()
                wait = planner.long_poll_for(deadline - now)
                attempts += 1
                try:
                    status, sent_at, received_at = self._poll(job_id, wait)
                except (ServerError, ServerUnreachableError, ProtocolError, _OutOfTime) as exc:
                    if isinstance(exc, ProtocolError):
                        protocol_errors += 1
                        if protocol_errors > self.policy.max_protocol_errors:
                            raise
                    last_error = exc if not isinstance(exc, _OutOfTime) else last_error or exc
                    decision = planner.after_failure(exc)
                    logger.warning("job %s: attempt %d failed: %s", label, attempts, exc)
                except JobNotFoundError as exc:
                    if last is not None:
                        raise JobNotFoundError(
                            f"job {job_id} was known to the server and is unknown now: the "
                            "server may have restarted, or the job expired", job_id=job_id,
                            status_code=404) from exc
                    raise
                else:
                    protocol_errors, last_error = 0, None
                    if on_update and (last is None or (status.result, status.progress)
                                      != (last.result, last.progress)):
                        on_update(status)
                    last = status
                    if status.done:
                        logger.info("job %s %s after %d status requests in %.3f s", label,
                                    status.result, attempts, received_at - started)
                        self._observe_final(job_id, status, waited=received_at - started,
                                            received_at=received_at)
                        return status
                    decision = planner.after_answer(status, asked_wait=wait, sent_at=sent_at,
                                                    received_at=received_at)
                    logger.debug("job %s: attempt %d: %s (progress %s, took %.3f s); next in "
                                 "%.3f s: %s", label, attempts, status.result, status.progress,
                                 received_at - sent_at, decision.delay, decision.reason)
                if max_attempts is not None and attempts >= max_attempts:
                    raise self._timeout(job_id, last, attempts, started,
                                        f"no final status after {attempts} status requests "
                                        "(max_attempts)", last_error)
                now = self._clock()
                if now >= deadline:
                    raise self._timeout(job_id, last, attempts, started,
                                        f"no final status within {timeout:g} s", last_error)
                # The last sleep is cut to end at the deadline; one last ask happens there.
                self._nap(min(decision.delay, deadline - now))
        finally:
            self._deadline.value = None

    # --------------------------------------------------------------------------- many jobs
    def as_completed(self, job_ids: Iterable[str], *,
                     timeout: float | None = None) -> Iterator[JobStatus]:
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
        return batch_sync.as_completed(self, job_ids, timeout=timeout)

    def wait_many(self, job_ids: Iterable[str], *,
                  timeout: float | None = None) -> dict[str, JobStatus]:
        """Wait for every job; ``{job_id: final JobStatus}`` in the order given.

        Raises the same errors as :meth:`as_completed`; they carry what finished.
        """
        ids = unique_job_ids(job_ids)
        ended = {status.job_id: status for status in self.as_completed(ids, timeout=timeout)}
        return {job_id: ended[job_id] for job_id in ids}

    def start_jobs(self, count: int, *, delay: float | None = None,
                   outcome: str | None = None) -> list[str]:
        """Start ``count`` jobs, each with its own Idempotency-Key; returns their ids in order."""
        return batch_sync.start_jobs(self, count, delay=delay, outcome=outcome)

    # -------------------------------------------------------------------------------- internals
    def _timeout(self, job_id: str | None, last: JobStatus | None, attempts: int,
                 started: float, why: str, cause: Exception | None) -> WaitTimeout:
        elapsed = self._clock() - started
        seen = f"last seen {last.result}" if last else "never answered"
        because = f"; last failure: {cause}" if cause else ""
        error = WaitTimeout(f"job {job_id or '(default job)'}: {why} ({seen}{because}); pass a "
                            "larger timeout or check the server", job_id=job_id, last_status=last,
                            attempts=attempts, elapsed=elapsed)
        error.__cause__ = cause
        logger.info("%s", error)
        return error

    def _time_left(self) -> float:
        deadline = getattr(self._deadline, "value", None)
        return math.inf if deadline is None else deadline - self._clock()

    def _urllib3_retry(self) -> Retry:
        policy = self.retry
        return _DeadlineRetry(
            total=policy.max_retries, status_forcelist=_TRANSIENT_STATUSES,
            # POST is safe to retry: every start carries an Idempotency-Key.
            allowed_methods=frozenset({"GET", "HEAD", "POST"}),
            backoff_factor=policy.backoff_factor, backoff_max=policy.backoff_max,
            backoff_jitter=policy.backoff_jitter, raise_on_status=False,
            respect_retry_after_header=True, sleep=self._nap, time_left=self._time_left,
            max_retry_after=policy.max_retry_after,
            before_retry=self._before_retry if self._pacer is not None else None)

    def _nap(self, seconds: float) -> None:
        """Every sleep of the client: the injected sleep, remembered as time that has passed."""
        self._local.awake_at = self._now() + seconds
        self._sleep(seconds)

    def _now(self) -> float:
        """This thread's time for the pacer: at least the end of its last sleep (so a sleep
        function that returns early, as in tests, never makes it sleep the same wait twice)."""
        return max(self._clock(), getattr(self._local, "awake_at", -math.inf))

    # Rate pacing: every request books its slot with the one pacer of this client first.
    def _pace(self) -> None:
        """Sleep until this thread's next request may go, and book it; never past the deadline."""
        if self._pacer is None:
            return
        while True:
            with self._pacer_lock:
                ticket, delay = self._pacer.reserve(self._now())
            if delay > 0:
                if delay >= self._time_left():
                    raise _OutOfTime(f"the rate limit holds the next request back {delay:.3f} "
                                     "s, past the deadline")
                logger.debug("rate limit: next request in %.3f s%s", delay,
                             "" if ticket is not None else " (then asks again)")
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

    def _before_retry(self, delay: float, response: Any) -> None:
        """urllib3 is about to retry: learn from the refused answer, then pace the retry."""
        status = getattr(response, "status", None)
        self._observe(response.headers if response is not None else None, status)
        if delay > 0:  # exactly what the server said (a 429 also holds back the other threads)
            self._nap(delay)
        self._pace()

    def _poll(self, job_id: str | None, wait: int | None) -> tuple[JobStatus, float, float]:
        headers, params, (connect, read) = {}, {}, self.request_timeout
        if wait:
            headers["Prefer"] = f"wait={wait}"
            params["wait"] = wait
            read += wait
        self._pace()  # before sent_at: a pacing sleep is no hold by the server
        sent_at = self._clock()
        response = self._send("GET", self._status_url(job_id), headers=headers, params=params,
                              timeout=(connect, read), job_id=job_id, paced=True)
        received_at = self._clock()
        status = read_status_answer(self._json(response, job_id=job_id), response.headers,
                                    job_id=job_id, max_hint_delay=self.policy.max_hint_delay)
        return status, sent_at, received_at

    def _send(self, method: str, url: str, *, job_id: str | None = None,
              accept: tuple[int, ...] = (), paced: bool = False,
              **kwargs: Any) -> requests.Response:
        """Every request of the client goes through here.

        Paced by the rate limit first (unless the caller just did: ``paced=True``), sent through
        the session (urllib3 retries transient faults), the answer's rate-limit fields fed back
        to the pacer. An error status is raised as its typed exception, except codes in
        ``accept``.
        """
        if not paced:
            self._pace()
        response = None
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.exceptions.RetryError as exc:  # status retries spent with raise_on_status
            raise ServerError(f"{method} {url}: the server kept failing: {exc}",
                              job_id=job_id) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ServerUnreachableError(
                f"{method} {url}: no answer from the server after {self.retry.max_retries} "
                f"retries ({type(exc).__name__}); is it running?", job_id=job_id) from exc
        except requests.RequestException as exc:
            raise ServerUnreachableError(f"{method} {url}: {exc}", job_id=job_id) from exc
        finally:  # no answer (None) still tells the pacer it need not wait for one
            self._observe(*((response.headers, response.status_code) if response is not None
                            else (None, None)))
        code = response.status_code
        if code < 400 or code in accept:
            return response
        raise error_for_answer(method, url, code, _error_message(response), job_id=job_id,
                               max_retries=self.retry.max_retries)

    @staticmethod
    def _json(response: requests.Response, *, job_id: str | None) -> Any:
        try:
            return response.json()
        except (ValueError, RecursionError):  # RecursionError: nested deeper than json parses
            kind = response.headers.get("Content-Type", "no content type")
            raise ProtocolError(f"HTTP {response.status_code} answer is not JSON ({kind}): "
                                f"{_describe(response.text)}", job_id=job_id,
                                status_code=response.status_code) from None


def _error_message(response: requests.Response) -> str:
    """The server's own words from a JSON error body, else the start of the body."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError, RecursionError):
        return _describe(response.text, 80) if response.text else response.reason or "no body"
    if isinstance(error, Mapping):
        return str(error.get("message") or error.get("code") or error)
    return str(error) if error else response.reason or "no detail"


#: The name earlier tools used.
TranslationStatusClient = VideoTranslationClient
