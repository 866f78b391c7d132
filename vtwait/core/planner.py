"""The sans-IO core shared by the sync and asyncio clients: no sockets, no clock, no sleeping.

Everything here turns answers into decisions: the exception tree, the value types
(:class:`JobStatus`, :class:`PollingPolicy`, :class:`RetryPolicy`), the strict parsers of what a
server sends (status documents, ``Retry-After``, ``Preference-Applied``), the backoff delays and
their jitter, and :class:`WaitPlanner`, which says how long to wait before the next status request
and why. ``client.py`` (requests) and its asyncio twin only move bytes and sleep; a bug fixed here is
fixed for both. Import the public names from ``client``, which re-exports them.

All durations are in seconds. The exception tree is drawn in ``client``'s docstring.
"""

from __future__ import annotations

import email.utils
import enum
import json
import logging
import math
import random
import reprlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from dataclasses import replace as _replace
from typing import Any

from vtwait.core.ratelimit import RateLimit, parse_rate_limit

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_WAIT_TIMEOUT",
    "FINAL_RESULTS",
    "AuthenticationError",
    "BatchError",
    "Decision",
    "InvalidRequestError",
    "JobNotFoundError",
    "JobResult",
    "JobStatus",
    "PollingPolicy",
    "ProtocolError",
    "RetryPolicy",
    "ServerError",
    "ServerUnreachableError",
    "VideoTranslationError",
    "WaitPlanner",
    "WaitTimeout",
    "WebhookVerificationError",
    "equal_jitter",
    "exponential_delays",
    "full_jitter",
    "scaled_jitter",
    "parse_preference_applied",
    "parse_retry_after",
    "parse_status_document",
    "read_status_answer",
]

logger = logging.getLogger(__name__)

#: Where ``python server.py`` listens by default.
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
#: How long ``wait_for_completion`` waits unless told otherwise: real translation jobs take
#: minutes, so an hour is generous but finite. Pass ``timeout=math.inf`` to wait forever.
DEFAULT_WAIT_TIMEOUT = 3600.0
#: Connect and read timeouts of one request; a long-poll adds its wait to the read timeout.
DEFAULT_REQUEST_TIMEOUT = (3.05, 10.0)

_TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
# Time a long-poll ETA check-in waits for, as a share of the ETA; and how late after the predicted
# end the final ask is placed, so that it lands after the server's own timer rather than just before.
_ETA_CHECK_IN_SHARE = 0.5
_ETA_LANDING_MARGIN = 0.005
# First step after the ETA has run out with the job still pending; the steps double from it.
_OVERDUE_FIRST_DELAY = 0.01
# Bounds on the measured speed of the server's ETA against our clock (1.0 = the ETA is honest).
_ETA_RATE_BOUNDS = (0.5, 2.0)


def _require(ok: bool, name: str, value: object, rule: str) -> None:
    if not ok:
        raise ValueError(f"{name} {rule}, got {value!r}")


def _fill_defaults(config: Any, *, none_allowed: tuple[str, ...] = ()) -> None:
    """In a frozen dataclass, a field given as None takes its default (None means default).

    ``none_allowed`` names the fields where None is a value of its own (no jitter, no limit).
    """
    for item in fields(config):
        if getattr(config, item.name) is None and item.name not in none_allowed:
            object.__setattr__(config, item.name, item.default)


# --------------------------------------------------------------------------------------- errors
class VideoTranslationError(Exception):
    """Base of every error this client raises."""

    def __init__(self, message: str, *, job_id: str | None = None, status_code: int | None = None):
        super().__init__(message)
        self.job_id = job_id
        self.status_code = status_code


class AuthenticationError(VideoTranslationError):
    """The server refused the credentials (401) or the action (403); retrying will not help."""


class JobNotFoundError(VideoTranslationError, LookupError):
    """The server does not know the job (404)."""


class InvalidRequestError(VideoTranslationError, ValueError):
    """The server rejected the request as malformed (a 4xx other than 401, 403, 404 and 429)."""


class ServerError(VideoTranslationError):
    """The server kept failing (5xx) or refusing (429) after the transient retries."""


class ServerUnreachableError(VideoTranslationError, ConnectionError):
    """No answer from the server after the transient retries (refused, reset, timed out)."""


class ProtocolError(VideoTranslationError, ValueError):
    """The server answered, but not with a status this client can read."""


class WaitTimeout(VideoTranslationError, TimeoutError):
    """The deadline or the attempt budget ran out before the job reached a final status.

    A wait for many jobs names the jobs still ``pending`` and carries the ``finished`` ones
    (``{job_id: JobStatus}``) and the ``failed`` ones (``{job_id: VideoTranslationError}``).
    """

    def __init__(self, message: str, *, job_id: str | None, last_status: JobStatus | None,
                 attempts: int, elapsed: float, pending: tuple[str, ...] = (),
                 finished: Mapping[str, JobStatus] | None = None,
                 failed: Mapping[str, VideoTranslationError] | None = None):
        super().__init__(message, job_id=job_id)
        self.last_status = last_status
        self.attempts = attempts
        self.elapsed = elapsed
        self.pending = pending
        self.finished = dict(finished or {})
        self.failed = dict(failed or {})


class BatchError(VideoTranslationError):
    """Some jobs of a batch could not be waited for (unknown, refused); every other one ended.

    ``failed`` maps each such job to its error (e.g. :class:`JobNotFoundError`), ``finished``
    maps every other job to its final :class:`JobStatus`.
    """

    def __init__(self, message: str, *, failed: Mapping[str, VideoTranslationError],
                 finished: Mapping[str, JobStatus]):
        super().__init__(message)
        self.failed = dict(failed)
        self.finished = dict(finished)


class WebhookVerificationError(VideoTranslationError, ValueError):
    """A webhook delivery that is not genuine: ``reason`` is ``forged``, ``stale`` or ``malformed``."""

    def __init__(self, message: str, *, reason: str, job_id: str | None = None):
        super().__init__(message, job_id=job_id)
        self.reason = reason


# ---------------------------------------------------------------------------------- value types
class JobResult(str, enum.Enum):
    """A job's state as the server reports it."""

    PENDING = "pending"
    COMPLETED = "completed"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


FINAL_RESULTS = frozenset({JobResult.COMPLETED, JobResult.ERROR})

# Status words seen in the wild, mapped onto ours (compared lower-cased, '-' and ' ' as '_').
_RESULT_WORDS = {
    **dict.fromkeys(("pending", "queued", "running", "processing", "in_progress", "started",
                     "waiting", "accepted", "scheduled"), JobResult.PENDING),
    **dict.fromkeys(("completed", "complete", "succeeded", "success", "successful", "done",
                     "finished", "ok"), JobResult.COMPLETED),
    **dict.fromkeys(("error", "failed", "failure", "errored", "cancelled", "canceled", "aborted"),
                    JobResult.ERROR),
}
_STATUS_KEYS = ("result", "status", "state")


@dataclass(frozen=True)
class JobStatus:
    """One answer about a job: its state, and the server's hints for when to ask again."""

    job_id: str | None
    result: JobResult
    progress: float | None = None  #: 0.0 to 1.0, when the server says
    eta_seconds: float | None = None  #: the server's estimate of the time left
    finished_at: float | None = None  #: Unix time the job became final, when the server says
    retry_after: float | None = None  #: the ``Retry-After`` header, in seconds from the answer
    wait_applied: float | None = None  #: the long-poll wait the server says it applied
    error: str | None = None  #: the server's message for a job that ended in error
    phase: str | None = None  #: ``queued``, ``running``, ``completed``, ``error``, ``canceled``
    queue_position: int | None = None  #: 1-based place in the server's queue, while queued
    started_at: float | None = None  #: Unix time the job left the queue and began to run
    #: The answer's rate-limit fields, when it had any (see :mod:`rate_pacing`).
    rate_limit: RateLimit | None = field(default=None, repr=False, compare=False)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        """True once the job is ``completed`` or ``error``."""
        return self.result in FINAL_RESULTS

    def __str__(self) -> str:
        return self.result.value


Jitter = Callable[[float, random.Random], float]


def full_jitter(delay: float, rng: random.Random) -> float:
    """A delay drawn uniformly from [0, delay] (AWS 'full jitter'): spreads clients the most."""
    return rng.uniform(0.0, delay)


def equal_jitter(delay: float, rng: random.Random) -> float:
    """A delay drawn uniformly from [delay/2, delay]."""
    return delay / 2 + rng.uniform(0.0, delay / 2)


def scaled_jitter(share: float) -> Jitter:
    """A jitter that draws each delay uniformly from [(1 - share) * delay, delay].

    ``scaled_jitter(1.0)`` is full jitter, ``scaled_jitter(0.5)`` equal jitter.
    """
    _require(0 <= share <= 1, "share", share, "must be in [0, 1]")

    def jitter(delay: float, rng: random.Random) -> float:
        return delay * (1 - share * rng.random())

    return jitter


#: The default: 20 % is enough to spread clients started together over time; full jitter
#: spreads them more but, measured on 3-7 s jobs, asks more often *and* learns later than
#: polling once a second (its long random tail), so it is opt-in.
DEFAULT_JITTER = scaled_jitter(0.2)


@dataclass(frozen=True, kw_only=True)
class PollingPolicy:
    """How a wait asks: long-poll, hints, and the backoff used when the server gives neither.

    The defaults suit jobs of seconds to minutes. ``PollingPolicy.doubling(retries=5)`` is what simple
    clients do; ``PollingPolicy.fixed(1.0)`` is the trivial loop.
    """

    #: First backoff delay, used when the server gives no hint.
    initial_delay: float = 1.0
    #: Each further backoff delay is the previous one times this.
    multiplier: float = 1.3
    #: Cap on one backoff delay.
    max_delay: float = 20.0
    #: Applied to each backoff delay (``full_jitter``, ``equal_jitter``, ``scaled_jitter(s)``);
    #: None for none.
    jitter: Jitter | None = DEFAULT_JITTER
    #: Status requests a wait may make; None for no limit but the deadline.
    max_attempts: int | None = None
    #: Ask the server to hold the request (long-poll).
    long_poll: bool = True
    #: The longest hold to ask for; servers cap it further.
    max_long_poll: float = 30.0
    #: Follow ``eta_seconds`` and ``Retry-After`` when the server gives them.
    use_hints: bool = True
    #: Clamp on a delay taken from a hint (absurd hints are cut to it).
    max_hint_delay: float = 300.0
    #: Consecutive unreadable answers a wait tolerates before raising ProtocolError.
    max_protocol_errors: int = 2
    #: On a silent server, ask when the jobs seen so far say a job has likely ended
    #: (``learned_planner.py``); False for plain backoff.
    learn: bool = True
    #: Jobs the route must have shown before the learned schedule replaces backoff.
    learn_after: int = 20
    #: The learned schedule's knob: mean status requests per job it may spend (>= 1); more
    #: requests, shorter detection delay.
    learned_budget: float = 3.5

    def __post_init__(self) -> None:
        _fill_defaults(self, none_allowed=("jitter", "max_attempts"))
        _require(self.initial_delay >= 0, "initial_delay", self.initial_delay, "must be >= 0")
        _require(self.multiplier >= 1, "multiplier", self.multiplier, "must be >= 1")
        _require(self.max_delay >= self.initial_delay, "max_delay", self.max_delay,
                 "must be >= initial_delay")
        _require(self.max_attempts is None or self.max_attempts >= 1, "max_attempts",
                 self.max_attempts, "must be None or >= 1")
        _require(self.max_long_poll >= 0, "max_long_poll", self.max_long_poll, "must be >= 0")
        _require(self.max_hint_delay > 0, "max_hint_delay", self.max_hint_delay, "must be > 0")
        _require(self.max_protocol_errors >= 0, "max_protocol_errors", self.max_protocol_errors,
                 "must be >= 0")
        _require(self.learn_after >= 1, "learn_after", self.learn_after, "must be >= 1")
        _require(self.learned_budget >= 1, "learned_budget", self.learned_budget, "must be >= 1")

    @classmethod
    def doubling(cls, *, initial: float | None = 1.0, retries: int | None = 10) -> PollingPolicy:
        """Plain doubling from ``initial``, no jitter, no hints, no long-poll, ``retries`` re-asks.

        ``retries=None`` means no limit but the deadline.
        """
        initial = 1.0 if initial is None else initial
        return cls(initial_delay=initial, multiplier=2.0, max_delay=math.inf, jitter=None,
                   max_attempts=None if retries is None else retries + 1,
                   long_poll=False, use_hints=False, learn=False)

    @classmethod
    def fixed(cls, interval: float | None = 1.0) -> PollingPolicy:
        """The trivial loop: one request every ``interval`` seconds, nothing else."""
        interval = 1.0 if interval is None else interval
        return cls(initial_delay=interval, multiplier=1.0, max_delay=interval, jitter=None,
                   long_poll=False, use_hints=False, learn=False)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Retries of one request on transient faults, done by urllib3's ``Retry``.

    Attempts of one request: at most ``1 + max_retries``. Sleeps between them: ``Retry-After`` when
    the server sends one (clamped to ``max_retry_after``), else 0, then ``backoff_factor * 2**n``
    capped at ``backoff_max``; never past the deadline of the wait in progress.
    """

    max_retries: int = 5
    backoff_factor: float = 0.2
    backoff_max: float = 5.0
    backoff_jitter: float = 0.1
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        _fill_defaults(self)
        _require(self.max_retries >= 0, "max_retries", self.max_retries, "must be >= 0")
        _require(self.backoff_factor >= 0, "backoff_factor", self.backoff_factor, "must be >= 0")
        _require(self.backoff_max >= 0, "backoff_max", self.backoff_max, "must be >= 0")
        _require(self.max_retry_after >= 0, "max_retry_after", self.max_retry_after,
                 "must be >= 0")


# -------------------------------------------------------------------------------- pure helpers
def exponential_delays(initial: float, multiplier: float, maximum: float) -> Iterator[float]:
    """Yield ``initial``, ``initial * multiplier``, ... each capped at ``maximum``, forever."""
    delay = initial
    while True:
        yield min(delay, maximum)
        delay = min(delay * multiplier, maximum)


def parse_retry_after(value: str | None, *, now: float | None = None,
                      maximum: float | None = math.inf) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), or None.

    Unreadable values give None. Negative and past values give 0 ("now"), huge ones ``maximum``
    (None: no cap).
    """
    maximum = math.inf if maximum is None else maximum
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is read as such
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return maximum if seconds > 0 else None
    return min(max(seconds, 0.0), maximum)


def parse_preference_applied(value: str | None) -> float | None:
    """The ``wait`` a server reports in ``Preference-Applied`` (RFC 7240), or None."""
    if not value:
        return None
    for token in value.split(","):
        name, _, arg = token.partition("=")
        if name.strip().lower() == "wait":
            seconds = _number(arg.strip().strip('"'))
            return seconds if seconds is not None and seconds >= 0 else None
    return None


def _number(value: Any) -> float | None:
    """A finite float from a JSON number or numeric string, else None (bools are not numbers)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _describe(payload: Any, limit: int = 120) -> str:
    try:
        text = payload if isinstance(payload, str) else json.dumps(payload, default=str)
    except (RecursionError, TypeError, ValueError):  # nested too deeply, or not JSON-like at all
        text = reprlib.repr(payload)  # depth-limited
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_status_document(document: Any, *, job_id: str | None = None) -> JobStatus:
    """Read a status document from our server or a plainer one; raise ProtocolError if unusable.

    The state may sit under ``result``, ``status`` or ``state``, at the top or one level down
    (``{"status": {"status": "running", "progress": 40}}``), in any case; common synonyms are read
    (``failed`` as error, ``succeeded`` as completed, ``queued``/``running`` as pending). Progress
    may be a fraction or a percentage. ``phase`` (or a ``queued``, ``running`` or ``canceled``
    status word), ``queue_position`` and ``started_at`` are read when present; a ``canceled``
    phase is a final error whatever the result says.
    """
    if not isinstance(document, Mapping):
        raise ProtocolError(f"expected a JSON object with a job status, got {_describe(document)}",
                            job_id=job_id)
    body: Mapping[str, Any] = document
    word = None
    for key in _STATUS_KEYS:
        value = document.get(key)
        if isinstance(value, Mapping):  # nested one level down
            body = {**document, **value}
            value = next((value.get(k) for k in _STATUS_KEYS if isinstance(value.get(k), str)),
                         None)
        if isinstance(value, str):
            word = value
            break
    if word is None:
        raise ProtocolError(f"no 'result' or 'status' in the answer: {_describe(document)}",
                            job_id=job_id)
    result = _RESULT_WORDS.get(word.strip().lower().replace("-", "_").replace(" ", "_"))
    if result is None:
        raise ProtocolError(f"unknown job status {word!r} in the answer: {_describe(document)}",
                            job_id=job_id)

    phase = _phase(body.get("phase")) or _phase(word, _WORD_PHASES)
    if phase == "canceled":
        result = JobResult.ERROR
    position = _number(body.get("queue_position"))
    progress = _number(body.get("progress"))
    if progress is not None:
        progress = min(max(progress / 100 if progress > 1 else progress, 0.0), 1.0)
    eta = _number(body.get("eta_seconds", body.get("eta")))
    error = body.get("error") if result is JobResult.ERROR else None
    if isinstance(error, Mapping):
        error = error.get("message")
    found_id = body.get("job_id", body.get("id"))
    return JobStatus(
        job_id=str(found_id) if isinstance(found_id, str | int) else job_id,
        result=result,
        progress=progress,
        eta_seconds=max(eta, 0.0) if eta is not None else None,
        finished_at=_number(body.get("finished_at")),
        error=str(error) if error is not None else None,
        phase=phase,
        queue_position=int(position) if position is not None and 1 <= position < 2**63 else None,
        started_at=_number(body.get("started_at")),
        raw=dict(document),
    )


_PHASES = frozenset({"queued", "running", "completed", "error", "canceled"})
# Status words that also name a phase (a plainer server's "status": "queued").
_WORD_PHASES = frozenset({"queued", "running", "canceled"})


def _phase(value: Any, known: frozenset[str] = _PHASES) -> str | None:
    """A phase word, lower-cased (``cancelled`` spelled ``canceled``), or None."""
    if not isinstance(value, str):
        return None
    word = value.strip().lower().replace("cancelled", "canceled")
    return word if word in known else None


def read_status_answer(document: Any, headers: Mapping[str, str], *, job_id: str | None,
                       max_hint_delay: float | None = None,
                       now: float | None = None) -> JobStatus:
    """A status answer, body and headers, as one :class:`JobStatus` (any transport uses this).

    Adds to :func:`parse_status_document` the hint headers: ``Retry-After`` (clamped to
    ``max_hint_delay``), ``Preference-Applied`` and the rate-limit fields (``rate_limit``), from
    which :class:`WaitPlanner` tells a rate limiter's ``Retry-After`` from a poll hint.

    Args:
        document: The decoded JSON body.
        headers: The answer's header fields (names in any case).
        job_id: The job asked about, used when the body names none.
        max_hint_delay: Cap on ``Retry-After`` (None: no cap).
        now: Unix time for date-valued fields (default: the time now).

    Raises:
        ProtocolError: the body holds no readable status.
    """
    status = parse_status_document(document, job_id=job_id)
    lower = {str(k).lower(): v for k, v in headers.items()}
    return _replace(status,
                    retry_after=parse_retry_after(lower.get("retry-after"), now=now,
                                                  maximum=max_hint_delay),
                    wait_applied=parse_preference_applied(lower.get("preference-applied")),
                    rate_limit=parse_rate_limit(headers, now=now))


# --------------------------------------------------------------------------- the sans-IO core
@dataclass(frozen=True)
class Decision:
    """What to do after an answer: sleep ``delay``, then ask with a long-poll of ``wait``."""

    delay: float
    reason: str


class WaitPlanner:
    """The waiting strategy with no I/O: feed it each answer, it says how long to wait and why.

    Drive it with any transport: call :meth:`long_poll_for` before each request,
    :meth:`after_answer` with what came back (or :meth:`after_failure`), then sleep the delay.
    """

    def __init__(self, policy: PollingPolicy, *, rng: random.Random | None = None):
        self.policy = policy
        self._rng = rng or random.Random()
        self._backoff = exponential_delays(policy.initial_delay, policy.multiplier,
                                           policy.max_delay)
        self._last_eta: tuple[float, float] | None = None  # (received at, eta then)
        # After the ETA has run out and the job is still pending: short, growing steps.
        self._overdue = exponential_delays(_OVERDUE_FIRST_DELAY, 2.0, policy.max_delay)

    def long_poll_for(self, time_left: float) -> int | None:
        """Whole seconds of long-poll to ask for, bounded by the time left, or None for none."""
        if not self.policy.long_poll:
            return None
        seconds = math.floor(min(self.policy.max_long_poll, time_left))
        return seconds if seconds >= 1 else None

    def after_answer(self, status: JobStatus, *, asked_wait: float | None, sent_at: float,
                     received_at: float) -> Decision:
        """The delay before the next request, given a pending answer."""
        took = received_at - sent_at
        if asked_wait:
            # Held for most of the window, or said so and held at least half of it: the server
            # long-polls, so ask again at once. A bare echo with no hold is not trusted (no spin).
            if took >= 0.8 * asked_wait or (status.wait_applied is not None
                                            and took >= 0.5 * asked_wait):
                return Decision(0.0, f"long-poll window of {asked_wait:g} s ended")
        if self.policy.use_hints:
            decision = self._from_hints(status, received_at)
            if decision is not None:
                return decision
        return self._when_silent(status, received_at)

    def first_delay(self, now: float) -> Decision | None:
        """The delay before the first poll, or None to ask at once (``LearnedPlanner`` may wait)."""
        return None

    def after_failure(self, error: Exception) -> Decision:
        """The delay before the next request after a poll that got no usable answer."""
        return self._next_backoff(f"poll failed ({type(error).__name__}): backoff")

    def _from_hints(self, status: JobStatus, received_at: float) -> Decision | None:
        eta = status.eta_seconds
        if eta is not None and eta > 0:
            previous, self._last_eta = self._last_eta, (received_at, eta)
            rate = None
            if previous is not None and received_at - previous[0] >= 0.05 and eta < previous[1]:
                low, high = _ETA_RATE_BOUNDS
                rate = min(max((previous[1] - eta) / (received_at - previous[0]), low), high)
            if rate is None and eta > 1.0 and previous is None:
                return self._clamp_hint(eta * _ETA_CHECK_IN_SHARE,
                                        f"check in halfway through the ETA of {eta:.3f} s")
            remaining = eta / (rate or 1.0)
            why = f"ETA {eta:.3f} s" + (f" running at {rate:.2f}x our clock" if rate else "")
            return self._clamp_hint(remaining + _ETA_LANDING_MARGIN, why)
        if eta is not None:  # 0 while pending: due any moment, which beats a whole-second hint
            return Decision(next(self._overdue), "ETA ran out, job still pending: short step")
        limit = status.rate_limit
        if status.retry_after is not None and limit is not None and limit.remaining:
            # A rate limiter's Retry-After beside quota left (its window, say 60 s) says nothing
            # about the job: following it would learn of a 2 s job a minute late.
            return None
        if status.retry_after is not None:
            return self._clamp_hint(status.retry_after, f"Retry-After {status.retry_after:g} s")
        return None

    def _when_silent(self, status: JobStatus, received_at: float) -> Decision:
        """The delay after an answer with no hint; ``LearnedPlanner`` overrides it."""
        return self._next_backoff("no hint from the server: backoff")

    def _clamp_hint(self, delay: float, why: str) -> Decision:
        if delay > self.policy.max_hint_delay:
            return Decision(self.policy.max_hint_delay, f"{why}, cut to max_hint_delay")
        return Decision(max(delay, 0.0), why)

    def _next_backoff(self, why: str) -> Decision:
        delay = next(self._backoff)
        if self.policy.jitter is not None:
            delay = self.policy.jitter(delay, self._rng)
        return Decision(delay, why)
