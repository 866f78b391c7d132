"""How a wait asks and how one request is retried: the policies, their defaults, the backoff delays.

    policy = PollingPolicy(max_long_poll=10.0, jitter=full_jitter)
    delays = exponential_delays(1.0, 1.3, 20.0)    # 1.0, 1.3, 1.69, ... capped at 20 s

:class:`PollingPolicy` (long-poll, hints, learned schedule, backoff) and :class:`RetryPolicy`
(transient faults of one request) are small frozen dataclasses with keyword-only fields; a field
given as None takes its default, a bad value raises ValueError (:func:`require`, which every
checked setting of the core uses). Jitters are pure functions of a delay and a ``random.Random``.
All durations are in seconds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_JITTER",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_WAIT_TIMEOUT",
    "Jitter",
    "PollingPolicy",
    "RetryPolicy",
    "equal_jitter",
    "exponential_delays",
    "full_jitter",
    "require",
    "scaled_jitter",
]

#: Where ``python server.py`` listens by default.
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
#: How long ``wait_for_completion`` waits unless told otherwise: real translation jobs take
#: minutes, so an hour is generous but finite. Pass ``timeout=math.inf`` to wait forever.
DEFAULT_WAIT_TIMEOUT = 3600.0
#: Connect and read timeouts of one request; a long-poll adds its wait to the read timeout.
DEFAULT_REQUEST_TIMEOUT = (3.05, 10.0)


def require(ok: bool, name: str, value: object, rule: str) -> None:
    """Raise ``ValueError("<name> <rule>, got <value>")`` unless ``ok``: the check of a setting."""
    if not ok:
        raise ValueError(f"{name} {rule}, got {value!r}")


def _fill_defaults(config: Any, *, none_allowed: tuple[str, ...] = ()) -> None:
    """In a frozen dataclass, a field given as None takes its default (None means default).

    ``none_allowed`` names the fields where None is a value of its own (no jitter, no limit).
    """
    for item in fields(config):
        if getattr(config, item.name) is None and item.name not in none_allowed:
            object.__setattr__(config, item.name, item.default)


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
    require(0 <= share <= 1, "share", share, "must be in [0, 1]")

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
    #: (``vtwait.core.learned``); False for plain backoff.
    learn: bool = True
    #: Jobs the route must have shown before the learned schedule replaces backoff.
    learn_after: int = 20
    #: The learned schedule's knob: mean status requests per job it may spend (>= 1); more
    #: requests, shorter detection delay.
    learned_budget: float = 3.5

    def __post_init__(self) -> None:
        _fill_defaults(self, none_allowed=("jitter", "max_attempts"))
        require(self.initial_delay >= 0, "initial_delay", self.initial_delay, "must be >= 0")
        require(self.multiplier >= 1, "multiplier", self.multiplier, "must be >= 1")
        require(self.max_delay >= self.initial_delay, "max_delay", self.max_delay,
                 "must be >= initial_delay")
        require(self.max_attempts is None or self.max_attempts >= 1, "max_attempts",
                 self.max_attempts, "must be None or >= 1")
        require(self.max_long_poll >= 0, "max_long_poll", self.max_long_poll, "must be >= 0")
        require(self.max_hint_delay > 0, "max_hint_delay", self.max_hint_delay, "must be > 0")
        require(self.max_protocol_errors >= 0, "max_protocol_errors", self.max_protocol_errors,
                 "must be >= 0")
        require(self.learn_after >= 1, "learn_after", self.learn_after, "must be >= 1")
        require(self.learned_budget >= 1, "learned_budget", self.learned_budget, "must be >= 1")

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
    """Retries of one request on transient faults, decided by :class:`vtwait.core.retry.RetryState`
    for both clients.

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
        require(self.max_retries >= 0, "max_retries", self.max_retries, "must be >= 0")
        require(self.backoff_factor >= 0, "backoff_factor", self.backoff_factor, "must be >= 0")
        require(self.backoff_max >= 0, "backoff_max", self.backoff_max, "must be >= 0")
        require(self.max_retry_after >= 0, "max_retry_after", self.max_retry_after,
                 "must be >= 0")


def exponential_delays(initial: float, multiplier: float, maximum: float) -> Iterator[float]:
    """Yield ``initial``, ``initial * multiplier``, ... each capped at ``maximum``, forever."""
    delay = initial
    while True:
        yield min(delay, maximum)
        delay = min(delay * multiplier, maximum)
