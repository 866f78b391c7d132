"""What the sync and asyncio clients share beyond the waiting decisions: their settings and bookkeeping.

    config = ClientConfig.from_args("http://user:pw@127.0.0.1:8000", None, None)
    config.base_url, config.auth   # 'http://127.0.0.1:8000', ('user', 'pw')

:class:`ClientConfig` normalizes and checks the constructor arguments both clients take (None means
the default; credentials in the URL become auth and leave the URL); :class:`ClientBase` holds the
parts of a client built from it that do not depend on the transport (status URLs, the request
bodies and answers both send and read, the per-job wait machine, the rate-pacing rule, the
learned schedule's bookkeeping). The transports (``sync.py`` on requests, ``aio.py`` on aiohttp)
only send and sleep; the one file a client opens is its duration history
(``history.py``, when given a ``history_path``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from vtwait.client.credentials import Credentials, resolve_credentials
from vtwait.client.history import DurationHistory
from vtwait.client.tracing import tracing_for
from vtwait.core.batch import ManyJobs
from vtwait.core.dialects import (
    JobRef,
    StatusMapping,
    StatusReader,
    read_job_status,
    start_answer_ref,
)
from vtwait.core.errors import ProtocolError, ServerError, StartBatchError, VideoTranslationError
from vtwait.core.learned import DurationLearner
from vtwait.core.planner import JobWait, WaitPlanner
from vtwait.core.policy import (
    DEFAULT_BASE_URL,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    PollingPolicy,
    RetryPolicy,
    require,
)
from vtwait.core.ratelimit import RateLimit, RatePacer, parse_rate_limit
from vtwait.core.retry import asked_delay
from vtwait.core.starts import DEFAULT_BATCH_SIZE, BatchStarted
from vtwait.core.status import JobResult, JobStatus, parse_retry_after, with_answer_headers

__all__ = ["DEFAULT_CANCEL_URL", "DEFAULT_STATUS_URL", "STREAM_READ_TIMEOUT", "BatchAdapter",
           "ClientBase", "ClientConfig", "job_start_body", "start_body", "started_ids"]

logger = logging.getLogger(__name__)

#: Seconds an event stream may stay silent (no event, no heartbeat) before it counts as dropped:
#: three of the server's default 15 s heartbeats.
STREAM_READ_TIMEOUT = 45.0
#: The status and cancel templates a client uses unless told: a status monitor or cancel link
#: the server names beats them, a template given beats the server.
DEFAULT_STATUS_URL = "/status/{job_id}"
DEFAULT_CANCEL_URL = "/status/{job_id}/cancel"
#: Jobs whose status monitor a client remembers (the oldest are forgotten first).
MAX_JOB_REFS = 100_000


@dataclass(frozen=True)
class ClientConfig:
    """A client's settings, every default filled in and every value checked (see
    :meth:`from_args`); the fields are the client's attributes of the same names."""

    base_url: str  #: without credentials and without a trailing slash
    #: the caller's ``auth``, else a ``(username, password)`` pair, else None
    auth: Any = field(repr=False)
    policy: PollingPolicy
    retry: RetryPolicy
    wait_timeout: float
    request_timeout: tuple[float, float]
    status_url: str
    single_status_url: str
    start_url: str
    cancel_url: str
    clock: Callable[[], float]
    rng: random.Random
    respect_rate_limits: bool
    #: Every credential scheme (Basic in ``auth``; a bearer token or an API key as headers).
    credentials: Credentials = field(default_factory=Credentials, repr=False)
    #: How status answers are read (None: every built-in dialect, :mod:`vtwait.core.dialects`).
    status_reader: StatusReader | None = None
    #: Whether a status monitor or cancel link named by the server beats the template (True
    #: unless the template was given).
    follow_status_monitor: bool = True
    follow_cancel_link: bool = True
    #: Where the client's spans go (None: the process's configured global tracer provider, if
    #: any; else no tracing, :mod:`vtwait.client.tracing`).
    tracer_provider: Any = field(default=None, repr=False)

    @classmethod
    def from_args(cls, base_url: str | None = DEFAULT_BASE_URL, username: str | None = None,
                  password: str | None = None, *, auth: Any = None,
                  policy: PollingPolicy | None = None, retry: RetryPolicy | None = None,
                  wait_timeout: float | None = DEFAULT_WAIT_TIMEOUT,
                  request_timeout: tuple[float, float] | None = DEFAULT_REQUEST_TIMEOUT,
                  status_url: str | None = "/status/{job_id}",
                  single_status_url: str | None = "/status", start_url: str | None = "/start",
                  cancel_url: str | None = "/status/{job_id}/cancel",
                  respect_rate_limits: bool | None = True,
                  clock: Callable[[], float] | None = time.monotonic,
                  rng: random.Random | None = None, bearer_token: str | None = None,
                  api_key: str | None = None, api_key_header: str | None = None,
                  status_reader: StatusReader | None = None,
                  tracer_provider: Any = None) -> ClientConfig:
        """The settings from a client constructor's arguments (None means the default).

        Args:
            base_url, username, password, auth, policy, retry, wait_timeout, request_timeout,
                status_url, single_status_url, start_url, cancel_url, respect_rate_limits,
                clock, rng, bearer_token, api_key, api_key_header, status_reader,
                tracer_provider: As
                :class:`client.VideoTranslationClient` takes them. Missing credentials come
                from the URL, then from the environment (``vtwait.client.credentials``).

        Raises:
            ValueError: base_url is not an http(s) URL, a template lacks ``{job_id}``, or
                wait_timeout is not > 0.
        """
        base_url = DEFAULT_BASE_URL if base_url is None else base_url
        wait_timeout = DEFAULT_WAIT_TIMEOUT if wait_timeout is None else wait_timeout
        request_timeout = DEFAULT_REQUEST_TIMEOUT if request_timeout is None else request_timeout
        # A template given beats the monitor a start answer names (and the default does not).
        follow_status = status_url in (None, DEFAULT_STATUS_URL)
        follow_cancel = cancel_url in (None, DEFAULT_CANCEL_URL)
        status_url = "/status/{job_id}" if status_url is None else status_url
        single_status_url = "/status" if single_status_url is None else single_status_url
        start_url = "/start" if start_url is None else start_url
        cancel_url = "/status/{job_id}/cancel" if cancel_url is None else cancel_url
        parts = urlsplit(base_url)
        # Credentials in the URL would show in every message, log line and repr: use them as
        # auth (explicit arguments win) and keep them out of base_url.
        if parts.username is not None or parts.password is not None:
            username = username if username is not None else unquote(parts.username or "")
            password = password if password is not None else unquote(parts.password or "")
            base_url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
            parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL}, "
                             f"got {base_url!r}")
        for name, template in (("status_url", status_url), ("cancel_url", cancel_url)):
            if "{job_id}" not in template:
                raise ValueError(f"{name} must contain '{{job_id}}', got {template!r}")
        require(wait_timeout > 0, "wait_timeout", wait_timeout, "must be > 0")
        require(status_reader is None or isinstance(status_reader, StatusMapping)
                or callable(status_reader), "status_reader", status_reader,
                "must be a StatusMapping or a callable returning a JobStatus")
        credentials = resolve_credentials(username, password, auth=auth,
                                          bearer_token=bearer_token, api_key=api_key,
                                          api_key_header=api_key_header).for_origin(base_url)
        return cls(base_url=base_url.rstrip("/"), auth=credentials.auth,
                   policy=policy or PollingPolicy(),
                   retry=retry or RetryPolicy(), wait_timeout=wait_timeout,
                   request_timeout=request_timeout, status_url=status_url,
                   single_status_url=single_status_url, start_url=start_url,
                   cancel_url=cancel_url, clock=time.monotonic if clock is None else clock,
                   rng=rng or random.Random(), respect_rate_limits=respect_rate_limits is not False,
                   credentials=credentials, status_reader=status_reader,
                   follow_status_monitor=follow_status, follow_cancel_link=follow_cancel,
                   tracer_provider=tracer_provider)


def start_body(delay: float | None, outcome: str | None, callback_url: str | None,
               callback_id: str | None) -> dict[str, Any] | None:
    """The JSON body of ``POST /start`` (None when every field is None)."""
    body = {k: v for k, v in (("delay", delay), ("outcome", outcome),
                              ("callback_url", callback_url), ("callback_id", callback_id))
            if v is not None}
    return body or None


def job_start_body(job: Mapping[str, Any]) -> dict[str, Any] | None:
    """:func:`start_body` of one mapping of ``start_job``'s arguments (``start_many``'s items).

    Raises:
        TypeError: the mapping holds a key ``start_job`` does not take.
    """
    unknown = sorted(set(job) - _START_ARGUMENTS)
    if unknown:
        raise TypeError(f"start_many: unknown start_job arguments {unknown}")
    return start_body(job.get("delay"), job.get("outcome"), job.get("callback_url"),
                      job.get("callback_id"))


_START_ARGUMENTS = frozenset({"delay", "outcome", "callback_url", "callback_id"})


class ClientBase:
    """What a client is beyond its transport: its settings as attributes, status URLs, the
    per-job wait (:meth:`_new_wait`), the rate-pacing rule, and the learned schedule's
    bookkeeping (planners, starts, final statuses). The transports subclass it."""

    #: Where the job event stream is (``GET /events``, Server-Sent Events).
    events_url = "/events"
    #: Whether waits for many jobs try the event stream first (False: per-job waits only).
    use_event_stream = True
    #: Where batch starts go (``POST /start/batch``), and how many jobs one carries at most (a
    #: server with a lower cap names it, and the client sends smaller batches from then on).
    start_batch_url = "/start/batch"
    batch_start_size = DEFAULT_BATCH_SIZE
    #: Whether the server has the batch route: None until asked, False once it answered 404/405.
    _batch_start_offered: bool | None = None

    def __init__(self, config: ClientConfig, *, history: DurationHistory | None,
                 history_path: str | os.PathLike[str] | None) -> None:
        self.base_url = config.base_url
        self.policy, self.retry = config.policy, config.retry
        self.wait_timeout, self.request_timeout = config.wait_timeout, config.request_timeout
        self.status_url, self.single_status_url = config.status_url, config.single_status_url
        self.start_url, self.cancel_url = config.start_url, config.cancel_url
        self._clock, self._rng = config.clock, config.rng
        # One rate-limit budget for every thread or task of this client.
        self._pacer = RatePacer() if config.respect_rate_limits else None
        self._history = history or DurationHistory(history_path)
        self._learner = DurationLearner(self._history, self.base_url + self.status_url,
                                        wall_clock=time.time)
        self._credentials = config.credentials
        self._status_reader = config.status_reader
        self._follow_status, self._follow_cancel = (config.follow_status_monitor,
                                                    config.follow_cancel_link)
        # Each job's status monitor and cancel link, as its start answer (or a later status
        # answer) named them: the URL travels with the job. Insertion-ordered: oldest first.
        self._refs: dict[str, JobRef] = {}
        # OpenTelemetry spans (vtwait.client.tracing); None when tracing is off: every hook is
        # skipped by one test.
        self._tracing = tracing_for(config.tracer_provider)

    def _traced(self, name: str, attributes: dict[str, Any] | None = None,
                ) -> contextlib.AbstractContextManager[Any]:
        """An ``INTERNAL`` span around a block (its requests are its children); the block gets
        the span, or None when tracing is off."""
        if self._tracing is None:
            return contextlib.nullcontext()
        return self._tracing.span(name, attributes)

    # ---------------------------------------------------------------------- jobs' status monitors
    def job_ref(self, job_id: str) -> JobRef:
        """Where this client asks about a job: the monitor and cancel link its server named (or
        the templates). Save it (``to_dict``) to resume the wait elsewhere."""
        known = self._refs.get(job_id)
        if known is not None:
            return known
        return JobRef(job_id, self._status_url(job_id), self._cancel_url(job_id))

    def track(self, ref: JobRef) -> str:
        """Ask about ``ref.job_id`` at ``ref``'s URLs from now on (e.g. a JobRef saved by another
        process); its job id."""
        if not isinstance(ref, JobRef):
            raise TypeError(f"track() takes a JobRef, got {type(ref).__name__}")
        self._refs.pop(ref.job_id, None)
        self._refs[ref.job_id] = ref
        while len(self._refs) > MAX_JOB_REFS:
            self._refs.pop(next(iter(self._refs)), None)
        return ref.job_id

    def _job_key(self, job: str | JobRef | None) -> str | None:
        """A job argument (an id or a :class:`JobRef`) as its id, tracking a JobRef."""
        return self.track(job) if isinstance(job, JobRef) else job

    def _start_ref(self, document: Any, headers: Mapping[str, str], status_code: int,
                   url: str) -> JobRef:
        """The job a start answer made, and where its status monitor is; remembered."""
        ref = start_answer_ref(document, headers, status_code=status_code, url=url,
                               reader=self._status_reader)
        if ref.status_url or ref.cancel_url:
            logger.debug("job %s: status monitor %s, cancel link %s", ref.job_id,
                         ref.status_url or "(template)", ref.cancel_url or "(template)")
            self.track(ref)
        return ref

    def __repr__(self) -> str:  # never shows credentials
        return f"{type(self).__name__}({self.base_url!r})"

    def _status_url(self, job_id: str | None) -> str:
        if job_id is None:
            return self.base_url + self.single_status_url
        known = self._refs.get(job_id) if self._follow_status else None
        if known is not None and known.status_url:
            return known.status_url
        return self.base_url + self.status_url.format(job_id=quote(str(job_id), safe=""))

    def _template_status_url(self, job_id: str) -> str:
        return self.base_url + self.status_url.format(job_id=quote(str(job_id), safe=""))

    def _cancel_url(self, job_id: str) -> str:
        known = self._refs.get(job_id) if self._follow_cancel else None
        if known is not None and known.cancel_url:
            return known.cancel_url
        return self.base_url + self.cancel_url.format(job_id=quote(str(job_id), safe=""))

    def _new_planner(self, job_id: str | None, policy: PollingPolicy | None = None) -> WaitPlanner:
        """The planner of one job's wait; every per-job wait (single or batch) gets it here.

        Learned on a silent server (``vtwait.core.learned``) unless the policy says ``learn=False``.

        Args:
            job_id: The job waited for (None: the server's single job).
            policy: The policy to plan with (default: the client's).
        """
        policy = policy or self.policy
        if not policy.learn:
            return WaitPlanner(policy, rng=self._rng)
        return self._learner.planner(job_id, policy, now=self._clock(), rng=self._rng)

    def _status_request(self, wait: int | None) -> tuple[dict[str, str], dict[str, int], float]:
        """The headers, query and read timeout of a status request that asks for a hold of
        ``wait`` seconds (RFC 7240 ``Prefer: wait`` and ``?wait=``; None: no long-poll)."""
        headers: dict[str, str] = {}
        params: dict[str, int] = {}
        read = self.request_timeout[1]
        if wait:
            headers["Prefer"] = f"wait={wait}"
            params["wait"] = wait
            read += wait
        return headers, params, read

    def _read_status(self, document: Any, headers: Mapping[str, str],
                     job_id: str | None, url: str | None = None) -> JobStatus:
        """A status answer of any dialect (or read by ``status_reader``) as a
        :class:`JobStatus`, its ``Retry-After`` cut to the policy's cap. A next poll URL or
        cancel link it names is remembered for the job.

        Args:
            url: The URL the answer came from (relative links are resolved against it).
        """
        status = with_answer_headers(
            read_job_status(document, job_id=job_id, url=url, reader=self._status_reader),
            headers, max_hint_delay=self.policy.max_hint_delay)
        if job_id is not None and (status.monitor_url or status.cancel_url):
            known = self._refs.get(job_id)
            ref = JobRef(job_id, status.monitor_url or (known.status_url if known else None),
                         status.cancel_url or (known.cancel_url if known else None))
            if ref != known:
                self.track(ref)
        return status

    def _new_wait(self, job_id: str | None, *, started: float, timeout: float,
                  max_attempts: int | None = None,
                  on_update: Callable[[JobStatus], None] | None = None,
                  policy: PollingPolicy | None = None) -> JobWait:
        """The state machine of one job's wait (:class:`JobWait`), with this client's planner.

        Args:
            job_id: The job (None: the server's single job).
            started: The client's clock when the wait began.
            timeout: Seconds from ``started`` to the deadline.
            max_attempts: Status requests it may make (None: the policy's).
            on_update: Called with each answer that changes the result or progress.
            policy: The policy to wait with (default: the client's).
        """
        policy = policy or self.policy
        return JobWait(job_id, self._new_planner(job_id, policy), started=started,
                       timeout=timeout,
                       max_attempts=max_attempts if max_attempts is not None
                       else policy.max_attempts,
                       max_protocol_errors=policy.max_protocol_errors, on_update=on_update)

    def _cancel_answer(self, job_id: str, document: Any, headers: Mapping[str, str],
                       code: int, *, observe: bool = True,
                       url: str | None = None) -> JobStatus | None:
        """The status a cancel answered (a 409: the job had already ended; its final status), or
        None when a 2xx answer holds no status (AIP-151's cancel answers ``{}``): wait for it.

        ``observe=False`` leaves telling the learned schedule of a final status to the caller.
        """
        try:
            status = self._read_status(document, headers, job_id, url)
        except ProtocolError:
            if code >= 300:
                raise
            logger.info("job %s: cancel answered %d with no status; waiting for it", job_id, code)
            return None
        logger.info("job %s: cancel answered %d: %s%s", job_id, code, status.phase or status.result,
                    "" if code != 409 else " (it had already ended)")
        if status.done and observe:
            self._observe_final(job_id, status)
        return status

    def _pacing_delay(self, now: float, deadline: float) -> tuple[int | None, float]:
        """Book the next request with the pacer: its ticket (None: ask again after the delay)
        and the seconds to sleep first. Call it only when the client paces (``_pacer``).

        Raises:
            ServerError: the rate limit holds the request back past the deadline (a wait counts
                it as a failed poll; it never sleeps past its deadline).
        """
        assert self._pacer is not None
        ticket, delay = self._pacer.reserve(now)
        if delay > 0:
            if delay >= deadline - now:
                raise ServerError(f"the rate limit holds the next request back {delay:.3f} s, "
                                  "past the deadline", status_code=429)
            logger.debug("rate limit: next request in %.3f s%s", delay,
                         "" if ticket is not None else " (then asks again)")
        return ticket, delay

    def _observe_final(self, job_id: str | None, status: JobStatus, *,
                       waited: float | None = None, received_at: float | None = None,
                       pending_since: float | None = None) -> None:
        """Called once with each final status this client learns of, by any route.

        Feeds the duration model: the job ended after its last pending answer was asked for
        (``pending_since``, else what its planner saw) and before ``received_at``.

        Args:
            job_id: The job.
            status: Its final status.
            waited: Seconds from the start of the wait to learning it, when known.
            received_at: The client's clock when the final answer arrived (default: now).
            pending_since: When the last pending answer was asked for (default: its planner's).
        """
        self._learner.observe_final(
            job_id, status, received_at=self._clock() if received_at is None else received_at,
            pending_since=pending_since)

    def _checked_timeout(self, timeout: float | None) -> float:
        """A wait's timeout: None means the client's ``wait_timeout``; it must be > 0."""
        timeout = self.wait_timeout if timeout is None else timeout
        require(timeout > 0, "timeout", timeout, "must be > 0")
        return timeout

    def _checked_max_attempts(self, max_attempts: int | None) -> int | None:
        """A wait's attempt budget: None means the policy's; it must be None or >= 1."""
        max_attempts = max_attempts if max_attempts is not None else self.policy.max_attempts
        require(max_attempts is None or max_attempts >= 1, "max_attempts", max_attempts,
                 "must be None or >= 1")
        return max_attempts

    def _rate_limit_answer(self, headers: Mapping[str, str] | None,
                           status: int | None) -> tuple[RateLimit | None, float | None]:
        """What an answer (None: no answer) tells the pacer: its quota, and a 429's hold.

        Returns:
            The answer's rate limit (its reset set to the ``Retry-After`` of a 429 that has one:
            the server's word over its reset), and the seconds a 429 holds every request back.
        """
        limit = parse_rate_limit(headers) if headers is not None else None
        hold = None
        if status == 429 and headers is not None:
            hold = asked_delay(status, headers, maximum=self.retry.max_retry_after)
            retry_after = parse_retry_after(headers.get("Retry-After"))
            if retry_after is not None and limit is not None:
                limit = replace(limit, reset=hold)
        return limit, hold

    def _note_start(self, job_id: str, document: Any, retry_after: str | None,
                    sent_at: float, received_at: float, url: str | None = None) -> None:
        """Tell the duration model a job started (its start answer and ``Retry-After`` header)."""
        hint = parse_retry_after(retry_after, maximum=self.policy.max_hint_delay)
        try:
            status = read_job_status(document, job_id=job_id, url=url, reader=self._status_reader)
        except ProtocolError:
            # The answer names the job but not its state (a bare id, HeyGen's {"data":
            # {"video_id"}}): a job just created is pending, and said nothing of when to ask.
            status = JobStatus(job_id, JobResult.PENDING)
        self._learner.note_start(job_id, replace(status, retry_after=hint), sent_at=sent_at,
                                 received_at=received_at)

    def _note_batch(self, started: BatchStarted, offset: int, sent_at: float,
                    received_at: float, job_ids: list[str | None],
                    failed: dict[int, VideoTranslationError]) -> None:
        """Files one batch answer's items at ``offset`` in the whole start's ``job_ids`` and
        ``failed``, and tells the duration model of each job it started."""
        for index, job_id in enumerate(started.job_ids):
            job_ids[offset + index] = job_id
            if job_id is not None:
                self._note_start(job_id, started.documents[index], None, sent_at, received_at)
        for index, error in started.failed.items():
            failed[offset + index] = error
        logger.info("batch start: %d jobs started, %d failed",
                    len(started.job_ids) - len(started.failed), len(started.failed))


def started_ids(job_ids: list[str | None], failed: dict[int, VideoTranslationError]) -> list[str]:
    """The ids of a whole start (``start_jobs`` / ``start_many``), or its StartBatchError."""
    if failed:
        first = min(failed)
        raise StartBatchError(
            f"{len(failed)} of {len(job_ids)} jobs could not be started (the others were: "
            f"see job_ids); the first, #{first}: {failed[first]}", job_ids=job_ids, failed=failed)
    return [job_id for job_id in job_ids if job_id is not None]


_Client = TypeVar("_Client", bound=ClientBase)


class BatchAdapter(Generic[_Client]):
    """The part of a client's adapter for its batch driver that does not depend on the transport
    (each client's ``_Transport`` adds sending, sleeping and waiting)."""

    def __init__(self, client: _Client) -> None:
        self._client = client

    def new_batch(self, job_ids: Iterable[str]) -> ManyJobs:
        client = self._client
        ids = list(job_ids)
        # The event stream is this API's own: jobs whose monitor is elsewhere (another dialect's
        # route) are waited for one by one.
        native = all(client._status_url(job_id) == client._template_status_url(job_id)
                     for job_id in ids)
        return ManyJobs(ids, use_stream=client.use_event_stream and native, rng=client._rng)

    def clock(self) -> float:
        return self._client._clock()
