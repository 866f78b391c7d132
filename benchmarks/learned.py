"""The learned mode: the learned schedule round by round, beside fixed schedules and the optimum.

    python bench.py learned --json bench-results/learned.json --plot bench-results/learned.png
    python bench.py learned --quick        # a few seconds: 20 short jobs per round

One seeded list of jobs (the strategies mode's: 200 by default, 3-7 s, ~30 % fated to fail, all started at
once, one client and one thread per job, like the strategies mode) against the plain server
(``--plain``: no long-poll, no ETA, no ``Retry-After``), one server for every row. Baselines: fixed
1 s, doubling and the client's backoff without learning (``PollingPolicy(learn=False)``), on the
jobs and on the *shifted* jobs (every duration x3). Then the default policy, which learns, in four
rounds, the 200 clients of a round sharing one ``DurationHistory`` kept in a SQLite file that every
round opens afresh (so warm means "from the persisted file"):

1. ``cold``: empty file; the jobs; the first completions of the round feed the model as they come.
2. ``warm``: the same jobs again.
3. ``shifted``: every duration x3; the model is not told.
4. ``warm again``: the shifted jobs again.

**The offline optimum** (the ``optimum p99`` column): the best schedule that knows the true
durations of the round's jobs and spends the same mean status requests per job as the row. A
schedule here is what the learned one is: poll times ``t1 < t2 < ...`` common to every job (ages
since its start), a job being detected at the first poll at or after its end. For a target delay
``d`` and at most ``k`` jobs allowed a longer delay (``k = n - ceil(0.99 n)``, so that the
nearest-rank p99 is at most ``d``), the fewest requests come from a dynamic program over the jobs
sorted by duration: with jobs ``i..`` still undetected and ``s`` misses used, the next poll is
placed at ``d_a + d`` for some job ``a >= i`` (as late as it can be while catching ``a`` within
``d``; the ``a - i`` jobs before it are misses), costs one request for each of the ``n - i`` jobs
still running, and leaves the first job after ``d_a + d`` undetected:
``f(i, s) = min over a in [i, i + k - s] of (n - i) + f(next(a), s + a - i)``, ``f(n, s) = 0``.
Placing every poll at some ``d_a + d`` loses nothing (a later poll catches the same jobs and fewer
are still running at it), so ``f(0, 0) / n`` is the least mean requests for p99 <= ``d``; a
bisection on ``d`` gives the least p99 for the row's mean requests. It ignores network time.

Targets (printed PASS or MISS, never raised): warm, mean <= 4 status requests per job and p99
detection delay <= 1.0 s, within 1.5x of the optimum's p99 at the same mean requests; cold no worse
than backoff by more than 10 % on either figure; shifted no worse than backoff on the shifted jobs
by more than 25 % on either; warm again meets the warm targets for the new durations (the delay
target scaled with them: 3.0 s for jobs three times as long; the requests and the 1.5x unchanged).
Delays are in seconds unless a name ends in ``_ms``; percentiles are nearest-rank.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import (
    MeasuredServer,
    OptionError,
    Target,
    bench_workdir,
    fill_defaults,
    finish,
    markdown_table,
    save_figure,
)
from benchmarks.strategies import (
    STRATEGIES,
    PlannedJob,
    Strategy,
    StrategyResult,
    plan_jobs,
    run_strategy,
)
from vtwait import DurationHistory, PollingPolicy

logger = logging.getLogger(__name__)

HELP = "the learned schedule: cold, warm, shifted, warm again, beside the offline optimum"

#: Full run and ``--quick``.
LEARNED_DEFAULTS = {"jobs": 200, "min_delay": 3.0, "max_delay": 7.0}
LEARNED_QUICK = {"jobs": 20, "min_delay": 0.2, "max_delay": 0.5}
DEFAULT_SEED = 1
DEFAULT_SHIFT = 3.0
BASELINES = ("fixed", "doubling", "backoff")
#: Targets of the issue.
TARGET_WARM_REQUESTS = 4.0
TARGET_WARM_P99 = 1.0  # for 3-7 s jobs; scaled with the durations for the shifted ones
TARGET_OPTIMUM_FACTOR = 1.5
TARGET_COLD_SLACK = 1.10
TARGET_SHIFTED_SLACK = 1.25
_PLAIN = ("--plain",)
_LEARNED = Strategy("learned", "default policy: learned schedule on a silent server", "plain",
                    _PLAIN, PollingPolicy())


@dataclass(frozen=True)
class Row:
    """One measured line: a strategy (or a learned round) on the jobs or the shifted jobs."""

    name: str
    durations: str  #: "base" (the jobs) or "shifted" (the jobs x the shift)
    result: StrategyResult
    optimum_p99_ms: float  #: the offline optimum's p99 at this row's mean requests


# ------------------------------------------------------------------------- offline optimum
def least_requests(durations: Sequence[float], delay: float, misses: int) -> int:
    """Fewest status requests in all (sum over jobs) for at most ``misses`` jobs detected later
    than ``delay`` after their end, with poll times common to every job (see the module text).
    """
    ends = sorted(durations)
    count = len(ends)

    @functools.cache
    def least(first: int, used: int) -> int:
        if first >= count:
            return 0
        best = math.inf
        for anchor in range(first, min(first + misses - used, count - 1) + 1):
            after = bisect.bisect_right(ends, ends[anchor] + delay)
            best = min(best, (count - first) + least(after, used + anchor - first))
        return int(best)

    return least(0, 0)


def optimum_p99(durations: Sequence[float], requests_per_job: float) -> float:
    """The least nearest-rank p99 detection delay of a common schedule for ``durations`` that
    spends at most ``requests_per_job`` status requests per job on average (seconds).
    """
    count = len(durations)
    misses = count - math.ceil(0.99 * count)
    low, high = 0.0, max(durations)
    if least_requests(durations, low, misses) <= requests_per_job * count:
        return 0.0
    for _ in range(50):  # bisection to well under a millisecond
        middle = (low + high) / 2
        if least_requests(durations, middle, misses) <= requests_per_job * count:
            high = middle
        else:
            low = middle
    return high


# ---------------------------------------------------------------------------------- running
def shifted(plan: Sequence[PlannedJob], factor: float) -> list[PlannedJob]:
    """The same jobs, each ``factor`` times as long."""
    return [PlannedJob(round(job.delay * factor, 3), job.outcome) for job in plan]


def _row(name: str, jobs: str, plan: Sequence[PlannedJob], result: StrategyResult) -> Row:
    optimum = optimum_p99([job.delay for job in plan], result.requests_per_job_mean)
    return Row(name, jobs, dataclasses.replace(result, strategy=name), optimum * 1000)


def run_all(plan: Sequence[PlannedJob], *, factor: float, seed: int, workdir: Path) -> list[Row]:
    """The baselines on the jobs and the shifted jobs, then the four learned rounds, all on one
    plain server (a plain server keeps nothing from one round that matters to the next).
    """
    moved = shifted(plan, factor)
    timeout = max(job.delay for job in moved) * 4 + 60
    history_path = workdir / "learned-history.sqlite"
    history_path.unlink(missing_ok=True)
    args = [*_PLAIN, "--seed", str(seed), "--max-waiters", str(len(plan) + 10),
            "--max-jobs", str(8 * len(plan) + 1000)]
    rows = []
    with MeasuredServer("learned", args, workdir=workdir) as server:
        for name, jobs, round_plan in ((n, "base", plan) for n in BASELINES):
            rows.append(_row(name, jobs, round_plan, run_strategy(
                STRATEGIES[name], round_plan, seed=seed, workdir=workdir, timeout=timeout,
                server=server)))
        rows.append(_row("backoff", "shifted", moved, run_strategy(
            dataclasses.replace(STRATEGIES["backoff"], name="backoff-shifted"), moved,
            seed=seed, workdir=workdir, timeout=timeout, server=server)))
        for number, (name, jobs, round_plan) in enumerate((
                ("learned: cold", "base", plan), ("learned: warm", "base", plan),
                ("learned: shifted", "shifted", moved),
                ("learned: warm again", "shifted", moved)), start=1):
            history = DurationHistory(history_path)  # each round from the file
            held = len(history.observations(server.url + "/status/{job_id}"))
            logger.info("round %d (%s): the history file holds %d jobs", number, name, held)
            result = run_strategy(dataclasses.replace(_LEARNED, name=f"learned-{number}"),
                                  round_plan, seed=seed + number, workdir=workdir,
                                  timeout=timeout, server=server,
                                  client_options={"history": history})
            history.close()
            rows.append(_row(name, jobs, round_plan, result))
    return rows


# ---------------------------------------------------------------------------------- targets
def learned_targets(rows: Sequence[Row], factor: float) -> list[Target]:
    """The issue's targets, read off the rows."""
    by = {(r.name, r.durations): r for r in rows}
    targets: list[Target] = []

    def warm(row: Row, scale: float, label: str) -> None:
        result, limit = row.result, TARGET_WARM_P99 * scale
        targets.append(Target(f"{label}: status requests per job (mean)",
                              f"<= {TARGET_WARM_REQUESTS:g}",
                              f"{result.requests_per_job_mean:.2f}",
                              result.requests_per_job_mean <= TARGET_WARM_REQUESTS))
        targets.append(Target(f"{label}: p99 detection delay", f"<= {limit:g} s",
                              f"{result.delay_ms.p99 / 1000:.3f} s",
                              result.delay_ms.p99 <= limit * 1000))
        bound = TARGET_OPTIMUM_FACTOR * row.optimum_p99_ms
        targets.append(Target(
            f"{label}: p99 within {TARGET_OPTIMUM_FACTOR:g}x of the offline optimum at the same "
            "requests", f"<= {bound / 1000:.3f} s ({TARGET_OPTIMUM_FACTOR:g} x "
            f"{row.optimum_p99_ms / 1000:.3f} s)", f"{result.delay_ms.p99 / 1000:.3f} s",
            result.delay_ms.p99 <= bound))

    def versus(row: Row, base: Row, slack: float, label: str) -> None:
        for what, mine, theirs, unit in (
                ("status requests per job", row.result.requests_per_job_mean,
                 base.result.requests_per_job_mean, ""),
                ("p99 detection delay", row.result.delay_ms.p99 / 1000,
                 base.result.delay_ms.p99 / 1000, " s")):
            targets.append(Target(
                f"{label}: {what}, against backoff{' on the shifted jobs' * (base.durations != 'base')}",
                f"<= {slack:g} x {theirs:.3f}{unit} = {slack * theirs:.3f}{unit}",
                f"{mine:.3f}{unit}", mine <= slack * theirs))

    if (row := by.get(("learned: warm", "base"))) is not None:
        warm(row, 1.0, "warm")
        fixed, doubling = by.get(("fixed", "base")), by.get(("doubling", "base"))
        if fixed is not None and doubling is not None:
            mine = row.result
            targets.append(Target(
                "warm default beats fixed 1 s and doubling",
                "fewer requests than fixed and a shorter p99 than doubling",
                f"{mine.requests_per_job_mean:.2f} req/job vs fixed "
                f"{fixed.result.requests_per_job_mean:.2f}; p99 {mine.delay_ms.p99 / 1000:.3f} s "
                f"vs doubling {doubling.result.delay_ms.p99 / 1000:.3f} s",
                mine.requests_per_job_mean < fixed.result.requests_per_job_mean
                and mine.delay_ms.p99 < doubling.result.delay_ms.p99))
    backoff = by.get(("backoff", "base"))
    if (row := by.get(("learned: cold", "base"))) is not None and backoff is not None:
        versus(row, backoff, TARGET_COLD_SLACK, "cold")
    moved = by.get(("backoff", "shifted"))
    if (row := by.get(("learned: shifted", "shifted"))) is not None and moved is not None:
        versus(row, moved, TARGET_SHIFTED_SLACK, f"shifted x{factor:g}")
    if (row := by.get(("learned: warm again", "shifted"))) is not None:
        warm(row, factor, f"warm again on the x{factor:g} jobs")
    return targets


# ---------------------------------------------------------------------------------- output
def rows_markdown(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [(r.name, r.durations, f"{r.result.requests_per_job_mean:.2f}",
              r.result.requests_per_job_max, f"{r.result.delay_ms.p50:.0f}",
              f"{r.result.delay_ms.p95:.0f}", f"{r.result.delay_ms.p99:.0f}",
              f"{r.result.delay_ms.max:.0f}", f"{r.optimum_p99_ms:.0f}",
              f"{r.result.wall_s:.1f}", f"{r.result.client_cpu_s:.2f}") for r in rows]
    return markdown_table(("strategy / round", "durations", "requests/job mean", "max",
                           "delay p50 (ms)", "p95", "p99", "max", "optimum p99 (ms)", "wall s",
                           "client CPU s"), lines, "ll")


def plot_rows(rows: Sequence[Row], plan: Sequence[PlannedJob], factor: float, path: Path) -> None:
    """Requests per job against p99 delay: each row, and the offline optimum's frontier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, jobs, durations in ((axes[0], "base", [j.delay for j in plan]),
                                (axes[1], "shifted", [j.delay * factor for j in plan])):
        budgets = [1.5 + 0.25 * k for k in range(27)]
        ax.plot(budgets, [optimum_p99(durations, b) for b in budgets], color="grey",
                linestyle="--", label="offline optimum")
        for row in (r for r in rows if r.durations == jobs):
            x, y = row.result.requests_per_job_mean, row.result.delay_ms.p99 / 1000
            ax.scatter([x], [y], s=50, zorder=3)
            ax.annotate(row.name, (x, y), textcoords="offset points", xytext=(6, 5), fontsize=8)
        ax.set_xlabel("status requests per job (mean)")
        ax.set_ylabel("p99 detection delay (s)")
        ax.set_title("the jobs" if jobs == "base" else f"the jobs x{factor:g}", fontsize=10)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)


# ---------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The learned mode's own options (``--server-logs`` also keeps the history file)."""
    parser.add_argument("--jobs", type=int, help=f"jobs per round (default: "
                        f"{LEARNED_DEFAULTS['jobs']}; --quick: {LEARNED_QUICK['jobs']})")
    parser.add_argument("--min-delay", type=float, help="shortest job, seconds (default: "
                        f"{LEARNED_DEFAULTS['min_delay']:g}; --quick: {LEARNED_QUICK['min_delay']:g})")
    parser.add_argument("--max-delay", type=float, help="longest job, seconds (default: "
                        f"{LEARNED_DEFAULTS['max_delay']:g}; --quick: {LEARNED_QUICK['max_delay']:g})")
    parser.add_argument("--shift", type=float, default=DEFAULT_SHIFT,
                        help="factor on every duration in the shifted rounds (default: %(default)g)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="seed of the jobs, the clients and the servers (default: %(default)s)")
    parser.add_argument("--plot", type=Path, metavar="PATH", help="draw the rows to this PNG")


def run(options: argparse.Namespace) -> int:
    """``python bench.py learned ...``; returns the exit status."""
    fill_defaults(options, LEARNED_DEFAULTS, LEARNED_QUICK)
    if options.jobs < 1 or not 0 < options.min_delay <= options.max_delay or options.shift <= 0:
        raise OptionError("need --jobs >= 1, 0 < --min-delay <= --max-delay and --shift > 0")
    plan = plan_jobs(options.jobs, seed=options.seed, min_delay=options.min_delay,
                     max_delay=options.max_delay)
    with bench_workdir(options.server_logs) as workdir:
        rows = run_all(plan, factor=options.shift, seed=options.seed, workdir=workdir)
    errors = sum(job.outcome == "error" for job in plan)
    finish(options, title=f"Learned schedule: {len(plan)} jobs of {options.min_delay:g}-"
                          f"{options.max_delay:g} s ({errors} fated to fail), all started at "
                          "once, plain server",
           notes=f"Shifted: every duration x{options.shift:g}. Detection delay: the moment "
                 "`wait_for_completion` returns minus the job's `finished_at`. Optimum p99: the "
                 "best common schedule for the round's true durations at the row's mean "
                 f"requests (benchmarks/learned.py). Seed {options.seed}.",
           body=rows_markdown(rows), targets=learned_targets(rows, options.shift),
           results={"rows": [{"name": r.name, "durations": r.durations,
                              "optimum_p99_ms": r.optimum_p99_ms,
                              **dataclasses.asdict(r.result)} for r in rows]})
    if options.plot:
        plot_rows(rows, plan, options.shift, options.plot)
        logger.info("wrote %s", options.plot)
    return 0
