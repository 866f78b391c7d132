"""The dialects mode: the default client against the simulator in each API dialect
(``python bench.py dialects``).

    python bench.py dialects --json docs/bench-results/dialects.json
    python bench.py dialects --quick           # a few seconds: 12 jobs of 0.3-0.8 s

One seeded plan of jobs (200 by default, durations uniform in 3-7 s, about 30 % fated to fail,
all started at once from one thread per job) is waited for against a fresh ``server.py`` in each
dialect (``DIALECT=native``, ``azure``, ``google``, ``replicate``, ``openai``, ``heygen``) on
127.0.0.1, by one default ``VideoTranslationClient`` per dialect given only the dialect's start
URL: no status template, so every job is asked about at the monitor its start answer names.

Per dialect: status requests per job (every GET the client sent, retries included) and all
requests per job (the start too); detection delay, the moment the wait returned minus the job's
``finished_at`` (read afterwards from the native status route, which every dialect keeps; one
machine, one clock) at p50, p99 and max; wall time. The gap between dialects comes only from what
each offers: the native API has long-poll and ETA hints, Azure a ``Retry-After``, the others
nothing, so the client falls back to its learned schedule and backoff there.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from benchmarks.common import (
    BenchError,
    MeasuredServer,
    OptionError,
    Spread,
    Target,
    add_sized_options,
    bench_workdir,
    chosen_names,
    fill_defaults,
    finish,
    markdown_table,
    start_together,
)
from benchmarks.strategies import PlannedJob, plan_jobs
from vtwait import VideoTranslationClient

logger = logging.getLogger(__name__)

HELP = "the default client against the simulator in each API dialect (no status template)"

DIALECT_DEFAULTS = {"jobs": 200, "min_delay": 3.0, "max_delay": 7.0}
DIALECT_QUICK = {"jobs": 12, "min_delay": 0.3, "max_delay": 0.8}
#: Each dialect's start route (its service's create call) and what it offers the wait.
START_URLS = {
    "native": "/start",
    "azure": "/translations",
    "google": "/v1/videos:translate",
    "replicate": "/v1/predictions",
    "openai": "/v1/videos",
    "heygen": "/v2/video/generate",
}
OFFERS = {
    "native": "long-poll, ETA hints, Retry-After",
    "azure": "Retry-After",
    "google": "none",
    "replicate": "none (its Prefer: wait is on create only)",
    "openai": "none",
    "heygen": "none",
}
#: The native job id inside a dialect's id (OpenAI's video ids carry a prefix).
_ID_PREFIXES = {"openai": "video_"}
#: Connections kept beside one per thread.
POOL_EXTRA = 10


@dataclass(frozen=True)
class DialectResult:
    """The figures of one dialect."""

    dialect: str
    offers: str
    jobs: int
    completed: int
    errors: int
    status_requests: int  #: every GET the client sent (retries included)
    all_requests: int  #: every request, starts included
    status_requests_per_job: float
    requests_per_job: float
    delay_ms: Spread
    wall_s: float


def dialect_targets(results: Sequence[DialectResult]) -> list[Target]:
    """What the issue asks: every dialect waited for with no template; native stays the floor."""
    targets = [Target(f"{r.dialect}: every job waited for, no status template", f"{r.jobs}",
                      f"{r.completed + r.errors}", r.completed + r.errors == r.jobs)
               for r in results]
    by_name = {r.dialect: r for r in results}
    if (native := by_name.get("native")) is not None:
        targets.append(Target("native: status requests per job (long-poll)", "<= 1.05",
                              f"{native.status_requests_per_job:.2f}",
                              native.status_requests_per_job <= 1.05))
    return targets


def dialect_markdown(results: Sequence[DialectResult]) -> str:
    rows = [(r.dialect, r.offers, f"{r.status_requests_per_job:.2f}", f"{r.requests_per_job:.2f}",
             f"{r.delay_ms.p50:.0f}", f"{r.delay_ms.p99:.0f}", f"{r.delay_ms.max:.0f}",
             f"{r.wall_s:.1f}") for r in results]
    return markdown_table(("dialect", "what it offers the wait", "status requests/job",
                           "all requests/job", "delay p50 (ms)", "p99", "max", "wall s"),
                          rows, "ll")


class _Counter:
    """Counts the requests a client's session sends, by method (a response hook)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.methods: Counter[str] = Counter()

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        with self.lock:
            self.methods[response.request.method or "?"] += 1


def _wait_one(api: VideoTranslationClient, job: PlannedJob, barrier: threading.Barrier,
              timeout: float) -> tuple[str, str, float]:
    barrier.wait(timeout=120)
    job_id = api.start_job(delay=job.delay, outcome=job.outcome)
    status = api.wait_for_completion(job_id, timeout=timeout)
    return job_id, status.result.value, time.time()


def run_dialect(dialect: str, plan: Sequence[PlannedJob], *, seed: int, workdir: Path,
                timeout: float) -> DialectResult:
    """Wait for every planned job against a fresh server in ``dialect``; the figures."""
    args = ["--seed", seed, "--max-waiters", len(plan) + 10, "--max-jobs", len(plan) + 1000]
    counter = _Counter()
    with MeasuredServer(f"dialect-{dialect}", args, workdir=workdir,
                        env={"DIALECT": dialect}) as server, \
            VideoTranslationClient(server.url, start_url=START_URLS[dialect],
                                   rng=random.Random(seed)) as api:
        api.session.hooks["response"].append(counter)
        for prefix in ("http://", "https://"):
            adapter = api.session.get_adapter(prefix + "127.0.0.1")
            if isinstance(adapter, HTTPAdapter):
                adapter.init_poolmanager(POOL_EXTRA, len(plan) + POOL_EXTRA)
        barrier = threading.Barrier(len(plan) + 1)
        logger.info("%s: %d jobs", dialect, len(plan))
        with concurrent.futures.ThreadPoolExecutor(len(plan), f"bench-{dialect}") as pool:
            futures = [pool.submit(_wait_one, api, job, barrier, timeout) for job in plan]
            started, outcomes = start_together(dialect, barrier, futures, timeout, server)
            wall = time.monotonic() - started
        delays = _detection_delays(server.url, dialect, outcomes)
    wrong = [(job.outcome, result) for job, (_, result, _) in zip(plan, outcomes, strict=True)
             if result != job.outcome]
    if wrong:
        raise BenchError(f"{dialect}: {len(wrong)} jobs ended with the wrong result, "
                         f"e.g. {wrong[0]}")
    gets, total = counter.methods["GET"], sum(counter.methods.values())
    result = DialectResult(
        dialect=dialect, offers=OFFERS[dialect], jobs=len(plan),
        completed=sum(r == "completed" for _, r, _ in outcomes),
        errors=sum(r == "error" for _, r, _ in outcomes), status_requests=gets,
        all_requests=total, status_requests_per_job=gets / len(plan),
        requests_per_job=total / len(plan), delay_ms=Spread.of(delays, 1000), wall_s=wall)
    logger.info("%s: %.2f status requests/job, p99 delay %.0f ms, %.1f s", dialect,
                result.status_requests_per_job, result.delay_ms.p99, wall)
    return result


def _detection_delays(url: str, dialect: str,
                      outcomes: Sequence[tuple[str, str, float]]) -> list[float]:
    """Each wait's return minus its job's ``finished_at``, from the native status route."""
    prefix = _ID_PREFIXES.get(dialect, "")
    delays = []
    with requests.Session() as session:
        for job_id, _, returned in outcomes:
            native_id = job_id[len(prefix):] if prefix and job_id.startswith(prefix) else job_id
            answer = session.get(f"{url}/status/{native_id}", timeout=10)
            finished = answer.json().get("finished_at") if answer.ok else None
            if not isinstance(finished, int | float):
                raise BenchError(f"{dialect}: no finished_at for job {job_id} on the native "
                                 f"route (HTTP {answer.status_code})")
            delays.append(returned - finished)
    return delays


# ---------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The dialects mode's own options."""
    add_sized_options(parser, (("jobs", int, "jobs per dialect, all started at once"),
                               ("min-delay", float, "shortest job, seconds"),
                               ("max-delay", float, "longest job, seconds")),
                      DIALECT_DEFAULTS, DIALECT_QUICK)
    parser.add_argument("--dialects", default=",".join(START_URLS),
                        help="comma-separated, in order (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the job plan and the "
                        "client's jitter (default: %(default)s)")


def run(options: argparse.Namespace) -> int:
    """``python bench.py dialects ...``; returns the exit status."""
    fill_defaults(options, DIALECT_DEFAULTS, DIALECT_QUICK)
    dialects = chosen_names(options.dialects, list(START_URLS), "dialects")
    if options.jobs < 1 or not 0 < options.min_delay <= options.max_delay:
        raise OptionError("need --jobs >= 1 and 0 < --min-delay <= --max-delay")
    plan = plan_jobs(options.jobs, seed=options.seed, min_delay=options.min_delay,
                     max_delay=options.max_delay)
    timeout = options.max_delay * 4 + 60
    with bench_workdir(options.server_logs) as workdir:
        results = [run_dialect(d, plan, seed=options.seed, workdir=workdir, timeout=timeout)
                   for d in dialects]
    errors = sum(job.outcome == "error" for job in plan)
    native = next((r for r in results if r.dialect == "native"), None)
    calibration = None if native is None else (
        f"native, in the same run: {native.status_requests_per_job:.2f} status requests per job, "
        f"p99 detection delay {native.delay_ms.p99:.0f} ms")
    finish(options, title=f"Dialects: {len(plan)} jobs of {options.min_delay:g}-"
                          f"{options.max_delay:g} s ({errors} fated to fail) per dialect, all "
                          "started at once, no status template",
           notes="The default `VideoTranslationClient`, given only each dialect's start URL. "
                 "Status requests: every GET the client sent, retries included; all requests: "
                 "the starts too. Detection delay: the wait's return minus the job's "
                 "`finished_at` (the native status route, read afterwards). The gaps come only "
                 f"from what each dialect offers the wait. Seed {options.seed}.",
           body=dialect_markdown(results), targets=dialect_targets(results),
           results={"dialects": [dataclasses.asdict(r) for r in results]},
           calibration=calibration)
    return 0

