"""Rate limits: a token bucket per credential, and the IETF ``RateLimit`` header fields.

Usage::

    limiter = RateLimiter(rate=20, burst=20)          # 20 requests/s, at most 20 at once
    decision = limiter.take("user:alice")             # one request's worth
    response.headers.update(decision.headers())       # RateLimit-Policy, RateLimit(, Retry-After)

The fields follow draft-ietf-httpapi-ratelimit-headers: ``RateLimit-Policy: "default";q=<rate>;w=1``
(the sustained quota: ``RATE_LIMIT`` requests per 1 s window) and
``RateLimit: "default";r=<remaining>;t=<seconds until the bucket is full again>``. A refused
request also gets ``Retry-After``: whole seconds until one token is back. One request costs one
token however long it is held (a long-poll, an event stream). Buckets live in this process: with
several server workers, each keeps its own. All durations are in seconds.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable

from flask import Flask, Response, g, request
from werkzeug.exceptions import TooManyRequests

__all__ = ["POLICY_NAME", "RateDecision", "RateLimiter", "RequestLimiter", "install"]

logger = logging.getLogger(__name__)

#: The policy's name in both header fields.
POLICY_NAME = "default"
#: Endpoints that never cost a token nor carry the fields: probes and scrapes.
EXEMPT_ENDPOINTS = frozenset({"api.healthz", "metrics"})
EXEMPT_PATHS = frozenset({"/healthz", "/metrics"})
#: Past this many remembered buckets, full ones (callers idle long enough) are dropped.
MAX_BUCKETS = 10_000


@dataclasses.dataclass(frozen=True, slots=True)
class RateDecision:
    """What one request's token cost came to."""

    #: Whether the request may proceed.
    allowed: bool
    #: Requests per second, sustained (the policy's ``q`` over ``w=1``).
    limit: int
    #: Whole tokens left after this request (``r``).
    remaining: int
    #: Whole seconds until the bucket is full again (``t``; 0 when it is full).
    reset: int
    #: Whole seconds until one token is back (at least 1); 0 when the request was allowed.
    retry_after: int

    def headers(self) -> dict[str, str]:
        """The IETF fields for this decision, and ``Retry-After`` when it was refused."""
        fields = {
            "RateLimit-Policy": f'"{POLICY_NAME}";q={self.limit};w=1',
            "RateLimit": f'"{POLICY_NAME}";r={self.remaining};t={self.reset}',
        }
        if not self.allowed:
            fields["Retry-After"] = str(self.retry_after)
        return fields


class RateLimiter:
    """One token bucket per key, ``rate`` tokens per second up to ``burst``; thread-safe.

    Args:
        rate: tokens added per second (``RATE_LIMIT``), at least 1.
        burst: the bucket's size (``RATE_BURST``), at least 1; a new key starts full.
        clock: monotonic seconds (tests pass a fake one).

    Raises:
        ValueError: ``rate`` or ``burst`` is below 1.
    """

    def __init__(
        self, rate: int, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate < 1 or burst < 1:
            raise ValueError(f"rate and burst must be at least 1, got {rate!r} and {burst!r}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when counted)

    def take(self, key: str) -> RateDecision:
        """Spends one token of ``key``'s bucket if it has one."""
        with self._lock:
            now = self._clock()
            tokens = self._tokens(key, now)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            if len(self._buckets) >= MAX_BUCKETS and key not in self._buckets:
                self._sweep(now)
            self._buckets[key] = (tokens, now)
        return RateDecision(
            allowed=allowed,
            limit=self.rate,
            remaining=math.floor(tokens),
            reset=math.ceil((self.burst - tokens) / self.rate),
            retry_after=0 if allowed else max(1, math.ceil((1.0 - tokens) / self.rate)),
        )

    def __len__(self) -> int:
        """How many buckets are remembered."""
        with self._lock:
            return len(self._buckets)

    def _tokens(self, key: str, now: float) -> float:
        counted = self._buckets.get(key)
        if counted is None:
            return float(self.burst)
        tokens, then = counted
        return min(float(self.burst), tokens + max(now - then, 0.0) * self.rate)

    def _sweep(self, now: float) -> None:
        # A full bucket is the same as no bucket: forgetting it changes no answer.
        full = [key for key in self._buckets if self._tokens(key, now) >= self.burst]
        for key in full:
            del self._buckets[key]
        logger.debug("forgot %d full rate-limit buckets; %d left", len(full), len(self._buckets))


class RequestLimiter:
    """The Flask side: charges each request to a key, refuses past the bucket, adds the fields."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    def admit(self, key: str) -> None:
        """Charges this request to ``key`` (exempt routes cost nothing).

        Raises:
            TooManyRequests: the bucket is empty; answered as a JSON 429 with ``Retry-After``.
        """
        if request.endpoint in EXEMPT_ENDPOINTS or request.path in EXEMPT_PATHS:
            return
        decision = g.rate_limit = self.limiter.take(key)
        if not decision.allowed:
            logger.warning("rate limit: refused %s %s for %s (retry in %d s)", request.method,
                           request.path, key, decision.retry_after)
            raise TooManyRequests(
                f"more than {self.limiter.rate} requests/s (burst {self.limiter.burst}) for this "
                f"credential (RATE_LIMIT); retry in {decision.retry_after} s",
                retry_after=decision.retry_after,
            )

    def add_headers(self, response: Response) -> Response:
        """after_request hook: the fields on every answer that was charged."""
        decision: RateDecision | None = g.get("rate_limit")
        if decision is not None:
            response.headers.update(decision.headers())
        return response


def install(app: Flask, rate: int, burst: int, *, clock: Callable[[], float]) -> RequestLimiter:
    """Builds the limiter, registers its header hook on ``app`` and returns it.

    The app calls :meth:`RequestLimiter.admit` itself, after it knows the caller's credential.
    """
    limiter = RequestLimiter(RateLimiter(rate, burst, clock=clock))
    app.after_request(limiter.add_headers)
    logger.info("rate limit: %d requests/s per credential, burst %d", rate, burst)
    return limiter
