"""The learned schedule, sans-IO: what a client learns of job durations, and a planner that uses it.

    learner = DurationLearner(DurationHistory(), route, wall_clock=time.time)  # the client builds it
    planner = learner.planner(job_id, PollingPolicy(), now=clock())           # one per wait

For servers that say nothing (no long-poll, no ETA, no ``Retry-After``), the client remembers how
long the jobs of each status route took (``durations.DurationModel``, interval-censored) and,
once it knows ``PollingPolicy.learn_after`` of them, asks when the model says a job has likely
ended, with ``PollingPolicy.learned_budget`` status requests per job on average. Before that, and
for a job that outlives everything seen, it is the usual backoff. A server hint in an answer always
wins over the model. The first poll of a job this client started is skipped when the start answer
already said "pending" without a hint: that answer was the first poll.

* :class:`DurationStore`: where the observations go. The clients' store is
  ``vtwait.client.history.DurationHistory`` (memory, or a SQLite file shared by processes): the
  file I/O lives there, outside the core.
* :class:`DurationLearner`: one client's bookkeeping: when its jobs started, whether its route ever
  gave hints, and the final answers it learns of (the client's ``_observe_final``).
* :class:`LearnedPlanner`: a :class:`~vtwait.core.planner.WaitPlanner` whose silent-server step
  comes from the schedule. No I/O, no clock: times (and the wall clock, as a function) are passed in.

All durations are in seconds; times are the client's monotonic clock unless named ``wall``.
"""

from __future__ import annotations

import math
import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from vtwait.core.durations import Schedule
from vtwait.core.errors import ProtocolError
from vtwait.core.planner import Decision, WaitPlanner
from vtwait.core.policy import PollingPolicy, exponential_delays
from vtwait.core.status import JobStatus, parse_status_document

__all__ = ["DurationLearner", "DurationStore", "LearnedPlanner", "start_answer_status"]

#: Jobs whose start a client remembers while waiting for their end (oldest forgotten first).
MAX_TRACKED_STARTS = 10_000
#: Share of waits whose first learned poll comes earlier, at 50-100 % of its time. A skipped first
#: poll leaves a job that ended before the schedule's first poll known only as "before it"; the
#: estimate would then put those ends right before it and the first poll would creep later round
#: after round. These few early looks keep the early tail measured, at most one request each.
EXPLORE_SHARE = 0.1
# Shortest sleep the schedule asks for.
_MIN_STEP = 0.001
_T = TypeVar("_T")


# ------------------------------------------------------------------------------ the history
class DurationStore(Protocol):
    """Where a learner keeps the observed durations of each route: ``vtwait.client.history``'s
    :class:`DurationHistory` (in memory or SQLite) is the one the clients use."""

    def add(self, route: str, lower: float, upper: float) -> None:
        """Record a job of ``route`` that ended ``lower`` to ``upper`` seconds after its start."""

    def schedule(self, route: str, budget: float, min_jobs: int) -> Schedule | None:
        """The learned schedule of ``route``, or None while it knows fewer than ``min_jobs``."""

    def observations(self, route: str) -> list[tuple[float, float]]:
        """The observations of ``route``, oldest first."""


# ------------------------------------------------------------------------------ the planner
class LearnedPlanner(WaitPlanner):
    """:class:`WaitPlanner` whose delay on a silent answer comes from the learned schedule.

    Args:
        policy: The polling policy (its ``learned_budget`` and ``learn_after`` are used).
        schedule: Returns the route's current schedule, or None while it is not learned yet.
        start: The job's start on the client's clock, when known (else read from ``created_at``).
        skip_first: The start answer already said pending with no hint: skip the first poll.
        wall_offset: Wall clock minus the client's clock, to read a ``created_at``.
        on_hint: Called when an answer carried a hint or a long-poll (the route is not silent).
    """

    def __init__(self, policy: PollingPolicy, *, schedule: Callable[[], Schedule | None],
                 start: float | None = None, skip_first: bool = False,
                 wall_offset: float | None = None, on_hint: Callable[[], None] | None = None,
                 rng: random.Random | None = None):
        super().__init__(policy, rng=rng)
        self._schedule, self.start, self._skip_first = schedule, start, skip_first
        self._wall_offset, self._on_hint = wall_offset, on_hint
        self._silent = self._outlived = False
        self._kept: Schedule | None = None
        #: When the last pending answer was asked for: the job was still running then.
        self.pending_since: float | None = None

    def first_delay(self, now: float) -> Decision | None:
        """The delay before the first poll: None to ask at once."""
        if not self._skip_first or self.start is None:
            return None
        return self._learned(now, "the start answer said pending")

    def after_answer(self, status: JobStatus, *, asked_wait: float | None, sent_at: float,
                     received_at: float) -> Decision:
        """As :meth:`WaitPlanner.after_answer`; a silent server gets the learned schedule."""
        self.pending_since = sent_at
        if self.start is None:
            self.start = start_from_created_at(status, self._wall_offset, sent_at)
        self._silent = False
        decision = super().after_answer(status, asked_wait=asked_wait, sent_at=sent_at,
                                        received_at=received_at)
        if not self._silent and self._on_hint is not None:
            self._on_hint()
        return decision

    def _when_silent(self, status: JobStatus, received_at: float) -> Decision:
        self._silent = True
        if self.start is None:
            return super()._when_silent(status, received_at)
        return self._learned(received_at, "no hint from the server")

    def _learned(self, now: float, why: str) -> Decision:
        # A wait keeps the first schedule it gets: the jobs of a batch end shortest first, so a
        # model refitted mid-batch is biased short and would call the rest outlived too early.
        if self._kept is None and self.policy.learn:
            self._kept = self._schedule()
        schedule = self._kept
        age = now - self.start  # type: ignore[operator]
        # A poll due within a millisecond counts as done: no sleep too short to move the clock.
        moment = schedule.next_after(age + _MIN_STEP) if schedule is not None else None
        if schedule is not None and moment is not None and not self._outlived:
            if self.pending_since is None and self._rng.random() < EXPLORE_SHARE:
                early = moment * self._rng.uniform(0.5, 1.0)
                return Decision(max(early - age, 0.0), f"{why}: look early, at {early:.3f} s of "
                                f"age instead of {moment:.3f} s, to keep early ends measured")
            return Decision(moment - age, f"{why}: learned from {schedule.jobs} jobs, ask at "
                            f"{moment:.3f} s of age (gap {schedule.gap:.3f} s)")
        if schedule is not None and not self._outlived:
            # Past the last poll: a new workload, or the model's tail. Backoff from here, for
            # the rest of this wait, at the pace backoff has at this age (its delays grow with
            # age: a + (m - 1) * t), not from its first step.
            self._outlived = True
            policy = self.policy
            self._backoff = exponential_delays(
                min(policy.initial_delay + (policy.multiplier - 1) * max(age, 0.0),
                    policy.max_delay), policy.multiplier, policy.max_delay)
            return self._next_backoff(f"{why}: the job outlived the {schedule.jobs} jobs seen "
                                      f"(last poll at {schedule.end:.3f} s): backoff from here")
        return self._next_backoff(f"{why}: backoff" + ("" if schedule else " (not learned yet)"))


def start_answer_status(document: object, *, job_id: str,
                        retry_after: float | None) -> JobStatus | None:
    """The status in a start answer (with its ``Retry-After``), or None for a bare job id."""
    try:
        status = parse_status_document(document, job_id=job_id)
    except ProtocolError:
        return None
    return replace(status, retry_after=retry_after)


def start_from_created_at(status: JobStatus, wall_offset: float | None,
                          asked_at: float) -> float | None:
    """The job's start on the client's clock from the answer's ``created_at``, or None.

    A start after the moment the answer was asked for (a server clock ahead of ours) is cut to it.
    """
    created = status.raw.get("created_at") if status.raw else None
    if wall_offset is None or isinstance(created, bool) or not isinstance(created, int | float):
        return None
    if not math.isfinite(created):
        return None
    return min(created - wall_offset, asked_at)


# ------------------------------------------------------------------------- client bookkeeping
@dataclass(frozen=True)
class _Start:
    sent_at: float  #: the start request went out
    #: Its answer came back: the job's start as the client counts it. The server creates the job
    #: just before it answers, while a start sent in a crowd may wait long before it is served
    #: (200 at once: up to a second), so this is the close end.
    received_at: float
    silent: bool  #: the answer said pending with no hint


class DurationLearner:
    """One client's side of learning: its route, its jobs' starts, and what it saw end.

    Args:
        history: Where the durations go (shared with other clients if given to them too).
        route: The status route, e.g. ``http://host:8000/status/{job_id}``.
        wall_clock: Unix time (``time.time``), to read ``created_at`` of jobs this client did
            not start.
    """

    def __init__(self, history: DurationStore, route: str, *, wall_clock: Callable[[], float]):
        self.history, self.route, self._wall_clock = history, route, wall_clock
        self._lock = threading.Lock()
        self._starts: OrderedDict[str, _Start] = OrderedDict()
        # The planner of each job being waited for: it knows the job's last pending answer.
        self._planners: OrderedDict[str, LearnedPlanner] = OrderedDict()
        self.hints_seen = False  #: the route gave a hint or held a long-poll at least once

    def note_start(self, job_id: str, status: JobStatus | None, *, sent_at: float,
                   received_at: float) -> None:
        """Remember when ``job_id`` started; ``status`` is the start answer, if it had one."""
        silent = (status is not None and not status.done and status.eta_seconds is None
                  and status.retry_after is None)
        with self._lock:
            _remember(self._starts, job_id, _Start(sent_at, received_at, silent))

    def planner(self, job_id: str | None, policy: PollingPolicy, *, now: float,
                rng: random.Random | None = None) -> LearnedPlanner:
        """A planner for one wait on ``job_id``; ``now`` is the client's clock."""
        with self._lock:
            start = self._starts.get(job_id) if job_id is not None else None
        planner = LearnedPlanner(
            policy, schedule=lambda: self.history.schedule(self.route, policy.learned_budget,
                                                           policy.learn_after),
            start=start.received_at if start else None,
            skip_first=bool(start and start.silent and policy.learn and not self.hints_seen),
            wall_offset=self._wall_clock() - now, on_hint=self._saw_hint, rng=rng)
        if job_id is not None:
            with self._lock:
                _remember(self._planners, job_id, planner)
        return planner

    def observe_final(self, job_id: str | None, status: JobStatus, *, received_at: float,
                      pending_since: float | None = None) -> None:
        """Learn from a final answer: the job ended after ``pending_since`` (the last pending
        answer was asked for then; None: what the job's planner saw, if any) and before
        ``received_at``.
        """
        with self._lock:
            start = self._starts.pop(job_id, None) if job_id is not None else None
            planner = self._planners.pop(job_id, None) if job_id is not None else None
        if pending_since is None and planner is not None:
            pending_since = planner.pending_since
            if start is None and planner.start is not None:  # read from created_at
                start = _Start(planner.start, planner.start, False)
        began = start.received_at if start is not None else start_from_created_at(
            status, self._wall_clock() - received_at, received_at)
        if began is None:
            return  # nothing says when it started
        lower = max((pending_since - began) if pending_since is not None else 0.0, 0.0)
        upper = received_at - began
        if not lower < upper < math.inf:
            return
        self.history.add(self.route, lower, upper)

    def _saw_hint(self) -> None:
        self.hints_seen = True


def _remember(table: OrderedDict[str, _T], key: str, value: _T) -> None:
    """Put ``key`` last in a bounded table, forgetting the oldest past MAX_TRACKED_STARTS."""
    table[key] = value
    table.move_to_end(key)
    while len(table) > MAX_TRACKED_STARTS:
        table.popitem(last=False)
