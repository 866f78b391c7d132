"""Rate limits, read and respected: strict parsers of a server's rate-limit fields, and a pacer.

    pacer = RatePacer()
    ticket, delay = pacer.reserve(now)          # ticket None: nothing booked, ask again after delay
    ...sleep(delay), send, then:
    pacer.observe(parse_rate_limit(response.headers), ticket=ticket, at=received_at)

No I/O, no clock, no sleeping: the caller passes the time in and sleeps. ``client.py`` drives one
:class:`RatePacer` per client instance under a lock, so every wait in every thread shares one
budget; an asyncio driver needs no lock (one event loop), the same core.

Fields read, the first form present wins:

1. IETF ``RateLimit-Policy: "default";q=100;w=60`` and ``RateLimit: "default";r=50;t=30``
   (draft-ietf-httpapi-ratelimit-headers, structured-field lists per RFC 9651, read by
   ``structured_fields.py``). With several policies the binding one (least remaining, then
   latest reset) counts.
2. The older drafts' ``RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (and ``RateLimit-Policy:
   100;w=60`` for the window).
3. The widespread ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset``.

A reset is delta seconds; a value of 10^9 or more is read as a Unix timestamp (10^12 or more: in
milliseconds), since no server means a window of 31 years. Unreadable values are None; numbers out
of range are clamped (negative remaining is 0, a reset is in ``[0, max_reset]``).

How the pacer decides: while the last answer's remaining quota, minus the requests booked since
that answer's own request, leaves a token, a request goes at once (bursts are what the quota is
for). Once it is spent, the next request waits for the reset, and further ones are spaced by
``window / limit`` (the refill rate), which is safe whether the server counts in fixed windows or
with a token bucket. A 429 blocks every request until the server's ``Retry-After`` (or reset).
All durations are in seconds.
"""

from __future__ import annotations

import bisect
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vtwait.core.structured_fields import parse_structured_list

__all__ = [
    "DEFAULT_MAX_RESET",
    "RateLimit",
    "RatePacer",
    "parse_rate_limit",
]

#: Longest reset read from a header; longer ones are cut to it (a day).
DEFAULT_MAX_RESET = 86_400.0
#: Longest a caller is told to wait before asking the pacer again without a booking; a fresh
#: answer that reopens the budget is noticed within this.
DEFAULT_HORIZON = 1.0
#: Spacing of requests once the quota is spent when the server gave no limit and window to derive
#: the refill rate from: one probe per second, whose answer tells more.
DEFAULT_PROBE_INTERVAL = 1.0
#: Longest the first request of a client is awaited before others go without knowing the limits.
DEFAULT_FIRST_ANSWER_WAIT = 0.5
# How often a request waiting for the first answer looks again.
_FIRST_ANSWER_STEP = 0.01
#: A booked request planned to go this long before the answered one may still have reached the
#: server after it (a thread runs late): it is counted as not in the answer's remaining quota.
DEFAULT_SEND_SLACK = 0.25
# Bookings remembered to match answers with their send times: this many seconds, at most this many.
_RECENT_SPAN, _RECENT_MAX = 30.0, 10_000
#: A reset of this many or more is a Unix timestamp, not delta seconds; this many or more, in ms.
_EPOCH_SECONDS, _EPOCH_MILLISECONDS = 1e9, 1e12


# -------------------------------------------------------------------------------- the fields
@dataclass(frozen=True)
class RateLimit:
    """What one answer says about the caller's quota. Every figure is optional."""

    remaining: int | None  #: requests left before the reset
    reset: float | None  #: seconds from the answer until the quota refills
    limit: int | None = None  #: requests allowed per window
    window: float | None = None  #: the window, in seconds
    policy: str | None = None  #: the policy's name, when the server gives one
    source: str = "ietf"  #: which form was read: ``ietf``, ``draft`` or ``x-ratelimit``

    @property
    def interval(self) -> float | None:
        """Seconds per request at the refill rate (``window / limit``), when both are known."""
        if self.limit and self.window:
            return self.window / self.limit
        return None


def _lower_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header names lower-cased; repeated fields joined with ', ' (RFC 9110 5.3)."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in pairs:
        key = str(name).lower()
        out[key] = f"{out[key]}, {value}" if key in out else str(value)
    return out


def _count(value: Any) -> int | None:
    """A quota count: a non-negative int (negative clamped to 0), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return max(int(value), 0)


def _seconds(value: Any, maximum: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return min(max(float(value), 0.0), maximum)


def _plain_number(text: str | None) -> float | None:
    """The leading number of a plain field (``100`` or ``100, 100;w=60``), or None."""
    if text is None:
        return None
    head = text.split(",", 1)[0].split(";", 1)[0].strip()
    if not re.fullmatch(r"-?\d{1,18}(\.\d{1,9})?", head):
        return None
    return float(head)


def _reset_seconds(value: float | None, *, now: float, maximum: float) -> float | None:
    """Delta seconds, or a Unix timestamp (s or ms) turned into seconds from ``now``."""
    if value is None:
        return None
    if value >= _EPOCH_MILLISECONDS:
        value = value / 1000 - now
    elif value >= _EPOCH_SECONDS:
        value = value - now
    return min(max(value, 0.0), maximum)


def _ietf(fields: dict[str, str], maximum: float) -> RateLimit | None:
    limits = parse_structured_list(fields.get("ratelimit"))
    if not limits:
        return None
    candidates = []
    for name, params in limits:
        remaining = _count(params.get("r"))
        if isinstance(name, str) and remaining is not None:
            candidates.append((remaining, -(_seconds(params.get("t"), maximum) or 0.0), name,
                               _seconds(params.get("t"), maximum)))
    if not candidates:
        return None
    remaining, _, name, reset = min(candidates)
    limit, window = _policies(fields.get("ratelimit-policy"), maximum).get(name, (None, None))
    return RateLimit(remaining, reset, limit, window, name, "ietf")


def _policies(text: str | None, maximum: float) -> dict[str | None, tuple[int | None,
                                                                        float | None]]:
    """Policy name to (quota, window): ``"name";q=100;w=60``, or the older ``100;w=60``."""
    policies: dict[str | None, tuple[int | None, float | None]] = {}
    for item, params in parse_structured_list(text) or []:
        window = _seconds(params.get("w"), maximum)
        window = window if window else None  # a zero window means nothing
        if isinstance(item, str):
            policies[item] = (_count(params.get("q")), window)
        elif isinstance(item, int) and not isinstance(item, bool) and item >= 0:
            policies.setdefault(None, (item, window))  # older drafts: the first is the quota
    return policies


def _draft(fields: dict[str, str], now: float, maximum: float, prefix: str,
           source: str) -> RateLimit | None:
    remaining = _plain_number(fields.get(prefix + "remaining"))
    if remaining is None:
        return None
    limit = _plain_number(fields.get(prefix + "limit"))
    window = None
    if source == "draft":
        limit_policy = _policies(fields.get("ratelimit-policy"), maximum).get(None)
        window = limit_policy[1] if limit_policy else None
    return RateLimit(_count(remaining), _reset_seconds(_plain_number(fields.get(prefix + "reset")),
                                                       now=now, maximum=maximum),
                     _count(limit) if limit is not None else None, window, None, source)


def parse_rate_limit(headers: Mapping[str, str] | Iterable[tuple[str, str]], *,
                     now: float | None = None,
                     max_reset: float | None = None) -> RateLimit | None:
    """What an answer's headers say about the rate limit, or None when they say nothing.

    Args:
        headers: The answer's header fields, names in any case (a mapping or (name, value) pairs).
        now: Unix time, to turn a reset given as a timestamp into seconds (default: the time now).
        max_reset: Cap on a reset, in seconds (default ``DEFAULT_MAX_RESET``).

    Returns:
        A :class:`RateLimit` with the remaining quota known, or None (no rate-limit fields, or
        none readable).
    """
    fields = _lower_headers(headers)
    maximum = DEFAULT_MAX_RESET if max_reset is None else max_reset
    wall = time.time() if now is None else now
    return (_ietf(fields, maximum)
            or _draft(fields, wall, maximum, "ratelimit-", "draft")
            or _draft(fields, wall, maximum, "x-ratelimit-", "x-ratelimit"))


# ---------------------------------------------------------------------------------- the pacer
class RatePacer:
    """When may the next request go, given the last word of the server on the quota. Sans-IO.

    Every request is booked with :meth:`reserve` before it is sent; every answer is reported
    with :meth:`observe` (its rate-limit fields) and a 429 with :meth:`throttle`. Before any
    answer, one request goes and the others wait for its answer (at most ``first_answer_wait``).
    Not thread-safe by itself: a driver shared by threads holds one lock around each call (the
    calls are short).

    Args:
        reserve: Tokens left untouched for other users of the same credential.
        horizon: While the refill rate is unknown, the furthest ahead a request is booked; a
            caller told to wait longer asks again (a fresh answer may have opened the budget).
        probe_interval: Spacing once the quota is spent, when no refill rate is known.
        first_answer_wait: Until the first answer, other requests wait for it this long at most.

    Every argument's None means its default.
    """

    def __init__(self, *, reserve: int | None = None, horizon: float | None = None,
                 probe_interval: float | None = None, first_answer_wait: float | None = None):
        self.reserve_tokens = 0 if reserve is None else reserve
        self.horizon = DEFAULT_HORIZON if horizon is None else horizon
        self.probe_interval = (DEFAULT_PROBE_INTERVAL if probe_interval is None
                               else probe_interval)
        self.first_answer_wait = (DEFAULT_FIRST_ANSWER_WAIT if first_answer_wait is None
                                  else first_answer_wait)
        if self.reserve_tokens < 0 or self.first_answer_wait < 0:
            raise ValueError("reserve and first_answer_wait must be >= 0, got "
                             f"{reserve!r}, {first_answer_wait!r}")
        if not (self.horizon > 0 and self.probe_interval > 0):
            raise ValueError("horizon and probe_interval must be > 0, got "
                             f"{horizon!r}, {probe_interval!r}")
        self._booked = 0  # tickets handed out; ticket n is the n-th booked request
        # Planned send times of the recent bookings, ticket order (nearly time order): the
        # ticket of _sent[i] is _first_ticket + i.
        self._sent: list[float] = []
        self._first_ticket = 0
        self._uncounted = 0  # bookings that the known answer's remaining quota does not include
        self._answers = 0  # answers observed, with or without rate-limit fields
        self._first_booked_at = -math.inf
        self._known: RateLimit | None = None
        self._known_ticket = -1  # the ticket of the request whose answer _known came from
        self._known_at = -math.inf  # when that answer arrived
        self._next_slot = -math.inf  # earliest moment of the next request once the quota is spent
        self._blocked_until = -math.inf  # set by a 429

    @property
    def known(self) -> RateLimit | None:
        """The rate-limit fields of the newest answer that had any."""
        return self._known

    def reserve(self, now: float) -> tuple[int | None, float]:
        """Book the next request, or say how long to wait before asking again.

        Returns:
            ``(ticket, delay)``: send after ``delay`` seconds and pass the ticket to
            :meth:`observe`; or ``(None, delay)``: nothing booked (a 429 blocks, the first answer
            is awaited, or the refill rate is unknown and the slot is more than the horizon
            away), ask again after ``delay``.
        """
        if self._blocked_until > now:
            return None, self._blocked_until - now
        if self._answers == 0 and self._booked > 0:
            # Nothing is known yet: one request finds out whether the server limits at all,
            # rather than a burst of many that may all be refused.
            until = self._first_booked_at + self.first_answer_wait
            if now < until:
                return None, min(until - now, _FIRST_ANSWER_STEP)
        at = self._slot(now)
        if at - now > self.horizon and self._refill_interval() is None:
            # Probing an unknown refill rate: a fresh answer may open the budget long before this
            # slot, so nothing is booked that far ahead. With a known rate, the slots are what
            # the server allows: booked in the order asked, first come first served.
            return None, max(at - now - self.horizon, self.horizon / 2)
        if self._spent():
            self._next_slot = at + self._interval()
        if self._booked == 0:
            self._first_booked_at = now
        ticket = self._booked
        self._booked += 1
        self._uncounted += 1
        self._sent.append(at)
        stale = bisect.bisect_left(self._sent, at - _RECENT_SPAN)
        if len(self._sent) > _RECENT_MAX:
            stale = max(stale, len(self._sent) - _RECENT_MAX * 3 // 4)
        if stale * 4 >= len(self._sent):  # forgotten in steps: amortised O(1) per booking
            del self._sent[:stale]
            self._first_ticket += stale
        return ticket, at - now

    def observe(self, limit: RateLimit | None, *, ticket: int | None, at: float) -> None:
        """Take in an answer (any status) and its rate-limit fields (None: it had none).

        Fields from an answer to an older request than the one already known are ignored: they
        say less about the present. ``ticket`` None (an unbooked request) counts as the newest.
        """
        self._answers += 1
        if limit is None or limit.remaining is None:
            return
        if ticket is not None and ticket < self._known_ticket:
            return
        self._known = limit
        self._known_ticket = ticket if ticket is not None else self._booked - 1
        self._known_at = at
        # The server counted what reached it before this request; anything planned to go later
        # (or only a little earlier: threads run late) may not be in its remaining quota.
        index = -1 if ticket is None else ticket - self._first_ticket
        sent = self._sent[index] if 0 <= index < len(self._sent) else -math.inf
        first = bisect.bisect_left(self._sent, sent - DEFAULT_SEND_SLACK)
        self._uncounted = len(self._sent) - first - (1 if index >= first else 0)
        if not self._spent():
            self._next_slot = -math.inf  # the budget is open again

    def throttle(self, until: float) -> None:
        """A 429: nothing goes before ``until`` (the server's Retry-After or reset, as a time)."""
        self._blocked_until = max(self._blocked_until, until)

    # ---------------------------------------------------------------------------- internals
    def _left(self) -> float:
        """Tokens the last answer left, minus the requests booked after its request."""
        known = self._known
        if known is None or known.remaining is None:
            return math.inf
        return known.remaining - self._uncounted - self.reserve_tokens

    def _spent(self) -> bool:
        return self._left() < 1

    def _refill_interval(self) -> float | None:
        return self._known.interval if self._known is not None else None

    def _interval(self) -> float:
        interval = self._refill_interval()
        return interval if interval is not None else self.probe_interval

    def _slot(self, start: float) -> float:
        """The earliest moment at or after ``start`` the next booked request may go."""
        if not self._spent():
            return start
        known = self._known
        assert known is not None  # _spent() is only true with a known quota
        reset_at = self._known_at + (known.reset if known.reset is not None
                                     else self._interval())
        return max(start, reset_at, self._next_slot)
