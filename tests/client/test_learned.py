"""The learned schedule: the duration model, the planner and the client's learning, exactly.

Pure pieces get tables; the client runs against a scripted plain backend on a FakeClock, so no
test waits and every sleep is known.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

import vtwait.client._threads as batch_sync
import vtwait.core.learned as learned_planner
from tests.fakes import Call, FakeSession, response
from tests.helpers import FakeClock
from vtwait import (
    AsyncVideoTranslationClient,
    DurationHistory,
    JobResult,
    JobStatus,
    PollingPolicy,
    VideoTranslationClient,
)
from vtwait.core import DurationModel, LearnedPlanner, Schedule, WaitPlanner
from vtwait.core.durations import fit_turnbull, fit_uniform, plan_schedule

BASE = "http://127.0.0.1:9"  # never contacted: the session is a FakeSession
ROUTE = BASE + "/status/{job_id}"
#: No jitter, so that every backoff delay is exact.
STEADY = PollingPolicy(jitter=None)


def silent(job_id: str = "j1", **extra: object) -> JobStatus:
    return JobStatus(job_id=job_id, result=JobResult.PENDING, raw={"result": "pending", **extra})


# ------------------------------------------------------------------------------ estimators
def test_turnbull_puts_the_mass_where_the_intervals_overlap():
    """Two intervals that overlap on (2, 3]: the NPMLE puts all the mass there."""
    dist = fit_turnbull([(1.0, 3.0), (2.0, 4.0)])
    assert (dist.lefts, dist.rights) == ((2.0,), (3.0,))
    assert dist.masses == pytest.approx((1.0,))


def test_turnbull_splits_disjoint_intervals_by_their_counts():
    """Disjoint intervals keep their share of the observations: 2 of 3 and 1 of 3."""
    dist = fit_turnbull([(1.0, 2.0), (1.0, 2.0), (5.0, 6.0)])
    assert dist.masses == pytest.approx((2 / 3, 1 / 3))


def test_uniform_spreads_each_observation_over_its_own_interval():
    """Without smoothing steps, one (2, 4] interval is the uniform distribution on it."""
    dist = fit_uniform([(2.0, 4.0)])
    assert dist.cdf(2.0) == 0.0
    assert dist.cdf(3.0) == pytest.approx(0.5)
    assert dist.cdf(4.0) == pytest.approx(1.0)
    assert dist.quantile(0.25) == pytest.approx(2.5)
    assert (dist.start, dist.end, dist.horizon) == (2.0, 4.0, 4.0)


def test_uniform_cuts_an_interval_from_zero_to_a_typical_width():
    """'Ended before the first look' (0, 5] is read as (4, 5] when the others are 1 s wide."""
    dist = fit_uniform([(0.0, 5.0), (3.0, 4.0), (6.0, 7.0)])
    assert dist.start == pytest.approx(3.0)
    assert dist.cdf(4.0) == pytest.approx(1 / 3)
    assert dist.cdf(5.0) == pytest.approx(2 / 3)


@pytest.mark.parametrize("intervals", [[], [(2.0, 1.0)], [(-1.0, 1.0)], [(1.0, math.inf)]])
def test_estimators_refuse_impossible_intervals(intervals):
    """No data, lower >= upper, a negative bound or an infinite one: ValueError."""
    for fit in (fit_turnbull, fit_uniform):
        with pytest.raises(ValueError):
            fit(intervals)


# -------------------------------------------------------------------------------- schedule
def test_schedule_polls_every_gap_from_the_early_quantile_and_fits_the_budget():
    """Uniform (3, 7]: equal gaps from q(0.5 %) + gap past 7, expected requests = the budget."""
    dist = fit_uniform([(3.0, 7.0)])
    schedule = plan_schedule(dist, 3.0)
    gaps = {round(b - a, 6) for a, b in itertools.pairwise(schedule.times)}
    assert gaps == {round(schedule.gap, 6)}
    assert schedule.times[0] == pytest.approx(3.02 + schedule.gap)
    assert schedule.end >= dist.quantile(0.995) > schedule.times[-2]
    assert schedule.expected_requests == pytest.approx(3.0, abs=0.01)
    # The same arithmetic by hand: requests = 1 + sum of P(still running) at each poll but the last.
    by_hand = 1 + sum((7.0 - t) / 4.0 for t in schedule.times[:-1])
    assert by_hand == pytest.approx(schedule.expected_requests)


def test_a_larger_budget_buys_a_shorter_gap_and_the_budget_scales_with_the_jobs():
    """More requests, shorter gaps; jobs three times as long, gaps three times as long."""
    short = fit_uniform([(3.0, 7.0)])
    long = fit_uniform([(9.0, 21.0)])
    assert plan_schedule(short, 4.0).gap < plan_schedule(short, 3.0).gap
    assert plan_schedule(long, 3.5).gap == pytest.approx(3 * plan_schedule(short, 3.5).gap,
                                                         rel=1e-3)


def test_plan_schedule_refuses_a_budget_below_one_request():
    """A job needs at least one request: budget 0.5 is a ValueError naming it."""
    with pytest.raises(ValueError, match="budget"):
        plan_schedule(fit_uniform([(3.0, 7.0)]), 0.5)


def test_schedule_next_after_gives_the_first_poll_past_an_age():
    """next_after: the next poll strictly after the age; None past the last."""
    schedule = Schedule((4.0, 4.5, 5.0), 0.5, 2.0, 20)
    assert [schedule.next_after(a) for a in (0.0, 4.0, 4.2, 5.0)] == [4.0, 4.5, 4.5, None]


# ----------------------------------------------------------------------------------- model
def model_of(count: int, lower: float = 3.0, upper: float = 7.0) -> DurationModel:
    model = DurationModel()
    rng = random.Random(1)
    for _ in range(count):
        end = rng.uniform(lower, upper)
        model.add(end - 0.25, end + 0.25)
    return model


def test_model_has_no_schedule_before_min_jobs():
    """19 jobs: None (backoff); the 20th makes a schedule."""
    model = model_of(19)
    assert model.schedule() is None
    model.add(4.0, 4.5)
    assert model.schedule() is not None


def test_model_keeps_only_the_most_recent_capacity():
    """Bounded: capacity 5 keeps the last 5 observations."""
    model = DurationModel(capacity=5)
    for k in range(8):
        model.add(k, k + 0.5)
    assert model.observations == [(k, k + 0.5) for k in range(3, 8)]


def test_a_run_of_jobs_outside_the_model_replaces_it():
    """Ten jobs in a row past the 99th percentile: a new workload, the old durations go."""
    model = model_of(100)
    changed = [model.add(20.0 + k / 10, 20.5 + k / 10) for k in range(10)]
    assert changed == [False] * 9 + [True]
    assert len(model) == 10 and min(lo for lo, _ in model.observations) == 20.0


def test_jobs_inside_the_model_break_a_run():
    """A few long jobs, then a normal one: no workload change, nothing dropped."""
    model = model_of(100)
    for k in range(9):
        model.add(20.0 + k, 21.0 + k)
    assert model.add(4.0, 4.5) is False
    assert len(model) == 110


def test_model_refuses_an_empty_interval():
    """lower >= upper is a ValueError naming the interval."""
    with pytest.raises(ValueError, match="interval"):
        DurationModel().add(2.0, 2.0)


@pytest.mark.parametrize("field,value", [("learned_budget", 0.5), ("learn_after", 0)])
def test_policy_refuses_bad_learning_settings(field, value):
    """learned_budget < 1 and learn_after < 1 are ValueErrors naming the field."""
    with pytest.raises(ValueError, match=field):
        PollingPolicy(**{field: value})


def test_fixed_and_doubling_do_not_learn():
    """The explicit simple strategies stay what they say; the default learns."""
    assert not PollingPolicy.fixed(1.0).learn and not PollingPolicy.doubling().learn
    assert PollingPolicy().learn


# --------------------------------------------------------------------------------- planner
SCHEDULE = Schedule((4.0, 4.5, 5.0), 0.5, 2.0, 20)


def planner(schedule=SCHEDULE, *, seed: int = 3, **kwargs) -> LearnedPlanner:
    return LearnedPlanner(STEADY, schedule=lambda: schedule, rng=random.Random(seed), **kwargs)


def test_first_poll_is_skipped_to_the_schedule_when_the_start_said_pending(monkeypatch):
    """Start at 100, now 100.5: the first ask waits until age 4.0, i.e. 3.5 s."""
    monkeypatch.setattr(learned_planner, "EXPLORE_SHARE", 0.0)
    first = planner(start=100.0, skip_first=True).first_delay(100.5)
    assert first is not None and first.delay == pytest.approx(3.5)


def test_no_skip_without_a_pending_start_answer():
    """A job not started here (or started without a pending answer) is asked at once."""
    assert planner(start=100.0, skip_first=False).first_delay(100.5) is None
    assert WaitPlanner(STEADY).first_delay(0.0) is None


def test_some_first_polls_look_early_to_keep_measuring_early_ends(monkeypatch):
    """With every wait exploring, the first ask lands at 50-100 % of the first poll's age."""
    monkeypatch.setattr(learned_planner, "EXPLORE_SHARE", 1.0)
    delays = [planner(start=0.0, skip_first=True, seed=k).first_delay(0.0).delay
              for k in range(50)]
    assert all(2.0 <= d <= 4.0 for d in delays) and len(set(delays)) > 40


def test_silent_answers_follow_the_schedule():
    """Pending at age 4.1 (asked at 4.0): next ask at age 4.5; then at 5.0."""
    plan = planner(start=0.0)
    plan.pending_since = 1.0  # not the first answer: no exploring
    first = plan.after_answer(silent(), asked_wait=None, sent_at=4.0, received_at=4.1)
    assert first.delay == pytest.approx(0.4)
    second = plan.after_answer(silent(), asked_wait=None, sent_at=4.5, received_at=4.5)
    assert second.delay == pytest.approx(0.5) and "learned from 20 jobs" in second.reason
    assert plan.pending_since == 4.5


def test_a_job_that_outlives_the_schedule_backs_off_at_the_pace_of_its_age():
    """Pending at age 6 > 5.0: backoff from 1 + 0.3 * 6 = 2.8 s, then x1.3, for good."""
    plan = planner(start=0.0)
    plan.pending_since = 1.0
    delays = [plan.after_answer(silent(), asked_wait=None, sent_at=t, received_at=t).delay
              for t in (6.0, 8.8, 9.0)]
    assert delays == pytest.approx([2.8, 2.8 * 1.3, 2.8 * 1.3 ** 2])


def test_server_hints_win_over_the_schedule():
    """An ETA in the answer is followed; the route is marked as giving hints."""
    seen = []
    plan = planner(start=0.0, on_hint=lambda: seen.append(True))
    decision = plan.after_answer(
        JobStatus(job_id="j1", result=JobResult.PENDING, eta_seconds=0.5), asked_wait=None,
        sent_at=4.0, received_at=4.0)
    assert decision.delay == pytest.approx(0.505) and "ETA" in decision.reason
    assert seen == [True]


def test_before_the_model_is_learned_the_planner_is_backoff():
    """No schedule yet: 1 s, 1.3 s, ... as the plain WaitPlanner."""
    plan = planner(schedule=None, start=0.0)
    delays = [plan.after_answer(silent(), asked_wait=None, sent_at=t, received_at=t).delay
              for t in (0.0, 1.0, 2.3)]
    assert delays == pytest.approx([1.0, 1.3, 1.69])


def test_start_is_read_from_created_at_for_a_job_started_elsewhere():
    """created_at 1,000,004 on a wall clock 1,000,000 ahead of ours: the job began at 4."""
    plan = planner(wall_offset=1_000_000.0)
    plan.pending_since = 1.0
    decision = plan.after_answer(silent(created_at=1_000_004.0), asked_wait=None,
                                 sent_at=8.0, received_at=8.1)
    assert plan.start == 4.0 and decision.delay == pytest.approx(0.4)  # age 4.1 -> 4.5


# ------------------------------------------------------------------- the client, end to end
class PlainBackend:
    """A silent server on a FakeClock: jobs of scripted durations, no hints, no long-poll."""

    def __init__(self, clock: FakeClock, durations: list[float]):
        self.clock, self.durations = clock, list(durations)
        self.jobs: dict[str, tuple[float, float]] = {}
        self.status_calls: dict[str, int] = {}

    def __call__(self, call: Call) -> requests.Response:
        if call.method == "POST":
            job_id = f"j{len(self.jobs)}"
            self.jobs[job_id] = (self.clock.now, self.durations.pop(0))
            return response(201, {"job_id": job_id, "result": "pending"})
        job_id = call.url.rsplit("/", 1)[-1]
        self.status_calls[job_id] = self.status_calls.get(job_id, 0) + 1
        began, duration = self.jobs[job_id]
        done = self.clock.now >= began + duration
        return response(200, {"job_id": job_id, "result": "completed" if done else "pending"})


def make_client(durations: list[float], **kwargs) -> tuple[VideoTranslationClient, PlainBackend,
                                                          FakeClock]:
    clock = FakeClock()
    backend = PlainBackend(clock, durations)
    session: Any = FakeSession(backend)  # a scripted stand-in for requests.Session
    api = VideoTranslationClient(BASE, session=session, clock=clock,
                                 sleep=clock.sleep, rng=random.Random(7),
                                 policy=PollingPolicy(jitter=None), **kwargs)
    return api, backend, clock


def run_jobs(api: VideoTranslationClient, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        job_id = api.start_job()
        api.wait_for_completion(job_id)
        ids.append(job_id)
    return ids


def test_client_learns_each_job_as_an_interval_from_its_polls():
    """A 2.5 s job polled at 1.0 (skip), 2.3, 3.99: it ended in (2.3, 3.99]."""
    api, _, clock = make_client([2.5])
    run_jobs(api, 1)
    assert clock.sleeps == pytest.approx([1.0, 1.3, 1.69])
    [(lower, upper)] = api._learner.history.observations(ROUTE)
    assert (lower, upper) == pytest.approx((2.3, 3.99))


def test_the_first_poll_after_a_pending_start_answer_is_skipped():
    """Cold: the first ask comes one backoff step after the start, not at once."""
    api, backend, clock = make_client([0.5])
    run_jobs(api, 1)
    assert clock.sleeps == [1.0] and backend.status_calls == {"j0": 1}


def test_after_twenty_jobs_the_client_asks_where_the_model_says(monkeypatch):
    """Job 21 sleeps exactly to the learned schedule's polls, and needs fewer requests."""
    monkeypatch.setattr(learned_planner, "EXPLORE_SHARE", 0.0)
    rng = random.Random(5)
    durations = [round(rng.uniform(3.0, 7.0), 3) for _ in range(21)]
    durations[-1] = 5.0
    api, backend, clock = make_client(durations)
    run_jobs(api, 20)
    schedule = api._learner.history.schedule(ROUTE, 3.5, 20)
    assert schedule is not None
    sleeps_before = len(clock.sleeps)
    run_jobs(api, 1)
    asked_at = list(itertools.accumulate(clock.sleeps[sleeps_before:]))
    expected = [t for t in schedule.times if t < 5.0] + [schedule.next_after(5.0 - 1e-9)]
    assert asked_at == pytest.approx(expected)
    assert backend.status_calls["j20"] == len(expected) < 5  # backoff: 1, 2.3, 3.99, 6.19


def test_learn_false_is_todays_backoff_and_asks_at_once():
    """PollingPolicy(learn=False): a plain WaitPlanner, first ask at once, nothing skipped."""
    clock = FakeClock()
    backend = PlainBackend(clock, [0.5])
    session: Any = FakeSession(backend)  # a scripted stand-in for requests.Session
    api = VideoTranslationClient(BASE, session=session, clock=clock,
                                 sleep=clock.sleep, policy=PollingPolicy(jitter=None, learn=False))
    run_jobs(api, 1)
    assert clock.sleeps == [1.0] and backend.status_calls == {"j0": 2}
    assert type(api._new_planner("x")) is WaitPlanner


def test_clients_sharing_a_history_learn_together():
    """Two clients, one DurationHistory: the second sees the first's jobs."""
    history = DurationHistory()
    first, _, _ = make_client([1.0, 2.0], history=history)
    second, _, _ = make_client([], history=history)
    run_jobs(first, 2)
    assert len(second._learner.history.observations(ROUTE)) == 2


# ---------------------------------------------------------------------------- persistence
def test_history_file_survives_the_client_and_is_shared_between_connections(tmp_path: Path):
    """Written by one history, read by a new one on the same file, and seen live by another."""
    path = tmp_path / "history.sqlite"
    watcher = DurationHistory(path)
    assert watcher.observations("r") == []
    writer = DurationHistory(path)
    writer.add("r", 1.0, 2.0)
    writer.add("r", 3.0, 4.0)
    assert DurationHistory(path).observations("r") == [(1.0, 2.0), (3.0, 4.0)]
    assert watcher.observations("r") == [(1.0, 2.0), (3.0, 4.0)]  # another connection's commit
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_history_file_is_bounded_per_route(tmp_path: Path):
    """Capacity 3: the file keeps the last 3 rows of the route, the other route untouched."""
    path = tmp_path / "history.sqlite"
    history = DurationHistory(path, capacity=3)
    history.add("other", 9.0, 10.0)
    for k in range(6):
        history.add("r", k, k + 1.0)
    rows = sqlite3.connect(path).execute(
        "SELECT route, lower FROM durations ORDER BY id").fetchall()
    assert rows == [("other", 9.0), ("r", 3.0), ("r", 4.0), ("r", 5.0)]


def test_a_corrupt_history_file_is_ignored_with_a_warning(tmp_path: Path, caplog):
    """Not a database: one warning, learning goes on in memory, the file is left as it was."""
    path = tmp_path / "history.sqlite"
    path.write_bytes(b"this is not a database, just junk" * 100)
    with caplog.at_level(logging.WARNING, logger="vtwait"):
        history = DurationHistory(path)
        history.add("r", 1.0, 2.0)
    assert history.observations("r") == [(1.0, 2.0)]
    assert "unusable" in caplog.text and "memory only" in caplog.text
    assert path.read_bytes().startswith(b"this is not a database")


def test_history_rows_that_make_no_sense_are_skipped(tmp_path: Path, caplog):
    """A row with lower >= upper (written by someone else) is skipped with a warning."""
    path = tmp_path / "history.sqlite"
    DurationHistory(path).add("r", 1.0, 2.0)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO durations (route, lower, upper) VALUES ('r', 5.0, 4.0)")
    with caplog.at_level(logging.WARNING, logger="vtwait"):
        assert DurationHistory(path).observations("r") == [(1.0, 2.0)]
    assert "unreadable rows" in caplog.text


def test_client_history_path_persists_between_clients(tmp_path: Path):
    """history_path=: a second client on the file starts with the first one's jobs."""
    path = tmp_path / "h.sqlite"
    first, _, _ = make_client([1.0, 2.0, 3.0], history_path=path)
    run_jobs(first, 3)
    second, _, _ = make_client([], history_path=path)
    assert len(second._learner.history.observations(ROUTE)) == 3


def test_a_batch_feeds_the_model_and_skips_first_polls():
    """as_completed over 25 started jobs (per-job polling): each job's first ask comes a backoff
    step after its start, and every final status becomes an interval in the model.
    """
    api, backend, clock = make_client([1.5] * 25)
    api.use_event_stream = False
    ids = [api.start_job() for _ in range(25)]
    began = clock.now

    ended = list(batch_sync.as_completed(api._transport, ids, timeout=60, workers=0))

    assert sorted(s.job_id for s in ended) == sorted(ids)
    assert backend.status_calls == dict.fromkeys(ids, 2)  # at 1.0 s (not 0) and at 2.3 s
    observations = api._learner.history.observations(ROUTE)
    assert observations == [pytest.approx((1.0, 2.3))] * 25
    assert clock.now - began == pytest.approx(2.3)


def test_the_asyncio_client_plans_and_learns_the_same_way():
    """AsyncVideoTranslationClient: a learned planner per wait, finals into its history."""
    clock = FakeClock()
    history = DurationHistory()
    api = AsyncVideoTranslationClient(BASE, clock=clock, history=history)
    api._learner.note_start("a1", silent("a1"), sent_at=clock.now, received_at=clock.now)
    plan = api._new_planner("a1")
    assert isinstance(plan, LearnedPlanner) and plan.first_delay(clock.now) is not None
    plan.after_answer(silent("a1"), asked_wait=None, sent_at=clock.now + 2.0,
                      received_at=clock.now + 2.0)
    api._observe_final("a1", JobStatus(job_id="a1", result=JobResult.COMPLETED),
                       received_at=clock.now + 3.0)
    assert history.observations(ROUTE) == [(2.0, 3.0)]
    assert type(AsyncVideoTranslationClient(BASE, policy=PollingPolicy(learn=False))
                ._new_planner("a2")) is WaitPlanner


async def _observe_off_loop(api: AsyncVideoTranslationClient, status: JobStatus,
                            received_at: float) -> None:
    await api._observe_final_off_loop(status.job_id, status, received_at=received_at)


@pytest.mark.parametrize("on_disk", [True, False])
def test_the_asyncio_client_commits_a_history_file_off_the_event_loop(tmp_path: Path,
                                                                       on_disk: bool):
    """A history on disk is written from a worker thread (a SQLite commit may wait seconds for
    another process's lock); one in memory is written at once, on the loop's own thread."""
    clock = FakeClock()
    history = DurationHistory(tmp_path / "h.sqlite" if on_disk else None)
    assert history.on_disk is on_disk
    writers: list[int] = []
    add = history.add

    def spy(route: str, lower: float, upper: float) -> None:
        writers.append(threading.get_ident())
        add(route, lower, upper)

    history.add = spy  # type: ignore[method-assign]
    api = AsyncVideoTranslationClient(BASE, clock=clock, history=history)
    api._learner.note_start("a1", None, sent_at=clock.now, received_at=clock.now)
    asyncio.run(_observe_off_loop(api, JobStatus(job_id="a1", result=JobResult.COMPLETED),
                                  clock.now + 3.0))
    assert history.observations(ROUTE) == [(0.0, 3.0)]
    assert (writers[0] != threading.get_ident()) is on_disk
