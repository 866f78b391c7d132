"""Sans-IO decisions about one HTTP request: retry a transient fault or not, and which error an answer is.

    retries = RetryState(RetryPolicy())
    delay = retries.after_fault(status=503, headers={"Retry-After": "2"}, time_left=30.0)
    # 2.0, or None: give up

Both clients drive one :class:`RetryState` per request in their ``_send`` (the sync client's
session adapter makes no retries of its own): urllib3's schedule (the first retry at once, then
``backoff_factor * 2**(n-1)`` plus up to ``backoff_jitter`` capped at ``backoff_max``), or the
server's word when it gives one (:func:`asked_delay`: ``Retry-After`` clamped to
``max_retry_after``, ``0`` meaning now; a 429 without it: its quota's reset), the same budget
(``1 + max_retries`` attempts), never a sleep that would pass the deadline. All durations are in
seconds.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping

from vtwait.core.errors import (
    AuthenticationError,
    InvalidRequestError,
    JobNotFoundError,
    ServerError,
    VideoTranslationError,
)
from vtwait.core.policy import RetryPolicy
from vtwait.core.ratelimit import parse_rate_limit
from vtwait.core.status import describe, parse_retry_after

__all__ = ["TRANSIENT_STATUSES", "RetryState", "asked_delay", "error_for_answer", "error_message",
           "is_transient"]

#: The answers worth retrying: the server is busy or an upstream hop failed.
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


def is_transient(status: int) -> bool:
    """True for the answers worth retrying: 429, 502, 503, 504."""
    return status in TRANSIENT_STATUSES


def asked_delay(status: int, headers: Mapping[str, str], *, maximum: float) -> float | None:
    """The seconds an error answer asks the client to wait, or None when it says nothing.

    ``Retry-After`` (clamped to ``maximum``; ``0`` means now); for a 429 without one, the reset
    of its rate-limit fields. The retries and the rate pacer both take the hold from here.
    """
    delay = parse_retry_after(headers.get("Retry-After"), maximum=maximum)
    if delay is None and status == 429:
        limit = parse_rate_limit(headers)
        if limit is not None and limit.reset is not None:
            delay = min(limit.reset, maximum)
    return delay


class RetryState:
    """The retry decisions of one request (all its attempts), with no I/O and no clock.

    Call :meth:`after_fault` after each transient fault (a transient status, or no answer at all);
    it gives the seconds to sleep before the next attempt, or None when the request must give up.
    """

    def __init__(self, policy: RetryPolicy, *, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.faults = 0  # consecutive faults of this request so far
        self.retries = 0  # faults followed by another attempt
        self._rng = rng or random.Random()

    def after_fault(self, *, status: int | None = None, headers: Mapping[str, str] | None = None,
                    time_left: float = float("inf")) -> float | None:
        """Seconds to wait before retrying, or None to give up.

        Args:
            status: The transient status answered, or None when no answer came.
            headers: The answer's header fields (any case), for :func:`asked_delay`.
            time_left: Seconds until the deadline of the wait in progress.
        """
        self.faults += 1
        if self.faults > self.policy.max_retries:
            return None
        delay = None
        if status is not None and headers is not None:
            delay = asked_delay(status, headers, maximum=self.policy.max_retry_after)
        if delay is None:
            delay = self.backoff()
        if delay >= time_left:
            return None
        self.retries += 1
        return delay

    def backoff(self) -> float:
        """urllib3's backoff for the current fault count: 0 for the first, then doubling."""
        if self.faults <= 1:
            return 0.0
        policy = self.policy
        value = policy.backoff_factor * 2 ** (self.faults - 1)
        if policy.backoff_jitter:
            value += self._rng.random() * policy.backoff_jitter
        return max(0.0, min(policy.backoff_max, value))


def error_message(body: bytes, reason: str = "") -> str:
    """The server's own words from a JSON error body, else the start of the body."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError, RecursionError):
        text = body.decode("utf-8", "replace")
        return describe(text, 80) if text else reason or "no body"
    if isinstance(error, Mapping):
        return str(error.get("message") or error.get("code") or error)
    if not error:  # other envelopes: problem details (RFC 9457, Replicate), a top-level message
        document = json.loads(body)
        words = document.get("detail") or document.get("message") or document.get("title")
        if isinstance(words, str) and words:
            return words
    return str(error) if error else reason or "no detail"


def error_for_answer(method: str, url: str, status: int, detail: str, *, job_id: str | None,
                     retries: int = 0) -> VideoTranslationError:
    """The exception an error answer (status >= 400) stands for, after ``retries`` retries."""
    if status in (401, 403):
        return AuthenticationError(
            f"{method} {url}: the server refused the credentials (HTTP {status}: {detail}); "
            "check the credentials (API_USERNAME and API_PASSWORD, API_BEARER_TOKEN or API_KEY)",
            job_id=job_id, status_code=status)
    if status == 404:
        return JobNotFoundError(
            f"job {job_id} not found (HTTP 404: {detail}); it may have expired, or the "
            "server may have restarted" if job_id else f"{method} {url}: not found "
            f"(HTTP 404: {detail}); check base_url and the status URL",
            job_id=job_id, status_code=status)
    if status in TRANSIENT_STATUSES or status >= 500:
        after = f" after {retries} retries" if retries else ""
        return ServerError(f"{method} {url}: HTTP {status}{after}: {detail}",
                           job_id=job_id, status_code=status)
    return InvalidRequestError(f"{method} {url}: the server rejected the request (HTTP {status}: "
                               f"{detail})", job_id=job_id, status_code=status)
