"""JobWait, the per-job wait as a state machine: every rule of a wait, with no I/O and no clock.

The sync and asyncio clients and both batch drivers drive this one machine; these tests feed it
answers and times by hand.
"""

from __future__ import annotations

import math

import pytest

from vtwait.core.errors import (
    AuthenticationError,
    JobNotFoundError,
    ProtocolError,
    ServerError,
    WaitTimeout,
)
from vtwait.core.planner import Ask, Decision, Done, JobWait, Sleep, WaitPlanner
from vtwait.core.policy import PollingPolicy
from vtwait.core.status import JobResult, JobStatus

POLICY = PollingPolicy(jitter=None, max_protocol_errors=1, learn=False)
PENDING = JobStatus(job_id="a", result=JobResult.PENDING, progress=0.5)
DONE = JobStatus(job_id="a", result=JobResult.COMPLETED, progress=1.0)


def new_wait(*, timeout: float = math.inf, max_attempts: int | None = None,
             planner: WaitPlanner | None = None, **kwargs) -> JobWait:
    return JobWait("a", planner or WaitPlanner(POLICY), started=0.0, timeout=timeout,
                   max_attempts=max_attempts, **kwargs)


def test_the_steps_of_a_wait_ask_sleep_done():
    """Ask with a long-poll, Sleep 0 after a held window, then Done with the final status."""
    wait = new_wait(timeout=100)
    assert wait.next(0.0) == Ask(30)
    step = wait.on_answer(PENDING, asked_wait=30, sent_at=0.0, received_at=30.0, now=30.0)
    assert isinstance(step, Sleep) and step.delay == 0.0
    assert wait.next(30.0) == Ask(30)
    assert wait.on_answer(DONE, asked_wait=30, sent_at=30.0, received_at=31.0,
                          now=31.0) == Done(DONE, 31.0)
    assert wait.attempts == 2


def test_asking_again_before_an_answer_is_the_same_attempt():
    """next() twice with no answer in between gives the same Ask and counts one attempt."""
    wait = new_wait()
    assert wait.next(0.0) == wait.next(5.0) and wait.attempts == 1


def test_transient_failures_back_off_and_protocol_errors_are_tolerated_up_to_the_policy():
    """ServerError: backoff; one unreadable answer tolerated, the second in a row raised."""
    wait = new_wait()
    wait.next(0.0)
    assert wait.on_failure(ServerError("x"), now=0.0) == Sleep(1.0, "poll failed (ServerError): "
                                                                   "backoff")
    wait.next(1.0)
    wait.on_failure(ProtocolError("bad"), now=1.0)
    wait.next(2.3)
    with pytest.raises(ProtocolError, match="bad again"):
        wait.on_failure(ProtocolError("bad again"), now=2.3)


def test_a_404_is_worded_for_a_job_that_was_known():
    """404 before any answer: as it came; after a status: 'known ... unknown now', chained."""
    first = new_wait()
    first.next(0.0)
    error = JobNotFoundError("404", job_id="a")
    with pytest.raises(JobNotFoundError) as caught:
        first.on_failure(error, now=0.0)
    assert caught.value is error
    known = new_wait()
    known.next(0.0)
    known.on_answer(PENDING, asked_wait=None, sent_at=0.0, received_at=0.0, now=0.0)
    known.next(1.0)
    with pytest.raises(JobNotFoundError, match="was known to the server") as caught:
        known.on_failure(error, now=1.0)
    assert caught.value.__cause__ is error


def test_failures_that_are_not_transient_end_the_wait_as_they_came():
    """Refused credentials are raised at once, not waited through."""
    wait = new_wait()
    wait.next(0.0)
    refused = AuthenticationError("401")
    with pytest.raises(AuthenticationError) as caught:
        wait.on_failure(refused, now=0.0)
    assert caught.value is refused


def test_the_attempt_budget_ends_the_wait_with_no_sleep_after_the_last():
    """max_attempts=2: the second pending answer raises WaitTimeout naming the budget."""
    wait = new_wait(max_attempts=2)
    wait.next(0.0)
    wait.on_answer(PENDING, asked_wait=None, sent_at=0.0, received_at=0.0, now=0.0)
    wait.next(1.0)
    with pytest.raises(WaitTimeout, match=r"2 status requests \(max_attempts\)") as caught:
        wait.on_answer(PENDING, asked_wait=None, sent_at=1.0, received_at=1.0, now=1.0)
    assert caught.value.attempts == 2 and caught.value.last_status == PENDING
    assert wait.out_of_attempts


def test_the_last_sleep_ends_at_the_deadline_and_the_deadline_raises_with_the_cause():
    """A backoff longer than the time left is cut to end at the deadline; past it: WaitTimeout."""
    wait = new_wait(timeout=0.5)
    wait.next(0.0)
    assert wait.on_failure(ServerError("boom"), now=0.2).delay == pytest.approx(0.3)
    wait.next(0.5)
    with pytest.raises(WaitTimeout, match="within 0.5 s.*boom") as caught:
        wait.on_failure(ServerError("boom"), now=0.5)
    assert isinstance(caught.value.__cause__, ServerError) and caught.value.elapsed == 0.5


class _WaitsFirst(WaitPlanner):
    def first_delay(self, now: float) -> Decision | None:
        return Decision(5.0, "learned: not yet")


def test_a_planner_that_would_rather_not_ask_at_once_sleeps_first_within_the_deadline():
    """first_delay: a Sleep before the first Ask (no attempt counted), cut to the deadline."""
    wait = new_wait(timeout=2.0, planner=_WaitsFirst(POLICY))
    assert wait.next(0.0) == Sleep(2.0, "learned: not yet") and wait.attempts == 0
    assert isinstance(wait.next(2.0), Ask) and wait.attempts == 1


def test_on_update_sees_each_change_of_result_or_progress_once():
    """on_update: called for the first answer and for changes, not for repeats."""
    seen: list[JobStatus] = []
    wait = new_wait(on_update=seen.append)
    for status in (PENDING, PENDING, DONE):
        wait.next(0.0)
        wait.on_answer(status, asked_wait=None, sent_at=0.0, received_at=0.0, now=0.0)
    assert seen == [PENDING, DONE]
