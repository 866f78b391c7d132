"""``JobWait.strategy``: how the planner came to ask, as the client's wait span reports it."""

from __future__ import annotations

import random

from vtwait.core.planner import Ask, JobWait, Sleep, WaitPlanner, strategy_of
from vtwait.core.policy import PollingPolicy
from vtwait.core.status import JobResult, JobStatus


def pending(**fields: object) -> JobStatus:
    return JobStatus(result=JobResult.PENDING, job_id="j", **fields)  # type: ignore[arg-type]


def test_strategy_of_names_each_kind_of_decision() -> None:
    assert strategy_of(30, "") == "long-poll"
    assert strategy_of(None, "") == "first request"
    assert strategy_of(None, "no hint from the server: backoff") == "backoff"
    assert strategy_of(None, "poll failed (ServerError): backoff") == "backoff"
    assert strategy_of(None, "ETA 1.000 s") == "hints"
    assert strategy_of(None, "Retry-After 2 s") == "hints"
    assert strategy_of(None, "x: learned from 20 jobs, ask at 1.0 s") == "learned"


def test_a_wait_reports_the_strategy_of_its_last_request() -> None:
    wait = JobWait("j", WaitPlanner(PollingPolicy(long_poll=False), rng=random.Random(1)),
                   started=0.0, timeout=100.0)
    assert isinstance(wait.next(0.0), Ask) and wait.strategy == "first request"
    step = wait.on_answer(pending(), asked_wait=None, sent_at=0.0, received_at=0.1, now=0.1)
    assert isinstance(step, Sleep)
    wait.next(step.delay)
    assert wait.strategy == "backoff"
    step = wait.on_answer(pending(eta_seconds=0.5), asked_wait=None, sent_at=2.0,
                          received_at=2.1, now=2.1)
    assert isinstance(step, Sleep)
    wait.next(2.1 + step.delay)
    assert wait.strategy == "hints"
    polling = JobWait("j", WaitPlanner(PollingPolicy(), rng=random.Random(1)), started=0.0,
                      timeout=100.0)
    ask = polling.next(0.0)
    assert isinstance(ask, Ask) and ask.wait and polling.strategy == "long-poll"
