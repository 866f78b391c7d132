"""The strategies mode (the default of ``python bench.py``): what the client's waiting strategy
buys, and what the server holds, over real HTTP.

    python bench.py --json bench-results/strategies.json --plot bench-results/strategies.png
    python bench.py --quick                       # a few seconds
    python bench.py strategies --quick            # the same, the mode named

One seeded list of jobs (200 by default, durations uniform in 3-7 s, about 30 % fated to end in
error, all started at once) is waited for by each strategy in turn, each against a fresh
``server.py`` subprocess on 127.0.0.1:

* ``fixed``: ``PollingPolicy.fixed(1.0)``, one ``GET /status`` per second; plain server.
* ``doubling``: ``PollingPolicy.doubling(initial=1.0, retries=10)``, no jitter; plain server.
* ``backoff``: ``PollingPolicy(learn=False)``, the client's backoff without the learned schedule,
  against a plain server (``--plain``: no hints, no long-poll), so only its jittered backoff acts.
  (The default policy learns on a silent server: ``python bench.py learned``.)
* ``hints``: the default policy against a server with hints but no long-poll (``--max-wait 0``):
  the client asks for a long-poll, gets no hold, and follows ``eta_seconds``.
* ``long-poll``: the default policy against the full server.
* ``run``: ``client.run(...)``, the start held with ``Prefer: wait`` (issue 16) against the full
  server: a job shorter than the hold costs its start alone.

Per strategy: status requests per job (mean, max); every request of a job's life, the start
included (mean); detection delay, the moment
``wait_for_completion`` returns minus the job's ``finished_at`` (one machine, one clock), at p50,
p95, p99 and max; wall time; CPU seconds of the client (this process) and of the server process.
The ``learned`` and ``ratelimit`` modes reuse :func:`plan_jobs` and :func:`run_strategy`.

Percentiles are nearest-rank. Durations are in seconds unless a name ends in ``_ms``. Every
request goes to 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import logging
import random
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BenchError,
    MeasuredServer,
    OptionError,
    Spread,
    Target,
    bench_workdir,
    fill_defaults,
    finish,
    markdown_table,
    save_figure,
    start_together,
)
from vtwait import PollingPolicy, VideoTranslationClient

logger = logging.getLogger(__name__)

HELP = "the client's waiting strategies on one list of jobs (the default mode)"
#: Settings of the strategies mode, full run and ``--quick``.
STRATEGY_DEFAULTS = {"jobs": 200, "min_delay": 3.0, "max_delay": 7.0}
STRATEGY_QUICK = {"jobs": 20, "min_delay": 0.3, "max_delay": 0.8}
DEFAULT_SEED = 1
#: Share of the jobs fated to end in error (the server's default error probability).
DEFAULT_ERROR_SHARE = 0.3
#: Targets of the issue.
TARGET_LONG_POLL_REQUESTS = 1.05
TARGET_LONG_POLL_P99_MS = 10.0
TARGET_HINTS_REQUESTS = 4.0
TARGET_RUN_REQUESTS = 1.0
TARGET_HINTS_SHARE_OF_DOUBLING = 0.25


# ------------------------------------------------------------------------------- value types
@dataclass(frozen=True)
class Strategy:
    """A way of waiting and the server it is measured against."""

    name: str
    summary: str
    server: str  #: how the server is configured, for the table
    server_args: tuple[str, ...]
    policy: PollingPolicy
    one_call: bool = False  #: start and wait with ``client.run`` (a held start)


_PLAIN = ("--plain",)
STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy("fixed", "one GET /status per second", "plain", _PLAIN, PollingPolicy.fixed(1.0)),
    Strategy("doubling", "doubling from 1 s, no jitter, 10 retries", "plain", _PLAIN,
             PollingPolicy.doubling(initial=1.0, retries=10)),
    Strategy("backoff", "backoff x1.3 with 20 % jitter, learn=False", "plain", _PLAIN,
             PollingPolicy(learn=False)),
    Strategy("hints", "client default: follows eta_seconds", "hints, no long-poll",
             ("--max-wait", "0"), PollingPolicy()),
    Strategy("long-poll", "client default: long-poll", "hints + long-poll", (), PollingPolicy()),
    Strategy("run", "client.run(): the start held (Prefer: wait), then long-poll",
             "hints + long-poll", (), PollingPolicy(), one_call=True),
)}


@dataclass(frozen=True)
class PlannedJob:
    """A job as the seeded plan fixes it: how long it runs and how it ends."""

    delay: float
    outcome: str


@dataclass(frozen=True)
class JobRecord:
    """One job as a strategy waited for it."""

    planned: PlannedJob
    result: str
    requests: int  #: status requests sent for it
    detection_delay: float  #: wait returned (Unix time) minus the job's finished_at
    returned: float  #: monotonic time the wait returned
    all_requests: int = 0  #: every request of the job's life, the start included


@dataclass(frozen=True)
class StrategyResult:
    """The figures of one strategy."""

    strategy: str
    server: str
    jobs: int
    completed: int
    errors: int
    requests_per_job_mean: float
    requests_per_job_max: int
    delay_ms: Spread
    wall_s: float
    client_cpu_s: float
    server_cpu_s: float
    #: Every request of a job's life, the start included (mean).
    all_requests_per_job_mean: float = 0.0


# ------------------------------------------------------------------------------ pure helpers
def plan_jobs(count: int, *, seed: int, min_delay: float, max_delay: float,
              error_share: float = DEFAULT_ERROR_SHARE) -> list[PlannedJob]:
    """The seeded jobs every strategy waits for: uniform durations, ``error_share`` failing."""
    rng = random.Random(seed)
    return [PlannedJob(round(rng.uniform(min_delay, max_delay), 3),
                       "error" if rng.random() < error_share else "completed")
            for _ in range(count)]


def summarize(strategy: Strategy, records: Sequence[JobRecord], *, wall: float,
              client_cpu: float, server_cpu: float) -> StrategyResult:
    """The figures of one strategy from its job records."""
    requests = [r.requests for r in records]
    return StrategyResult(
        strategy=strategy.name, server=strategy.server, jobs=len(records),
        completed=sum(r.result == "completed" for r in records),
        errors=sum(r.result == "error" for r in records),
        requests_per_job_mean=sum(requests) / len(requests),
        requests_per_job_max=max(requests),
        delay_ms=Spread.of([r.detection_delay for r in records], 1000),
        wall_s=wall, client_cpu_s=client_cpu, server_cpu_s=server_cpu,
        all_requests_per_job_mean=sum(r.all_requests for r in records) / len(records))


def strategy_targets(results: Iterable[StrategyResult]) -> list[Target]:
    """The issue's targets for the strategies present in ``results``."""
    by_name = {r.strategy: r for r in results}
    targets = []
    if (lp := by_name.get("long-poll")) is not None:
        targets.append(Target(
            "long-poll: status requests per job (mean; floor 1.0)",
            f"<= {TARGET_LONG_POLL_REQUESTS:g}",
            f"{lp.requests_per_job_mean:.3f} (max {lp.requests_per_job_max})",
            lp.requests_per_job_mean <= TARGET_LONG_POLL_REQUESTS))
        targets.append(Target(
            f"long-poll: p99 detection delay, {lp.jobs} concurrent jobs",
            f"< {TARGET_LONG_POLL_P99_MS:g} ms", f"{lp.delay_ms.p99:.1f} ms",
            lp.delay_ms.p99 < TARGET_LONG_POLL_P99_MS))
    if (one := by_name.get("run")) is not None:
        targets.append(Target(
            "run(): every request of a job's life, start included (mean; jobs shorter than the "
            "hold)", f"<= {TARGET_RUN_REQUESTS:.2f}", f"{one.all_requests_per_job_mean:.3f}",
            one.all_requests_per_job_mean <= TARGET_RUN_REQUESTS))
        targets.append(Target(
            f"run(): p99 detection delay, {one.jobs} concurrent jobs",
            f"< {TARGET_LONG_POLL_P99_MS:g} ms", f"{one.delay_ms.p99:.1f} ms",
            one.delay_ms.p99 < TARGET_LONG_POLL_P99_MS))
    if (hints := by_name.get("hints")) is not None:
        targets.append(Target(
            "hints: status requests per job (mean), default ETA_NOISE",
            f"<= {TARGET_HINTS_REQUESTS:g}",
            f"{hints.requests_per_job_mean:.2f} (max {hints.requests_per_job_max})",
            hints.requests_per_job_mean <= TARGET_HINTS_REQUESTS))
        if (doubling := by_name.get("doubling")) is not None:
            limit = doubling.delay_ms.p99 * TARGET_HINTS_SHARE_OF_DOUBLING
            targets.append(Target(
                "hints: p99 detection delay at most a quarter of doubling's",
                f"<= {limit:.0f} ms (doubling p99 {doubling.delay_ms.p99:.0f} ms / 4)",
                f"{hints.delay_ms.p99:.1f} ms", hints.delay_ms.p99 <= limit))
    if (backoff := by_name.get("backoff")) is not None:
        for name in ("doubling", "fixed"):
            if (other := by_name.get(name)) is None:
                continue
            asks_more = other.requests_per_job_mean > backoff.requests_per_job_mean
            learns_later = other.delay_ms.p99 > backoff.delay_ms.p99
            why = " and ".join(w for w, ok in (("asks more", asks_more),
                                               ("learns later", learns_later)) if ok)
            targets.append(Target(
                f"backoff: not dominated by {name}",
                f"{name} asks more often or learns later",
                f"{name} {other.requests_per_job_mean:.2f} req/job, p99 "
                f"{other.delay_ms.p99:.0f} ms; backoff {backoff.requests_per_job_mean:.2f}, "
                f"{backoff.delay_ms.p99:.0f} ms" + (f" ({name} {why})" if why else ""),
                asks_more or learns_later))
    return targets


def strategies_markdown(results: Sequence[StrategyResult]) -> str:
    """The strategies report's table."""
    rows = [(r.strategy, r.server, f"{r.requests_per_job_mean:.2f}", r.requests_per_job_max,
             f"{r.all_requests_per_job_mean:.2f}",
             f"{r.delay_ms.p50:.1f}", f"{r.delay_ms.p95:.1f}", f"{r.delay_ms.p99:.1f}",
             f"{r.delay_ms.max:.1f}", f"{r.wall_s:.1f}", f"{r.client_cpu_s:.2f}",
             f"{r.server_cpu_s:.2f}") for r in results]
    table = markdown_table(
        ("strategy", "server", "status requests/job mean", "max",
         "all requests/job (start included)", "delay p50 (ms)", "p95", "p99", "max",
         "wall s", "client CPU s", "server CPU s"), rows, "ll")
    return table


# ------------------------------------------------------------------------------- strategies
class _StatusCounter:
    """A response hook counting the status requests (GET /status...) one session sends, and
    every request of the job (``total``: the start included; the warm-up /healthz not)."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0

    def __call__(self, response: Any, *args: Any, **kwargs: Any) -> None:
        request = response.request
        if request.method == "GET" and "/status" in request.path_url:
            self.count += 1
        if not request.path_url.startswith("/healthz"):
            self.total += 1


def _wait_for_one(api: VideoTranslationClient, counter: _StatusCounter, job: PlannedJob,
                  barrier: threading.Barrier, timeout: float, one_call: bool = False) -> JobRecord:
    """Start one planned job when every thread is ready, then wait for it like a user would
    (``one_call``: both in ``client.run``)."""
    barrier.wait(timeout=120)
    if one_call:
        status = api.run(delay=job.delay, outcome=job.outcome, timeout=timeout)
        job_id = status.job_id
    else:
        job_id = api.start_job(delay=job.delay, outcome=job.outcome)
        status = api.wait_for_completion(job_id, timeout=timeout)
    returned_wall, returned = time.time(), time.monotonic()
    if status.finished_at is None:
        raise BenchError(f"job {job_id}: final answer without finished_at: {dict(status.raw)}")
    return JobRecord(job, status.result.value, counter.count, returned_wall - status.finished_at,
                     returned, counter.total)


def run_strategy(strategy: Strategy, plan: Sequence[PlannedJob], *, seed: int, workdir: Path,
                 timeout: float, server: MeasuredServer | None = None,
                 client_options: dict[str, Any] | None = None) -> StrategyResult:
    """Wait for every planned job with ``strategy`` on a fresh server; return the figures.

    ``server``: a running server to use instead (kept running); ``client_options``: more keyword
    arguments for each ``VideoTranslationClient`` (e.g. a shared ``history``).

    Raises:
        BenchError: a job ended with another result than planned, or could not be waited for.
    """
    args = [*strategy.server_args, "--seed", seed, "--max-waiters", len(plan) + 10,
            "--max-jobs", len(plan) + 1000]
    if server is None:
        server = MeasuredServer(strategy.name, args, workdir=workdir)
        running: Any = server
    else:
        running = contextlib.nullcontext()
    with running, ExitStack() as stack:
        clients = []
        for index in range(len(plan)):
            api = stack.enter_context(VideoTranslationClient(
                server.url, policy=strategy.policy, rng=random.Random(f"{seed}:{index}"),
                **(client_options or {})))
            # Connect now, so that the clock starts with every connection open.
            api.session.get(server.url + "/healthz", timeout=10).raise_for_status()
            counter = _StatusCounter()
            api.session.hooks["response"].append(counter)
            clients.append((api, counter))
        barrier = threading.Barrier(len(plan) + 1)
        logger.info("%s: %d jobs, %s", strategy.name, len(plan), strategy.summary)
        with concurrent.futures.ThreadPoolExecutor(len(plan), f"bench-{strategy.name}") as pool:
            futures = [pool.submit(_wait_for_one, api, counter, job, barrier, timeout,
                                   strategy.one_call)
                       for (api, counter), job in zip(clients, plan, strict=True)]
            cpu, server_cpu = time.process_time(), server.cpu_seconds()
            started, records = start_together(strategy.name, barrier, futures, timeout, server)
            cpu, server_cpu = time.process_time() - cpu, server.cpu_seconds() - server_cpu
    wrong = [r for r in records if r.result != r.planned.outcome]
    if wrong:
        raise BenchError(f"{strategy.name}: {len(wrong)} jobs ended with the wrong result, e.g. "
                         f"{wrong[0].planned.outcome} planned, {wrong[0].result} reported")
    result = summarize(strategy, records, wall=max(r.returned for r in records) - started,
                       client_cpu=cpu, server_cpu=server_cpu)
    logger.info("%s: %.2f requests/job, p99 delay %.1f ms, %.1f s", strategy.name,
                result.requests_per_job_mean, result.delay_ms.p99, result.wall_s)
    return result


def plot_strategies(results: Sequence[StrategyResult], path: Path, title: str) -> None:
    """Requests per job against p99 detection delay, one point per strategy (log delay axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for result in results:
        x, y = result.requests_per_job_mean, max(result.delay_ms.p99, 0.1)
        ax.scatter([x], [y], s=60, zorder=3)
        ax.annotate(result.strategy, (x, y), textcoords="offset points", xytext=(8, 6))
    ax.set_yscale("log")
    ax.set_xlim(left=0)
    ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.text(1.04, 0.97, "floor: 1 request/job", transform=ax.get_xaxis_transform(),
            color="grey", fontsize=8, va="top")
    ax.set_xlabel("status requests per job (mean)")
    ax.set_ylabel("p99 detection delay (ms, log scale)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    save_figure(fig, path)


# ---------------------------------------------------------------------------- command line
EPILOG = "Strategies: " + "; ".join(f"{s.name} ({s.summary}; {s.server} server)"
                                    for s in STRATEGIES.values()) + "."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The strategies mode's own options."""
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="seed of the job plan, the clients' jitter and the servers "
                             "(default: %(default)s)")
    parser.add_argument("--jobs", type=int, help="jobs, all started at once (default: %d; "
                        "--quick: %d)" % (STRATEGY_DEFAULTS["jobs"], STRATEGY_QUICK["jobs"]))
    parser.add_argument("--min-delay", type=float, help="shortest job, seconds (default: %g; "
                        "--quick: %g)" % (STRATEGY_DEFAULTS["min_delay"], STRATEGY_QUICK["min_delay"]))
    parser.add_argument("--max-delay", type=float, help="longest job, seconds (default: %g; "
                        "--quick: %g)" % (STRATEGY_DEFAULTS["max_delay"], STRATEGY_QUICK["max_delay"]))
    parser.add_argument("--error-share", type=float, default=DEFAULT_ERROR_SHARE,
                        help="share of jobs fated to end in error (default: %(default)g)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help="comma-separated, in order (default: %(default)s)")
    parser.add_argument("--plot", type=Path, metavar="PATH",
                        help="draw requests per job against p99 delay to this PNG (matplotlib)")


def _resolve(options: argparse.Namespace) -> list[str]:
    """Fill unset sizes from the full or quick defaults, check them; the strategies' names."""
    fill_defaults(options, STRATEGY_DEFAULTS, STRATEGY_QUICK)
    if options.jobs < 1:
        raise OptionError("--jobs must be at least 1")
    if not 0 < options.min_delay <= options.max_delay:
        raise OptionError("need 0 < --min-delay <= --max-delay")
    names = [n.strip() for n in options.strategies.split(",") if n.strip()]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or not names:
        raise OptionError(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
    return names


def run(options: argparse.Namespace) -> int:
    """``python bench.py [strategies] ...``; returns the exit status."""
    names = _resolve(options)
    plan = plan_jobs(options.jobs, seed=options.seed, min_delay=options.min_delay,
                     max_delay=options.max_delay, error_share=options.error_share)
    timeout = options.max_delay * 4 + 60
    with bench_workdir(options.server_logs) as workdir:
        results = [run_strategy(STRATEGIES[name], plan, seed=options.seed, workdir=workdir,
                                timeout=timeout) for name in names]
    errors = sum(job.outcome == "error" for job in plan)
    finish(options, title=f"Client strategies: {len(plan)} jobs of {options.min_delay:g}-"
                          f"{options.max_delay:g} s ({errors} fated to fail), all started at once",
           notes="Detection delay: the moment `wait_for_completion` returns minus the job's "
                 f"`finished_at`. Seed {options.seed}; server ETA_NOISE at its default.",
           body=strategies_markdown(results), targets=strategy_targets(results),
           results={"strategies": [dataclasses.asdict(r) for r in results]})
    if options.plot:
        plot_strategies(results, options.plot, f"{len(plan)} concurrent jobs of "
                        f"{options.min_delay:g}-{options.max_delay:g} s, same jobs for each")
        logger.info("wrote %s", options.plot)
    return 0
