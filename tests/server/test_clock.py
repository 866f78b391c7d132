"""The server's clocks (``vtwait/server/clock.py``): a virtual clock moves only when advanced,
stops at each due time on the way, ends waits whose time passed and lets woken parts settle."""

from __future__ import annotations

import threading
import time

import pytest

from vtwait.server.clock import SystemClock, VirtualClock


def finished(thread: threading.Thread, limit: float = 10.0) -> bool:
    """Joins ``thread`` for at most ``limit`` real seconds (a bound, not a measurement)."""
    thread.join(limit)
    return not thread.is_alive()


def test_a_virtual_clock_stands_still_until_advanced_and_both_readings_move_together() -> None:
    clock = VirtualClock(start=1_700_000_000.0, monotonic_start=50.0)
    before = clock.monotonic(), clock.time()
    time.sleep(0.02)
    assert (clock.monotonic(), clock.time()) == before == (50.0, 1_700_000_000.0)
    clock.advance(3600)
    assert (clock.monotonic(), clock.time()) == (3650.0, 1_700_003_600.0)
    clock.advance(0)
    assert clock.monotonic() == 3650.0
    assert clock.virtual and not SystemClock().virtual


@pytest.mark.parametrize("seconds", [-1, -0.001, float("nan"), float("inf")])
def test_advance_refuses_negative_or_non_finite_seconds(seconds: float) -> None:
    clock = VirtualClock(monotonic_start=0.0)
    with pytest.raises(ValueError, match="advance"):
        clock.advance(seconds)
    assert clock.monotonic() == 0.0


def test_an_event_wait_ends_when_the_clock_passes_its_timeout_not_before() -> None:
    clock = VirtualClock()
    event = threading.Event()
    answers: list[bool] = []
    waiter = threading.Thread(target=lambda: answers.append(clock.wait(event, 30)))
    waiter.start()
    time.sleep(0.05)  # the waiter registered its timer (a real wait: it is a real thread)
    clock.advance(29.5)
    assert not finished(waiter, 0.2)
    clock.advance(0.5)
    assert finished(waiter) and answers == [False]


def test_an_event_wait_answers_true_when_the_event_is_set_first() -> None:
    clock = VirtualClock()
    event = threading.Event()
    answers: list[bool] = []
    waiter = threading.Thread(target=lambda: answers.append(clock.wait(event, 30)))
    waiter.start()
    event.set()
    assert finished(waiter) and answers == [True]
    assert clock.wait(event, 0) is True and clock.wait(threading.Event(), 0) is False


def test_a_condition_wait_ends_on_the_clock_or_on_a_notify() -> None:
    clock = VirtualClock()
    cond = threading.Condition()
    answers: list[bool] = []

    def wait() -> None:
        with cond:
            answers.append(clock.wait_for(cond, 10))

    timed_out = threading.Thread(target=wait)
    timed_out.start()
    time.sleep(0.05)
    clock.advance(10)
    assert finished(timed_out) and answers == [False]
    notified = threading.Thread(target=wait)
    notified.start()
    time.sleep(0.05)
    with cond:
        cond.notify_all()
    assert finished(notified) and answers == [False, True]


def test_sleep_returns_once_the_clock_passed_it() -> None:
    clock = VirtualClock(monotonic_start=0.0)
    sleeper = threading.Thread(target=clock.sleep, args=(5,))
    sleeper.start()
    time.sleep(0.05)
    clock.advance(4)
    assert not finished(sleeper, 0.1)
    clock.advance(1)
    assert finished(sleeper)


def test_advance_stops_at_each_due_time_of_a_schedule_in_order() -> None:
    """A part due at 10 and then (from its run) at 25: one advance(100) runs it at 10, then at
    25, then once more at 100, each at that virtual time."""
    clock = VirtualClock(monotonic_start=0.0)
    dues = [10.0, 25.0]
    seen: list[float] = []

    def run() -> None:
        seen.append(clock.monotonic())
        while dues and dues[0] <= clock.monotonic():
            dues.pop(0)

    clock.add_schedule(lambda: dues[0] if dues else None, run)
    clock.advance(100)
    assert seen == [10.0, 25.0, 100.0]


def test_advance_waits_for_busy_parts_before_it_moves_on() -> None:
    """A part that does its work in its own thread: advance returns only once it is idle, and
    the next step of the clock comes after it (the work saw the time it was due at)."""
    clock = VirtualClock(monotonic_start=0.0)
    work = threading.Event()
    busy = threading.Event()
    seen: list[float] = []

    def worker() -> None:
        while work.wait(5):
            work.clear()
            time.sleep(0.05)  # real work takes real time
            seen.append(clock.monotonic())
            busy.clear()

    threading.Thread(target=worker, daemon=True).start()
    clock.add_busy(busy.is_set)

    def kick() -> None:
        if clock.monotonic() in (10.0, 20.0):
            busy.set()
            work.set()

    clock.add_schedule(lambda: next((t for t in (10.0, 20.0) if t > clock.monotonic()), None),
                       kick)
    clock.advance(30)
    assert seen == [10.0, 20.0]
