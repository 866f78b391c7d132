"""The many mode: waiting for many jobs from one process (``python bench.py many``).

    python bench.py many --json bench-results/many.json --plot bench-results/many.png
    python bench.py many --quick          # a few seconds: 200 jobs, short delays

Two scenarios, each with a seeded job plan, run by every strategy in turn, each against a fresh
``python server.py`` (gunicorn + gevent) on 127.0.0.1 and in its own client process (so that its
CPU, memory and threads are its own; forked from the benchmark, so no imports are repeated, with
the objects it inherits frozen by ``gc.freeze()`` so that its collections skip them):

* ``spread``: 10,000 jobs whose ends are spread uniformly over 3-7 s after a common moment;
* ``burst``: 10,000 jobs that all end in the same instant (5 s after it).

The client process starts every job first (the async client, 64 starts in flight; each job gets
the delay left to its planned end, so starting takes place during a lead time before the common
moment), then waits for them all with one strategy:

* ``stream-async``: ``AsyncVideoTranslationClient.as_completed`` with the event stream (one
  ``GET /events`` per 1,000 jobs);
* ``long-poll-async``: the same client with the stream off: one task per job, each long-polling;
* ``stream-sync``: ``VideoTranslationClient.as_completed`` with the stream, over 1,000 jobs, its
  process's threads counted at every job it yields;
* ``fixed-async``: the trivial loop (``PollingPolicy.fixed(1.0)``, one task per job), the
  reference for server cost.

Figures per run: requests per job (status requests plus stream connections, divided by jobs);
detection delay (the moment the client yields a job's final status minus its ``finished_at``;
one machine, one clock) at p50/p99/max; client CPU seconds and peak RSS (the client process, wait
phase for CPU; RSS with what it had when forked, shown beside it); server CPU seconds (master and
worker, wait phase) and peak RSS (sampled every 0.1 s). Markdown on stdout, JSON and a PNG on
request. A missed target is reported, never raised.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import logging
import multiprocessing
import random
import resource
import shlex
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

import vtwait.testing as testing
from benchmarks.common import (
    MB,
    BenchError,
    OptionError,
    Spread,
    Target,
    bench_workdir,
    cpu_seconds,
    finish,
    markdown_table,
    process_tree,
    save_figure,
)

logger = logging.getLogger(__name__)

HELP = "many jobs from one process: event stream, per-job long-poll, sync as_completed, 1 s loop"
SCENARIOS = ("spread", "burst")
#: The ways of waiting for a batch (the strategies mode's ``STRATEGIES`` are single-job policies).
BATCH_STRATEGIES = ("stream-async", "long-poll-async", "stream-sync", "fixed-async")
#: Full run and --quick: jobs per async strategy, jobs for the sync one, the window of ends.
#: ``lead``: time before the common moment to start every job first, base + per job (measured
#: one request per job: 0.3 ms per start with 64 in flight on 2 idle cores, 1.8 ms on a busy
#: machine; in batches of 1,000 (issue 19) 0.14-0.22 ms of server CPU, 1.2 ms of wall time on a
#: machine shared by seven busy processes; a job started after its planned end
#: is counted in ``late_starts``).
MANY_DEFAULTS = {"jobs": 10_000, "sync_jobs": 1000, "min_delay": 3.0, "max_delay": 7.0,
                 "burst_delay": 5.0, "lead": (3.0, 0.0015)}
MANY_QUICK = {"jobs": 100, "sync_jobs": 50, "min_delay": 0.1, "max_delay": 0.3,
              "burst_delay": 0.2, "lead": (0.2, 0.0007)}
#: Concurrent starts of the client process.
START_CONCURRENCY = 64
#: Targets of the issue.
TARGET_STREAM_REQUESTS = 0.01
TARGET_STREAM_P99_MS = 20.0
TARGET_STREAM_CPU_S = 3.0
TARGET_BURST_P99_MS = 100.0
#: The burst p99 at most this many times the spread p99 of the same run (stream-async).
TARGET_BURST_OVER_SPREAD = 10.0
#: Start and wait for every job with at most this many HTTP requests in all (stream-async), and
#: start them at this rate at least (issue 19).
TARGET_TOTAL_REQUESTS = 30
TARGET_STARTS_PER_S = 20_000.0
TARGET_LONG_POLL_REQUESTS = 1.0
TARGET_LONG_POLL_P99_MS = 100.0
TARGET_SYNC_THREADS = 4
TARGET_SYNC_P99_MS = 20.0
TARGET_SERVER_CPU_SHARE = 1 / 20


@dataclass(frozen=True)
class RunResult:
    """One strategy on one scenario."""

    scenario: str
    strategy: str
    jobs: int
    wrong_results: int  #: jobs whose final result was not their planned outcome (must be 0)
    start_s: float  #: time to start every job
    late_starts: int  #: jobs started after their planned end (the lead was too short)
    status_requests: int
    stream_requests: int
    requests_per_job: float
    delay_ms: Spread
    wall_s: float  #: from the common moment to the last job learned of
    client_cpu_s: float
    client_peak_rss_mb: float
    client_base_rss_mb: float  #: RSS of the client process as forked, before it did anything
    client_threads_max: int
    server_cpu_s: float
    server_peak_rss_mb: float
    #: POST /start and /start/batch requests of the start phase (batches when the server offers
    #: them); last, with a default, so that older JSON without it still loads
    start_requests: int = 0


# ------------------------------------------------------------------------------ the client side
def _plan(options: dict[str, Any], scenario: str, count: int) -> list[tuple[float, str]]:
    """(seconds after the common moment, outcome) per job; a third fated to fail."""
    rng = random.Random(f"{options['seed']}:{scenario}")
    return [(options["burst_delay"] if scenario == "burst"
             else round(rng.uniform(options["min_delay"], options["max_delay"]), 3),
             "error" if rng.random() < 0.3 else "completed") for _ in range(count)]


class _Counter:
    """Requests by kind, from a requests hook or an aiohttp trace."""

    def __init__(self) -> None:
        self.status = self.stream = self.start = 0

    def count(self, method: str, path: str) -> None:
        if method == "GET" and path.startswith("/status"):
            self.status += 1
        elif method == "GET" and path.startswith("/events"):
            self.stream += 1
        elif method == "POST" and path.startswith("/start"):
            self.start += 1


async def _start_all(url: str, plan: list[tuple[float, str]], moment: float,
                     counter: _Counter) -> tuple[list[str], int]:
    """Start every planned job, each with the delay left to its end; (ids, late starts).

    ``start_many`` of the async client, one batch (``POST /start/batch``, its
    ``batch_start_size`` jobs) at a time, each job's delay computed just before its batch goes.
    """
    import aiohttp

    from vtwait import AsyncVideoTranslationClient

    async def on_start(session: Any, context: Any, params: Any) -> None:
        counter.count(params.method, params.url.path)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    late, ids = 0, list[str]()
    async with AsyncVideoTranslationClient(url, trace_configs=[trace]) as api:
        while len(ids) < len(plan):
            jobs = []
            for offset, outcome in plan[len(ids):len(ids) + api.batch_start_size]:
                left = moment + offset - time.time()
                late += left < 0.05
                jobs.append({"delay": round(max(left, 0.05), 3), "outcome": outcome})
            ids += await api.start_many(jobs, concurrency=START_CONCURRENCY)
    return ids, late


async def _wait_async(url: str, ids: list[str], strategy: str, counter: _Counter,
                      timeout: float) -> list[tuple[str, str, float]]:
    import aiohttp

    from vtwait import AsyncVideoTranslationClient, PollingPolicy

    async def on_start(session: Any, context: Any, params: Any) -> None:
        counter.count(params.method, params.url.path)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    policy = PollingPolicy.fixed(1.0) if strategy == "fixed-async" else None
    seen = []
    async with AsyncVideoTranslationClient(url, policy=policy, trace_configs=[trace]) as api:
        api.use_event_stream = strategy == "stream-async"
        async for status in api.as_completed(ids, timeout=timeout):
            seen.append(_record(status))
    return seen


def _record(status: Any) -> tuple[str, str, float]:
    """(job id, result, detection delay) of a final status as the client yields it."""
    learned = time.time()
    if status.finished_at is None:
        raise BenchError(f"job {status.job_id}: final status without finished_at")
    return str(status.job_id), status.result.value, learned - status.finished_at


def _wait_sync(url: str, ids: list[str], counter: _Counter, timeout: float,
               threads: list[int]) -> list[tuple[str, str, float]]:
    from vtwait import VideoTranslationClient

    me = psutil.Process()
    seen = []
    with VideoTranslationClient(url) as api:
        api.session.hooks["response"].append(
            lambda r, *a, **k: counter.count(r.request.method, r.request.path_url))
        threads.append(me.num_threads())
        for status in api.as_completed(ids, timeout=timeout):
            seen.append(_record(status))
            threads.append(me.num_threads())
    return seen


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """In the client process: start the planned jobs, wait with one strategy, return figures."""
    # The fork brought the benchmark's own objects along (Flask, gunicorn, gevent, ... imported by
    # the parent); frozen, the client's garbage collections do not scan them, as in a process
    # that imports only the client (measured: a 180 ms gen-2 pause without, 14 ms with).
    gc.freeze()
    base_rss = psutil.Process().memory_info().rss / MB  # what the fork brought along
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 10,000 long-polls need fds
    plan = [tuple(job) for job in spec["plan"]]
    moment = time.time() + spec["lead"][0] + spec["lead"][1] * len(plan)
    started, starts = time.monotonic(), _Counter()
    ids, late = asyncio.run(_start_all(spec["url"], plan, moment, starts))
    start_s = time.monotonic() - started
    counter, threads = _Counter(), [psutil.Process().num_threads()]
    timeout = spec["timeout"] + max(moment - time.time(), 0)
    cpu, server_cpu = time.process_time(), cpu_seconds(process_tree(spec["server_pid"]))
    if spec["strategy"] == "stream-sync":
        seen = _wait_sync(spec["url"], ids, counter, timeout, threads)
    else:
        seen = asyncio.run(_wait_async(spec["url"], ids, spec["strategy"], counter, timeout))
    wall = time.time() - moment
    cpu, server_cpu = time.process_time() - cpu, cpu_seconds(process_tree(spec["server_pid"])) - server_cpu
    planned = dict(zip(ids, (outcome for _, outcome in plan), strict=True))
    return {"start_s": start_s, "late_starts": late,
            "wrong_results": sum(result != planned[job_id] for job_id, result, _ in seen)
            + len(ids) - len(seen), "delays": [delay for _, _, delay in seen],
            "status_requests": counter.status, "stream_requests": counter.stream,
            "start_requests": starts.start,
            "wall_s": wall, "client_cpu_s": cpu, "client_threads_max": max(threads),
            "client_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "client_base_rss_mb": base_rss,
            "server_cpu_s": server_cpu}


# ------------------------------------------------------------------------------ the parent side
def run_one(scenario: str, strategy: str, options: dict[str, Any], workdir: Path) -> RunResult:
    """One strategy on one scenario: a fresh server, a client process, the figures."""
    count = options["sync_jobs"] if strategy == "stream-sync" else options["jobs"]
    plan = _plan(options, scenario, count)
    name = f"{scenario}-{strategy}"
    args = ["--seed", str(options["seed"]), "--max-waiters", str(count + 2000),
            "--max-jobs", str(count + 1000)]
    logger.info("%s: %d jobs; server.py %s", name, count, shlex.join(args))
    try:
        server = testing.ServerProcess.start(*args, log_path=workdir / f"{name}.log",
                                               timeout=30)
    except RuntimeError as exc:
        raise BenchError(f"server for {name} did not start: {exc}") from exc
    peak = [0.0]
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_rss, args=(server.pid, peak, stop), daemon=True)
    spec = {"url": server.url, "server_pid": server.pid, "strategy": strategy, "plan": plan,
            "lead": options["lead"], "timeout": options["max_delay"] * 3 + 60}
    try:
        figures = _in_child(spec, name, sampler.start)
    finally:
        stop.set()
        sampler.join()
        _kill_tree(server)
    if figures["wrong_results"]:
        raise BenchError(f"{name}: {figures['wrong_results']} jobs missing or with the wrong "
                         "result")
    requests = figures["status_requests"] + figures["stream_requests"]
    result = RunResult(
        scenario=scenario, strategy=strategy, jobs=count, wrong_results=0,
        start_s=figures["start_s"], late_starts=figures["late_starts"],
        status_requests=figures["status_requests"], stream_requests=figures["stream_requests"],
        start_requests=figures["start_requests"],
        requests_per_job=requests / count, delay_ms=Spread.of(figures["delays"], 1000),
        wall_s=figures["wall_s"], client_cpu_s=figures["client_cpu_s"],
        client_peak_rss_mb=figures["client_peak_rss_mb"],
        client_base_rss_mb=figures["client_base_rss_mb"],
        client_threads_max=figures["client_threads_max"],
        server_cpu_s=figures["server_cpu_s"], server_peak_rss_mb=peak[0])
    logger.info("%s: %.4f requests/job, p99 %.1f ms, client CPU %.2f s, server CPU %.2f s", name,
                result.requests_per_job, result.delay_ms.p99, result.client_cpu_s,
                result.server_cpu_s)
    return result


def _in_child(spec: dict[str, Any], name: str, then: Any) -> dict[str, Any]:
    """run_child(spec) in a forked client process (no second start-up of Python and imports)."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(spec, sender), name=name)
    child.start()
    sender.close()
    then()  # the RSS sampler thread starts after the fork, so the child never holds it
    try:
        if not receiver.poll(spec["timeout"] + 120):
            raise BenchError(f"{name}: the client process did not answer in time")
        kind, payload = receiver.recv()
    except EOFError:
        kind, payload = "error", f"the client process died (exit code {child.exitcode})"
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
    if kind != "ok":
        raise BenchError(f"{name}: the client process failed:\n{payload}")
    return payload


def _child_main(spec: dict[str, Any], sender: Any) -> None:
    try:
        sender.send(("ok", run_child(spec)))
    except BaseException:  # noqa: BLE001 - everything goes back to the parent as text
        sender.send(("error", traceback.format_exc()[-3000:]))


def _sample_rss(pid: int, peak: list[float], stop: threading.Event) -> None:
    process = psutil.Process(pid)
    while not stop.wait(0.1):
        try:
            rss = sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
        except psutil.NoSuchProcess:
            return
        peak[0] = max(peak[0], rss / MB)


def _kill_tree(server: testing.ServerProcess) -> None:
    """Kill the server and its worker at once (its graceful stop is not what is measured)."""
    try:
        workers = psutil.Process(server.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        workers = []
    for worker in workers:
        try:
            worker.kill()
        except psutil.NoSuchProcess:
            pass
    server.kill()


def many_targets(results: Sequence[RunResult]) -> list[Target]:
    """The issue's targets, for the runs present."""
    runs = {(r.scenario, r.strategy): r for r in results}
    targets = []
    s = runs.get(("spread", "stream-async"))
    if s is not None:
        targets += [
            Target(f"stream, {s.jobs:,} spread: requests per job", f"<= {TARGET_STREAM_REQUESTS:g}",
                   f"{s.requests_per_job:.4f} ({s.stream_requests} streams, "
                   f"{s.status_requests} status)", s.requests_per_job <= TARGET_STREAM_REQUESTS),
            Target(f"stream, {s.jobs:,} spread: p99 detection delay",
                   f"<= {TARGET_STREAM_P99_MS:g} ms", f"{s.delay_ms.p99:.1f} ms",
                   s.delay_ms.p99 <= TARGET_STREAM_P99_MS),
            Target(f"stream, {s.jobs:,} spread: client CPU for the batch",
                   f"<= {TARGET_STREAM_CPU_S:g} s", f"{s.client_cpu_s:.2f} s",
                   s.client_cpu_s <= TARGET_STREAM_CPU_S)]
    if (b := runs.get(("burst", "stream-async"))) is not None:
        lp = runs.get(("burst", "long-poll-async"))
        targets.append(Target(
            f"stream, {b.jobs:,} ending in the same instant: p99", f"<= {TARGET_BURST_P99_MS:g} ms",
            f"{b.delay_ms.p99:.1f} ms" + (f" (per-job long-poll: {lp.delay_ms.p99:.0f} ms)"
                                          if lp else ""), b.delay_ms.p99 <= TARGET_BURST_P99_MS))
        if s is not None:
            ratio = b.delay_ms.p99 / max(s.delay_ms.p99, 1e-9)
            targets.append(Target(
                "stream: burst p99 against the spread p99 of the same run",
                f"<= {TARGET_BURST_OVER_SPREAD:g}x", f"{ratio:.1f}x ({b.delay_ms.p99:.1f} vs "
                f"{s.delay_ms.p99:.1f} ms)", ratio <= TARGET_BURST_OVER_SPREAD))
    for scenario in SCENARIOS:
        if (r := runs.get((scenario, "stream-async"))) is None:
            continue
        total = r.start_requests + r.stream_requests + r.status_requests
        rate = r.jobs / r.start_s if r.start_s > 0 else float("inf")
        targets += [
            Target(f"stream, {r.jobs:,} {scenario}: HTTP requests to start and wait, in all",
                   f"<= {TARGET_TOTAL_REQUESTS}",
                   f"{total} ({r.start_requests} start, {r.stream_requests} streams, "
                   f"{r.status_requests} status)", total <= TARGET_TOTAL_REQUESTS),
            Target(f"stream, {r.jobs:,} {scenario}: starts per second (batch start)",
                   f">= {TARGET_STARTS_PER_S:,.0f}", f"{rate:,.0f} ({r.start_s:.2f} s)",
                   rate >= TARGET_STARTS_PER_S)]
    if (lp := runs.get(("spread", "long-poll-async"))) is not None:
        targets += [
            Target(f"long-poll, {lp.jobs:,} spread: requests per job",
                   f"{TARGET_LONG_POLL_REQUESTS:.2f}", f"{lp.requests_per_job:.3f}",
                   round(lp.requests_per_job, 2) <= TARGET_LONG_POLL_REQUESTS),
            Target(f"long-poll, {lp.jobs:,} spread: p99", f"<= {TARGET_LONG_POLL_P99_MS:g} ms",
                   f"{lp.delay_ms.p99:.1f} ms", lp.delay_ms.p99 <= TARGET_LONG_POLL_P99_MS)]
    if (y := runs.get(("spread", "stream-sync"))) is not None:
        targets += [
            Target(f"sync as_completed, {y.jobs:,} with the stream: threads",
                   f"<= {TARGET_SYNC_THREADS}", str(y.client_threads_max),
                   y.client_threads_max <= TARGET_SYNC_THREADS),
            Target(f"sync as_completed, {y.jobs:,} with the stream: p99",
                   f"<= {TARGET_SYNC_P99_MS:g} ms", f"{y.delay_ms.p99:.1f} ms",
                   y.delay_ms.p99 <= TARGET_SYNC_P99_MS)]
    for scenario in SCENARIOS:
        s, f = runs.get((scenario, "stream-async")), runs.get((scenario, "fixed-async"))
        if s is not None and f is not None:
            share = s.server_cpu_s / f.server_cpu_s if f.server_cpu_s else float("inf")
            targets.append(Target(
                f"server CPU, stream vs the 1 s loop ({scenario})",
                f"<= 1/{round(1 / TARGET_SERVER_CPU_SHARE)}",
                f"{s.server_cpu_s:.2f} s vs {f.server_cpu_s:.2f} s (1/{1 / share:.0f})"
                if share else "0", share <= TARGET_SERVER_CPU_SHARE))
    return targets


def many_markdown(results: Sequence[RunResult]) -> str:
    """The report's body: one table per scenario."""
    parts = []
    for scenario in SCENARIOS:
        rows = [(r.strategy, f"{r.jobs:,}", r.start_requests, f"{r.requests_per_job:.4f}",
                 r.stream_requests,
                 r.status_requests, f"{r.delay_ms.p50:.1f}", f"{r.delay_ms.p99:.1f}",
                 f"{r.delay_ms.max:.1f}", f"{r.client_cpu_s:.2f}",
                 f"{r.client_peak_rss_mb:.0f} ({r.client_base_rss_mb:.0f})",
                 r.client_threads_max, f"{r.server_cpu_s:.2f}", f"{r.server_peak_rss_mb:.0f}",
                 f"{r.start_s:.1f}", r.late_starts)
                for r in results if r.scenario == scenario]
        if not rows:
            continue
        what = "ends spread over the window" if scenario == "spread" else \
            "all ending in the same instant"
        parts.append(f"### {scenario}: {what}\n\n" + markdown_table(
            ("strategy", "jobs", "start requests", "requests/job (wait)", "streams",
             "status requests", "delay p50 (ms)", "p99", "max", "client CPU s",
             "client peak RSS (forked at) MB", "client threads", "server CPU s",
             "server peak RSS (MB)", "start s", "late starts"), rows, "l"))
    return "\n\n".join(parts)


def plot_many(results: Sequence[RunResult], path: Path) -> None:
    """Requests per job against p99 delay, one point per run (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for r in results:
        x, y = max(r.requests_per_job, 1e-4), max(r.delay_ms.p99, 0.1)
        ax.scatter([x], [y], s=60, zorder=3, marker="o" if r.scenario == "spread" else "s")
        ax.annotate(f"{r.strategy} ({r.scenario})", (x, y), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("requests per job (status + stream connections)")
    ax.set_ylabel("p99 detection delay (ms)")
    ax.set_title("Waiting for many jobs from one process", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    save_figure(fig, path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The many mode's own options."""
    parser.add_argument("--jobs", type=int, help="jobs per async strategy (default: "
                        f"{MANY_DEFAULTS['jobs']}; --quick: {MANY_QUICK['jobs']})")
    parser.add_argument("--sync-jobs", type=int, help="jobs for the sync client (default: "
                        f"{MANY_DEFAULTS['sync_jobs']}; --quick: {MANY_QUICK['sync_jobs']})")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma-separated (default: %(default)s)")
    parser.add_argument("--strategies", default=",".join(BATCH_STRATEGIES),
                        help="comma-separated (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the plans (default: 1)")
    parser.add_argument("--plot", type=Path, metavar="PATH", help="draw a PNG here")


def run(options: argparse.Namespace) -> int:
    """``python bench.py many ...``; returns the exit status."""
    sizes = {**(MANY_QUICK if options.quick else MANY_DEFAULTS), "seed": options.seed}
    sizes.update({k: v for k, v in (("jobs", options.jobs), ("sync_jobs", options.sync_jobs))
                  if v is not None})
    scenarios = [s for s in options.scenarios.split(",") if s]
    strategies = [s for s in options.strategies.split(",") if s]
    bad = [s for s in scenarios if s not in SCENARIOS] + [s for s in strategies
                                                          if s not in BATCH_STRATEGIES]
    if bad or sizes["jobs"] < 1 or sizes["sync_jobs"] < 1:
        raise OptionError(f"unknown scenarios/strategies {bad} or a count below 1")
    with bench_workdir(options.server_logs) as workdir:
        results = [run_one(scenario, strategy, sizes, workdir)
                   for scenario in scenarios for strategy in strategies]
    fixed = [r for r in results if r.strategy == "fixed-async"]
    finish(options, title=f"Many jobs from one process: {sizes['jobs']:,} jobs "
                          f"({sizes['sync_jobs']:,} for the sync client)",
           notes=f"Spread: ends uniform over {sizes['min_delay']:g}-{sizes['max_delay']:g} s "
                 f"after a common moment; burst: all end {sizes['burst_delay']:g} s after it. "
                 "Detection delay: the client yields the final status, minus its `finished_at`. "
                 "Requests per job: status requests plus stream connections, per job. CPU: the "
                 "wait phase; RSS: peak. Server: `python server.py` (gunicorn + gevent, 1 worker).",
           body=many_markdown(results), targets=many_targets(results),
           results={"settings": sizes, "runs": [dataclasses.asdict(r) for r in results]},
           calibration=("the 1 s loop (fixed-async), the reference of the server CPU targets, "
                        "cost the server " + " and ".join(
                            f"{r.server_cpu_s:.2f} CPU s ({r.scenario})" for r in fixed)
                        + f" for {sizes['jobs']:,} jobs.") if fixed else None)
    if options.plot:
        plot_many(results, options.plot)
    return 0
