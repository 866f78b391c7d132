"""What the sync and asyncio clients share beyond the waiting decisions: their settings and bookkeeping.

    config = ClientConfig.from_args("http://user:pw@127.0.0.1:8000", None, None)
    config.base_url, config.auth   # 'http://127.0.0.1:8000', ('user', 'pw')

:class:`ClientConfig` normalizes and checks the constructor arguments both clients take (None means
the default; credentials in the URL become auth and leave the URL); :class:`ClientBase` holds the
parts of a client built from it (status URLs, the learned schedule's bookkeeping); and
:func:`start_answer_job_id` reads the job id of a start answer. No network I/O here (the transports,
``sync.py`` on requests and ``aio.py`` on aiohttp, do that); the one file a client opens is its
duration history (``history.py``, when given a ``history_path``).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from vtwait.core.planner import (
    DEFAULT_BASE_URL,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    JobStatus,
    PollingPolicy,
    ProtocolError,
    RetryPolicy,
    WaitPlanner,
    _describe,
    _require,
    parse_retry_after,
)
from vtwait.client.history import DurationHistory
from vtwait.core.learned import DurationLearner, start_answer_status
from vtwait.core.ratelimit import RateLimit, RatePacer, parse_rate_limit

__all__ = ["ClientBase", "ClientConfig", "start_answer_job_id"]


@dataclass(frozen=True)
class ClientConfig:
    """A client's settings, every default filled in and every value checked (see
    :meth:`from_args`); the fields are the client's attributes of the same names."""

    base_url: str  #: without credentials and without a trailing slash
    auth: Any  #: the caller's ``auth``, else a ``(username, password)`` pair, else None
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
                  rng: random.Random | None = None) -> ClientConfig:
        """The settings from a client constructor's arguments (None means the default).

        Args:
            base_url, username, password, auth, policy, retry, wait_timeout, request_timeout,
                status_url, single_status_url, start_url, cancel_url, respect_rate_limits,
                clock, rng: As :class:`client.VideoTranslationClient` takes them. Missing
                credentials come from the URL, then from ``API_USERNAME`` / ``API_PASSWORD``.

        Raises:
            ValueError: base_url is not an http(s) URL, a template lacks ``{job_id}``, or
                wait_timeout is not > 0.
        """
        base_url = DEFAULT_BASE_URL if base_url is None else base_url
        wait_timeout = DEFAULT_WAIT_TIMEOUT if wait_timeout is None else wait_timeout
        request_timeout = DEFAULT_REQUEST_TIMEOUT if request_timeout is None else request_timeout
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
        _require(wait_timeout > 0, "wait_timeout", wait_timeout, "must be > 0")
        username = username if username is not None else os.environ.get("API_USERNAME")
        password = password if password is not None else os.environ.get("API_PASSWORD")
        if auth is None and username and password is not None:
            auth = (username, password)
        return cls(base_url=base_url.rstrip("/"), auth=auth, policy=policy or PollingPolicy(),
                   retry=retry or RetryPolicy(), wait_timeout=wait_timeout,
                   request_timeout=request_timeout, status_url=status_url,
                   single_status_url=single_status_url, start_url=start_url,
                   cancel_url=cancel_url, clock=time.monotonic if clock is None else clock,
                   rng=rng or random.Random(), respect_rate_limits=respect_rate_limits is not False)


def start_answer_job_id(document: Any, location: str | None) -> str:
    """The job id of a start answer: ``job_id`` (or ``id``) in its body, else its ``Location``.

    Raises:
        ProtocolError: the answer names no job.
    """
    job_id = document.get("job_id", document.get("id")) if isinstance(document, Mapping) \
        else None
    if not isinstance(job_id, str | int) or isinstance(job_id, bool):
        job_id = location.rstrip("/").rsplit("/", 1)[-1] if location else None
    if not job_id:
        raise ProtocolError(f"the start answer has no job id: {_describe(document)}")
    return str(job_id)


class ClientBase:
    """What both transports share: settings as attributes, status URLs, and the learned
    schedule's bookkeeping (planners, starts, final statuses). The transports subclass it."""

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

    def __repr__(self) -> str:  # never shows credentials
        return f"{type(self).__name__}({self.base_url!r})"

    def _status_url(self, job_id: str | None) -> str:
        if job_id is None:
            return self.base_url + self.single_status_url
        return self.base_url + self.status_url.format(job_id=quote(str(job_id), safe=""))

    def _cancel_url(self, job_id: str) -> str:
        return self.base_url + self.cancel_url.format(job_id=quote(str(job_id), safe=""))

    def _new_planner(self, job_id: str | None, policy: PollingPolicy | None = None) -> WaitPlanner:
        """The planner of one job's wait; every per-job wait (single or batch) gets it here.

        Learned on a silent server (``learned_planner.py``) unless the policy says ``learn=False``.

        Args:
            job_id: The job waited for (None: the server's single job).
            policy: The policy to plan with (default: the client's).
        """
        policy = policy or self.policy
        if not policy.learn:
            return WaitPlanner(policy, rng=self._rng)
        return self._learner.planner(job_id, policy, now=self._clock(), rng=self._rng)

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
        _require(timeout > 0, "timeout", timeout, "must be > 0")
        return timeout

    def _checked_max_attempts(self, max_attempts: int | None) -> int | None:
        """A wait's attempt budget: None means the policy's; it must be None or >= 1."""
        max_attempts = max_attempts if max_attempts is not None else self.policy.max_attempts
        _require(max_attempts is None or max_attempts >= 1, "max_attempts", max_attempts,
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
            hold = parse_retry_after(headers.get("Retry-After"), maximum=self.retry.max_retry_after)
            if hold is None and limit is not None and limit.reset is not None:
                hold = min(limit.reset, self.retry.max_retry_after)
            elif hold is not None and limit is not None:
                limit = replace(limit, reset=hold)
        return limit, hold

    def _note_start(self, job_id: str, document: Any, retry_after: str | None,
                    sent_at: float, received_at: float) -> None:
        """Tell the duration model a job started (its start answer and ``Retry-After`` header)."""
        status = start_answer_status(document, job_id=job_id, retry_after=parse_retry_after(
            retry_after, maximum=self.policy.max_hint_delay))
        self._learner.note_start(job_id, status, sent_at=sent_at, received_at=received_at)
