"""The server's time: real (:class:`SystemClock`) or virtual (:class:`VirtualClock`, ``CLOCK=virtual``).

Every time-driven part of the server reads time and waits through one :class:`Clock`
(``app_state(app).clock``): job ends, queue starts, deadlines, TTL eviction, ``Retry-After``,
long-poll holds, event-stream heartbeats, webhook retries, rate-limit refills.

A virtual clock stands still until :meth:`VirtualClock.advance` moves it (``POST /_admin/clock``)::

    clock = VirtualClock()
    clock.advance(3600)          # every timer due within the hour fires, in time order

``advance`` steps from one due time to the next (a job's end, its eviction, a webhook retry), runs
what is due at each step at that virtual time, and waits (in real time) until the parts it woke
are idle again, so a retry scheduled by an attempt counts from that attempt's virtual time and a
test can advance, then read. Two hooks let the parts take part:

* :meth:`Clock.add_schedule` ``(next_due, run)``: ``next_due()`` names the next time the part has
  work (or None); ``advance`` stops there and calls ``run()`` in its own thread (the memory store's
  ``process_due``: jobs end at their due time exactly).
* :meth:`Clock.add_busy` ``(check)``: ``advance`` does not step further while ``check()`` is true
  (the webhook sender while an attempt is due or in flight).

Threads wait through :meth:`Clock.wait` (an event) and :meth:`Clock.wait_for` (a condition, held)
with timeouts in clock seconds; on a system clock these are the plain waits.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Clock", "SystemClock", "VirtualClock"]

logger = logging.getLogger(__name__)

#: Real seconds between looks at an event a virtual wait cannot be woken by directly.
POLL_INTERVAL = 0.005
#: Most real seconds ``advance`` waits for the parts it woke to settle before going on anyway.
SETTLE_LIMIT = 30.0
#: Most steps one ``advance`` takes (guards against a part that is always due).
MAX_STEPS = 1_000_000


class Clock:
    """Time as the server sees it: the real one. Subclassed by :class:`VirtualClock`.

    Attributes:
        virtual: whether time moves only when told.
    """

    virtual = False

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (durations, due times)."""
        return time.monotonic()

    def time(self) -> float:
        """Unix seconds (timestamps in documents)."""
        return time.time()

    def sleep(self, seconds: float) -> None:
        """Waits ``seconds`` of this clock's time."""
        time.sleep(max(seconds, 0.0))

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Waits until ``event`` is set or ``timeout`` clock seconds pass; returns whether set."""
        return event.wait(timeout)

    def wait_for(self, cond: threading.Condition, timeout: float | None) -> bool:
        """``cond.wait(timeout)`` with ``cond`` held, the timeout in clock seconds; returns False
        if the timeout passed (a notify may still have come at the same moment)."""
        return cond.wait(timeout)

    def add_schedule(self, next_due: Callable[[], float | None], run: Callable[[], object]) -> None:
        """Registers a part whose due work ``advance`` runs on time (nothing to do on real time:
        the part's own thread runs it)."""

    def add_busy(self, check: Callable[[], bool]) -> None:
        """Registers a part ``advance`` lets settle (nothing to do on real time)."""


class SystemClock(Clock):
    """The real clock: ``time.monotonic`` and ``time.time``, real waits."""


class VirtualClock(Clock):
    """A clock that moves only when :meth:`advance` moves it.

    Args:
        start: its Unix time at creation (default: the real time now, so documents look current).
        monotonic_start: its monotonic reading at creation.
    """

    virtual = True

    def __init__(self, start: float | None = None, monotonic_start: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._advancing = threading.Lock()  # one advance at a time
        self._elapsed = 0.0
        self._start = time.time() if start is None else start
        self._monotonic_start = monotonic_start
        self._timers: list[tuple[float, int, Callable[[], object]]] = []  # heap by due time
        self._cancelled: set[int] = set()
        self._seq = itertools.count()
        self._schedules: list[tuple[Callable[[], float | None], Callable[[], object]]] = []
        self._busy: list[Callable[[], bool]] = []

    # reading

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic_start + self._elapsed

    def time(self) -> float:
        with self._lock:
            return self._start + self._elapsed

    # moving

    def advance(self, seconds: float) -> None:
        """Moves the clock ``seconds`` forward, stopping at every due time on the way to run what
        is due then; returns once the parts it woke are idle.

        Raises:
            ValueError: ``seconds`` is negative or not finite.
        """
        if not seconds >= 0 or seconds == float("inf"):
            raise ValueError(f"advance must be a finite number of seconds >= 0, not {seconds!r}")
        with self._advancing:
            target = self.monotonic() + seconds
            self._settle()
            for _ in range(MAX_STEPS):
                step = self._next_due()
                if step is None or step > target:
                    break
                self._move_to(step)
                self._run_due()
            else:
                logger.warning("virtual clock: more than %d steps in one advance; jumping",
                               MAX_STEPS)
            self._move_to(target)
            self._run_due()

    # waiting

    def sleep(self, seconds: float) -> None:
        self.wait(threading.Event(), seconds)

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        if timeout is None:
            return event.wait()
        if event.is_set() or timeout <= 0:
            return event.is_set()
        expired = threading.Event()
        timer = self._add_timer(self.monotonic() + timeout, expired.set)
        try:
            # An Event cannot be woken by two sources: look at it often (only waits on a virtual
            # clock pay this, and those are tests').
            while not event.wait(POLL_INTERVAL):
                if expired.is_set():
                    return event.is_set()
            return True
        finally:
            self._cancel(timer)

    def wait_for(self, cond: threading.Condition, timeout: float | None) -> bool:
        if timeout is None:
            return cond.wait()
        if timeout <= 0:
            return False
        fired = threading.Event()

        def expire() -> None:
            fired.set()
            with cond:  # taken once the waiter released it, so the notify is never lost
                cond.notify_all()

        timer = self._add_timer(self.monotonic() + timeout, expire)
        try:
            cond.wait()
        finally:
            self._cancel(timer)
        return not fired.is_set()

    def add_schedule(self, next_due: Callable[[], float | None], run: Callable[[], object]) -> None:
        with self._lock:
            self._schedules.append((next_due, run))

    def add_busy(self, check: Callable[[], bool]) -> None:
        with self._lock:
            self._busy.append(check)

    # internals

    def _add_timer(self, due: float, callback: Callable[[], object]) -> int:
        with self._lock:
            seq = next(self._seq)
            heapq.heappush(self._timers, (due, seq, callback))
            return seq

    def _cancel(self, seq: int) -> None:
        with self._lock:
            if any(entry[1] == seq for entry in self._timers):
                self._cancelled.add(seq)

    def _next_due(self) -> float | None:
        with self._lock:
            while self._timers and self._timers[0][1] in self._cancelled:
                self._cancelled.discard(heapq.heappop(self._timers)[1])
            candidates = [self._timers[0][0]] if self._timers else []
            schedules = list(self._schedules)
        for next_due, _ in schedules:  # outside our lock: they take their own
            due = next_due()
            if due is not None:
                candidates.append(due)
        return min(candidates, default=None)

    def _move_to(self, monotonic: float) -> None:
        with self._lock:
            self._elapsed = max(self._elapsed, monotonic - self._monotonic_start)

    def _run_due(self) -> None:
        """Runs the schedules, fires the due timers, then lets everything settle."""
        with self._lock:
            schedules = list(self._schedules)
        for _, run in schedules:
            run()
        now = self.monotonic()
        fired: list[Callable[[], object]] = []
        with self._lock:
            while self._timers and self._timers[0][0] <= now:
                _, seq, callback = heapq.heappop(self._timers)
                if seq in self._cancelled:
                    self._cancelled.discard(seq)
                else:
                    fired.append(callback)
        for callback in fired:
            callback()
        self._settle()

    def _settle(self) -> None:
        """Waits (real time) until no registered part is busy."""
        with self._lock:
            checks = list(self._busy)
        limit = time.monotonic() + SETTLE_LIMIT
        while any(check() for check in checks):
            if time.monotonic() > limit:
                logger.warning("virtual clock: parts still busy after %.0f s; going on",
                               SETTLE_LIMIT)
                return
            time.sleep(0.001)
