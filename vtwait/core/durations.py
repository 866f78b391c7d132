"""How long a route's jobs take, learned from what the client saw, and when to ask because of it.

    from vtwait.core.durations import DurationModel
    model = DurationModel()
    for lower, upper in [(3.1, 4.0), (4.2, 5.3), ...]:   # each job ended somewhere in (lower, upper]
        model.add(lower, upper)
    model.schedule(budget=3.5)   # Schedule(times=(3.9, 4.5, ...)): poll at these ages

No I/O and no clock: the model is a list of intervals, the estimate and the schedule are plain data
computed from it. :class:`DurationHistory` (one model per status route, optionally kept in SQLite)
and the planner that uses it are in ``vtwait.core.learned``.

**Why intervals.** A client never sees a job end; it sees a pending answer and, later, a final one.
So a duration is known only as ``(lower, upper]``: from the last pending answer to the final one,
measured from the start. The gap is as wide as the polling gap (a second or more under backoff), so
taking its midpoint as the duration would blur the estimate by as much as the polls are apart, and
taking its end would bias every estimate late by half a gap.

**Why this estimator.** The textbook answer is Turnbull's nonparametric maximum-likelihood estimate
(:func:`fit_turnbull`, kept here and tested): mass only on the *innermost intervals*, found by the
self-consistency (EM) iteration. Measured on this client's own data it plans badly: when many jobs
share a lower bound (every job that outlived a schedule was last seen pending at the same poll),
the NPMLE moves all their mass onto slivers at the far end, where some other job's pending answer
happens to meet some job's final one; the next schedule then starts seconds too late (p99 delay 3-4 s
instead of 1 s in the simulation). :func:`fit_uniform` is what the model uses: each observation's
mass spread uniformly over its own interval (no midpoint, no shape assumed), then a few
self-consistency steps (``_SMOOTHING_STEPS``) that move mass toward where intervals overlap, which
sharpens the estimate without collapsing it. It errs wide (by at most an interval's width), and wide
is the safe side: the schedule then covers every end the data allow. As polls under the learned
schedule are close together, the intervals, and so the estimate, tighten round after round. An
interval from 0 (a skipped first poll only says "ended before the first look") is cut to a typical
width. The observations are cut to the most recent ``capacity`` so that the model follows a
workload that changes, and a run of ``drift_run`` consecutive jobs past the estimate's 1st or 99th
percentile (a change of workload) replaces the older observations by that run.

**Why this schedule.** The knob is a *budget*: the mean number of status requests per job the
schedule may spend under the model. For a detection delay ``d``, the cheapest schedule that tells
every job within ``d`` of its end polls at the earliest moment a job can end plus ``d``, then every
``d`` while jobs can end: each poll is as late as the delay allows, so as few jobs as possible are
still running at each one. The earliest ``early_share`` (0.5 %) of jobs are let through a little
late, which moves the whole grid later, and so are the latest 0.5 %: the grid stops once the 99.5 %
quantile is covered, with one last look at the largest upper bound seen (so that a job of a new,
longer workload spends few polls on the old one). Together that is the 1 % a p99 target allows.
The schedule takes the smallest ``d`` whose expected requests fit the budget (bisection). A job past
the last poll has outlived everything seen: the caller falls back to backoff. A budget is scale-
free: the same budget on jobs three times longer gives gaps three times longer. (Stretches where no
job ends, e.g. between two kinds of jobs, are not skipped: an estimate from a few dozen intervals
cannot tell a real lull from a gap between samples.)

All durations are in seconds, measured from the job's start.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vtwait.core.policy import require

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_CAPACITY",
    "DEFAULT_MIN_JOBS",
    "DurationDistribution",
    "DurationModel",
    "Schedule",
    "fit_turnbull",
    "fit_uniform",
    "plan_schedule",
]

#: Mean status requests per job the learned schedule aims at (the policy's knob).
DEFAULT_BUDGET = 3.5
#: Jobs the model must hold before its schedule is used; before that, backoff.
DEFAULT_MIN_JOBS = 20
#: Most recent observations kept per route.
DEFAULT_CAPACITY = 256
#: Consecutive observations outside everything the model holds that mean the workload changed.
DEFAULT_DRIFT_RUN = 10
#: Share of the earliest jobs whose detection may take longer than the schedule's gap.
DEFAULT_EARLY_SHARE = 0.005
#: Most polls one schedule may place (a tiny budget gap on a wide distribution stops here).
MAX_SCHEDULE_POLLS = 1000
#: EM steps from the interval-uniform start: enough to sharpen it toward where intervals overlap,
#: few enough to stay smooth (the full NPMLE collapses onto slivers; measured, see the docstring).
_SMOOTHING_STEPS = 3
_EM_TOLERANCE = 1e-7
_EM_MAX_ITERATIONS = 2000
_BISECTION_STEPS = 40


# --------------------------------------------------------------------------------- estimate
@dataclass(frozen=True)
class DurationDistribution:
    """The estimated distribution of durations: masses on disjoint intervals ``(left, right]``.

    Each mass is spread uniformly over its interval (a zero-width interval is a point mass).
    """

    lefts: tuple[float, ...]
    rights: tuple[float, ...]
    masses: tuple[float, ...]
    jobs: int  #: observations it was fitted on
    #: The latest any observation allows a job to have ended (the largest upper bound).
    horizon: float = 0.0

    @property
    def start(self) -> float:
        """The earliest a job can end."""
        return self.lefts[0]

    @property
    def end(self) -> float:
        """The latest a job can end: past it, a job has outlived everything seen."""
        return self.rights[-1]

    def cdf(self, t: float) -> float:
        """P(duration <= t)."""
        index = bisect.bisect_right(self.lefts, t)  # intervals that start at or before t
        total = sum(self.masses[:max(index - 1, 0)])
        if index:
            left, right, mass = self.lefts[index - 1], self.rights[index - 1], self.masses[index - 1]
            total += mass if t >= right else mass * (t - left) / (right - left)
        return min(total, 1.0)

    def survival(self, t: float) -> float:
        """P(duration > t)."""
        return max(1.0 - self.cdf(t), 0.0)

    def quantile(self, share: float) -> float:
        """The smallest t with P(duration <= t) >= share."""
        total = 0.0
        for left, right, mass in zip(self.lefts, self.rights, self.masses, strict=False):
            if total + mass >= share:
                if right == left or mass == 0:
                    return right
                return left + (right - left) * max(share - total, 0.0) / mass
            total += mass
        return self.end


def _innermost(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Turnbull's innermost intervals: a left end followed directly by a right end, sorted."""
    # At a tie a right end sorts first: (a, x] and (x, b] do not overlap.
    ends = sorted([(lower, 1) for lower, _ in intervals] + [(upper, 0) for _, upper in intervals])
    return [(a, b) for (a, kind_a), (b, kind_b) in itertools.pairwise(ends)
            if kind_a == 1 and kind_b == 0]


def _self_consistency(intervals: Sequence[tuple[float, float]],
                      pieces: Sequence[tuple[float, float]], masses: list[float],
                      iterations: int, tolerance: float = 0.0) -> list[float]:
    """EM steps: each observation spreads its unit of weight over the pieces it contains in
    proportion to their masses; the new masses are the averages. Each observation holds a
    contiguous run of pieces, so a step is prefix sums and a difference array.
    """
    lefts = [a for a, _ in pieces]
    rights = [b for _, b in pieces]
    runs = [(bisect.bisect_left(lefts, lower), bisect.bisect_right(rights, upper) - 1)
            for lower, upper in intervals]
    count, size = len(intervals), len(pieces)
    for _ in range(iterations):
        prefix = [0.0, *itertools.accumulate(masses)]
        weights = [0.0] * (size + 1)
        for first, last in runs:
            held = prefix[last + 1] - prefix[first]
            if first > last or held <= 0:
                continue
            weights[first] += 1.0 / held
            weights[last + 1] -= 1.0 / held
        new = [m * w / count for m, w in zip(masses, itertools.accumulate(weights), strict=False)]
        change = max(abs(a - b) for a, b in zip(new, masses, strict=False))
        masses = new
        if change < tolerance:
            break
    return masses


def fit_turnbull(intervals: Sequence[tuple[float, float]], *,
                 tolerance: float = _EM_TOLERANCE,
                 max_iterations: int = _EM_MAX_ITERATIONS) -> DurationDistribution:
    """The NPMLE of a duration distribution from interval-censored observations ``(lower, upper]``.

    Self-consistency iteration: each observation spreads its unit of weight over the innermost
    intervals it contains in proportion to their current masses; the new masses are the averages.
    Each observation holds a contiguous run of innermost intervals, so one step is prefix sums and
    a difference array, O(observations + intervals).

    Raises:
        ValueError: no observations, or one that is not ``0 <= lower < upper < inf``.
    """
    require(bool(intervals), "intervals", intervals, "must not be empty")
    for lower, upper in intervals:
        require(0 <= lower < upper < math.inf, "interval", (lower, upper),
                 "must satisfy 0 <= lower < upper < inf")
    inner = _innermost(intervals)
    masses = _self_consistency(intervals, inner, [1.0 / len(inner)] * len(inner),
                               max_iterations, tolerance)
    kept = [(a, b, m) for (a, b), m in zip(inner, masses, strict=False) if m > 1e-9]
    total = sum(m for _, _, m in kept)
    return DurationDistribution(tuple(a for a, _, _ in kept), tuple(b for _, b, _ in kept),
                                tuple(m / total for _, _, m in kept), len(intervals),
                                max(upper for _, upper in intervals))


def fit_uniform(intervals: Sequence[tuple[float, float]], *,
                steps: int = 0) -> DurationDistribution:
    """Each observation's unit of mass spread uniformly over its own interval ``(lower, upper]``.

    An interval from 0 (a job that ended before its first poll: a skipped first poll says no
    more) is cut to its last typical width, the median width of the others: spreading it from 0
    would make up early ends nobody saw and pull the next schedule's first poll far too early.

    Raises:
        ValueError: no observations, or one that is not ``0 <= lower < upper < inf``.
    """
    require(bool(intervals), "intervals", intervals, "must not be empty")
    for lower, upper in intervals:
        require(0 <= lower < upper < math.inf, "interval", (lower, upper),
                 "must satisfy 0 <= lower < upper < inf")
    widths = sorted(upper - lower for lower, upper in intervals if lower > 0)
    typical = widths[len(widths) // 2] if widths else math.inf
    cut = [(max(lower, upper - typical) if lower == 0 else lower, upper)
           for lower, upper in intervals]
    # Sweep the ends: between two consecutive ends the density is constant.
    changes: dict[float, float] = {}
    for lower, upper in cut:
        density = 1.0 / (len(cut) * (upper - lower))
        changes[lower] = changes.get(lower, 0.0) + density
        changes[upper] = changes.get(upper, 0.0) - density
    lefts, rights, masses = [], [], []
    density = 0.0
    for a, b in itertools.pairwise(sorted(changes)):
        density += changes[a]
        if density * (b - a) > 1e-12:
            lefts.append(a)
            rights.append(b)
            masses.append(density * (b - a))
    if steps:
        masses = _self_consistency(cut, list(zip(lefts, rights, strict=False)), masses, steps)
    total = sum(masses)
    return DurationDistribution(tuple(lefts), tuple(rights), tuple(m / total for m in masses),
                                len(intervals), max(upper for _, upper in intervals))


# --------------------------------------------------------------------------------- schedule
@dataclass(frozen=True)
class Schedule:
    """Poll times (ages of the job) common to every job of a route, and what they cost."""

    times: tuple[float, ...]
    gap: float  #: the detection delay every job after the earliest ``early_share`` gets at most
    expected_requests: float  #: mean status requests per job under the model
    jobs: int  #: observations behind it

    @property
    def end(self) -> float:
        """The last poll: a job pending past it has outlived the model."""
        return self.times[-1]

    def next_after(self, age: float) -> float | None:
        """The first poll time after ``age``, or None once past the last one."""
        index = bisect.bisect_right(self.times, age)
        return self.times[index] if index < len(self.times) else None


def _grid(dist: DurationDistribution, gap: float, share: float) -> list[float]:
    # Every gap from the early quantile on, until the late one (1 - share) is covered, then one
    # last look at the largest upper bound seen; backoff takes over after it. The last ``share``
    # of jobs, like the first, may take longer to be seen, so that a job of a new, longer
    # workload spends few polls on the old one.
    first = dist.quantile(share) + gap
    count = min(math.ceil(max(dist.quantile(1 - share) - first, 0.0) / gap) + 1,
                MAX_SCHEDULE_POLLS)
    times = [first + k * gap for k in range(count)]
    if dist.horizon > times[-1] + gap / 2:
        times.append(dist.horizon)
    return times


def _expected_requests(dist: DurationDistribution, times: Sequence[float]) -> float:
    # Poll k is sent when the job is still running after poll k-1; the first is always sent.
    return 1.0 + sum(dist.survival(t) for t in times[:-1])


def plan_schedule(dist: DurationDistribution, budget: float = DEFAULT_BUDGET, *,
                  early_share: float = DEFAULT_EARLY_SHARE) -> Schedule:
    """The schedule with the smallest gap whose expected requests per job fit ``budget``.

    Raises:
        ValueError: a budget below 1 or an early share outside [0, 0.5).
    """
    require(budget >= 1, "budget", budget, "must be >= 1 (a job needs one request)")
    require(0 <= early_share < 0.5, "early_share", early_share, "must be in [0, 0.5)")
    span = max(dist.end - dist.start, 1e-3)
    low, high = span / MAX_SCHEDULE_POLLS, span  # one gap of the whole span costs <= 3 requests
    if _expected_requests(dist, _grid(dist, low, early_share)) <= budget:
        high = low
    for _ in range(_BISECTION_STEPS):
        if high - low <= 1e-4 * span:
            break
        middle = (low + high) / 2
        if _expected_requests(dist, _grid(dist, middle, early_share)) <= budget:
            high = middle
        else:
            low = middle
    best = _grid(dist, high, early_share)
    return Schedule(tuple(best), high, _expected_requests(dist, best), dist.jobs)


# ------------------------------------------------------------------------------------ model
class DurationModel:
    """The observed durations of one route and the schedule they give, refitted lazily.

    Not thread-safe by itself: :class:`vtwait.client.history.DurationHistory` guards each model.

    Args:
        capacity: Most recent observations kept.
        min_jobs: Observations needed before :meth:`schedule` answers.
        drift_run: Consecutive observations outside the model's range that replace the older ones.
    """

    def __init__(self, observations: Iterable[tuple[float, float]] = (), *,
                 capacity: int = DEFAULT_CAPACITY, min_jobs: int = DEFAULT_MIN_JOBS,
                 drift_run: int = DEFAULT_DRIFT_RUN):
        require(capacity >= 1, "capacity", capacity, "must be >= 1")
        require(min_jobs >= 1, "min_jobs", min_jobs, "must be >= 1")
        require(drift_run >= 1, "drift_run", drift_run, "must be >= 1")
        self.capacity, self.min_jobs, self.drift_run = capacity, min_jobs, drift_run
        self._observations: deque[tuple[float, float]] = deque(maxlen=capacity)
        self._outside: list[tuple[float, float]] = []  # the current run of surprises
        self._fitted: DurationDistribution | None = None
        self._added = self._fitted_at = 0  # observations added in all, and when last fitted
        self._schedules: dict[float, Schedule] = {}
        self.replace(observations)

    def __len__(self) -> int:
        return len(self._observations) + len(self._outside)

    @property
    def observations(self) -> list[tuple[float, float]]:
        """The observations kept, oldest first (a run of surprises last)."""
        return [*self._observations, *self._outside]

    def replace(self, observations: Iterable[tuple[float, float]]) -> None:
        """Forget everything and hold ``observations`` (e.g. as loaded from a file)."""
        self._observations.clear()
        self._observations.extend(observations)
        self._outside.clear()
        self._invalidate()

    def add(self, lower: float, upper: float) -> bool:
        """Record a job that ended in ``(lower, upper]``; True when it changed the workload.

        Raises:
            ValueError: not ``0 <= lower < upper < inf``.
        """
        require(0 <= lower < upper < math.inf, "interval", (lower, upper),
                 "must satisfy 0 <= lower < upper < inf")
        if self._is_outside(lower, upper):
            # Held aside until the run ends one way or the other, so that the estimate it is
            # judged against is the one from before it.
            self._outside.append((lower, upper))
            if len(self._outside) < self.drift_run:
                return False
            self._observations.clear()
            self._observations.extend(self._outside)
            self._added += len(self._outside)
            self._outside.clear()
            self._invalidate()
            return True
        self._observations.extend(self._outside)  # a few long (or short) jobs, not a new workload
        self._observations.append((lower, upper))
        self._added += len(self._outside) + 1
        self._outside.clear()
        return False

    def distribution(self) -> DurationDistribution | None:
        """The current estimate, or None with no observations."""
        if not self._observations:
            return None
        # Refit once a tenth of the data is new: a batch of 200 completions costs a few dozen
        # fits, not 200.
        new = self._added - self._fitted_at
        if self._fitted is None or new >= max(1, len(self._observations) // 10):
            self._fitted = fit_uniform(list(self._observations), steps=_SMOOTHING_STEPS)
            self._fitted_at = self._added
            self._schedules.clear()
        return self._fitted

    def schedule(self, budget: float = DEFAULT_BUDGET, *,
                 min_jobs: int | None = None) -> Schedule | None:
        """The learned schedule for ``budget``, or None while fewer than ``min_jobs`` are known."""
        if len(self._observations) < (self.min_jobs if min_jobs is None else min_jobs):
            return None
        dist = self.distribution()
        assert dist is not None
        if budget not in self._schedules:
            self._schedules[budget] = plan_schedule(dist, budget)
        return self._schedules[budget]

    def _is_outside(self, lower: float, upper: float) -> bool:
        # Past the estimate's 1st or 99th percentile: by chance one job in a hundred, never a
        # run of drift_run (the longest jobs of a batch that ends shortest first: a few).
        if len(self._observations) < self.min_jobs:
            return False
        dist = self.distribution()
        assert dist is not None
        return lower >= dist.quantile(0.99) or upper <= dist.quantile(0.01)

    def _invalidate(self) -> None:
        self._fitted = None
        self._schedules.clear()
