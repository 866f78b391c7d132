"""The ratelimit mode: many concurrent jobs against a rate-limited server (``python bench.py ratelimit``).

    python bench.py ratelimit --json bench-results/ratelimit.json
    python bench.py ratelimit --quick        # a few seconds: 12 jobs, RATE_LIMIT=10

One seeded plan of jobs (200 by default, durations uniform in 10-20 s, 30 % fated to fail), all
started at once from one thread per job, against a fresh ``server.py --rate-limit 20`` (a token
bucket of 20 requests/s, burst 20, one bucket for the whole benchmark: it has no credentials, so
every request is charged to 127.0.0.1) on 127.0.0.1, once per way of waiting:

* ``paced``: one ``VideoTranslationClient`` shared by every thread, as it comes (long-poll, hints,
  pacing by the server's ``RateLimit`` fields: one budget for all the threads);
* ``unpaced``: the same with ``respect_rate_limits=False`` (urllib3 still retries each 429 after its
  ``Retry-After``, and a start still refused after that is tried again a second later), to show
  what the pacing is worth;
* ``1s-loop``: the trivial loop, hand-written over one ``requests.Session``: ``POST /start`` until
  it is accepted, then ``GET /status/<id>`` once a second until the job is final; a 429 is one
  more try a second later.

Figures per way: requests the server answered (every one, starts and retries included, read from
its log) and how many of them were 429; requests per job; detection delay (the moment the job's
thread knows the final status minus the job's ``finished_at``; one machine, one clock) at p50, p99
and max; wall time from the common start to the last job known. Markdown on stdout, logs on
stderr, JSON on request. A missed target is reported, never raised.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import functools
import logging
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

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
from vtwait import ServerError, VideoTranslationClient

logger = logging.getLogger(__name__)

HELP = "many concurrent jobs against a rate-limited server: paced, unpaced, the 1 s loop"

#: Full run and ``--quick``.
RATELIMIT_DEFAULTS = {"jobs": 200, "rate": 20, "min_delay": 10.0, "max_delay": 20.0}
RATELIMIT_QUICK = {"jobs": 12, "rate": 10, "min_delay": 0.5, "max_delay": 1.0}
WAYS = ("paced", "unpaced", "1s-loop")
#: The trivial loop's interval.
LOOP_INTERVAL = 1.0
#: Connections kept per client: one per thread, so that no answer waits for a free connection.
POOL_EXTRA = 10
# The server's access line: "POST /start 201 0.3ms", "GET /status/<id>?wait=30 429 0.2ms".
_ACCESS_LINE = re.compile(r"\b(GET|POST) /(start|status)\S* (\d{3}) [0-9.]+ms")


@dataclass(frozen=True)
class WayResult:
    """The figures of one way of waiting."""

    way: str
    summary: str
    jobs: int
    completed: int
    errors: int
    requests: int  #: every request the server answered, starts and retries included
    refused: int  #: of those, answered 429
    requests_per_job: float
    delay_ms: Spread
    wall_s: float


def count_answers(log_text: str) -> Counter[str]:
    """From a server log: how many start and status requests were answered with each status."""
    return Counter(match.group(3) for match in _ACCESS_LINE.finditer(log_text))


def ratelimit_targets(results: Sequence[WayResult]) -> list[Target]:
    """The issue's targets, read off the results present."""
    by_way = {r.way: r for r in results}
    targets = []
    if (paced := by_way.get("paced")) is not None:
        targets.append(Target("paced: requests answered 429", "0", str(paced.refused),
                              paced.refused == 0))
        if (loop := by_way.get("1s-loop")) is not None:
            targets.append(Target(
                "paced: fewer requests per job than the 1 s loop",
                f"< {loop.requests_per_job:.2f}", f"{paced.requests_per_job:.2f}",
                paced.requests_per_job < loop.requests_per_job))
            targets.append(Target(
                "paced: p99 detection delay below the 1 s loop's",
                f"< {loop.delay_ms.p99:.0f} ms", f"{paced.delay_ms.p99:.0f} ms",
                paced.delay_ms.p99 < loop.delay_ms.p99))
    return targets


def ratelimit_markdown(results: Sequence[WayResult]) -> str:
    """The report's table."""
    rows = [(r.way, r.summary, r.requests, r.refused, f"{r.requests_per_job:.2f}",
             f"{r.delay_ms.p50:.0f}", f"{r.delay_ms.p99:.0f}", f"{r.delay_ms.max:.0f}",
             f"{r.wall_s:.1f}") for r in results]
    return markdown_table(("way", "client", "requests", "answered 429", "requests/job",
                           "delay p50 (ms)", "p99", "max", "wall s"), rows, "ll")


# ---------------------------------------------------------------------------- the three ways
def _big_pool(session: requests.Session, size: int) -> None:
    """One pooled connection per thread (urllib3 would otherwise discard and reconnect)."""
    for prefix in ("http://", "https://"):
        adapter = session.get_adapter(prefix + "127.0.0.1")
        if isinstance(adapter, HTTPAdapter):
            adapter.init_poolmanager(POOL_EXTRA, size)


def _with_client(api: VideoTranslationClient, job: PlannedJob, barrier: threading.Barrier,
                 timeout: float) -> tuple[str, float]:
    barrier.wait(timeout=120)
    deadline = time.monotonic() + timeout
    while True:  # a start refused past urllib3's retries is tried again a second later
        try:
            job_id = api.start_job(delay=job.delay, outcome=job.outcome)
            break
        except ServerError as exc:
            if exc.status_code != 429 or time.monotonic() > deadline:
                raise
            time.sleep(LOOP_INTERVAL)
    status = api.wait_for_completion(job_id, timeout=timeout)
    if status.finished_at is None:
        raise BenchError(f"final answer without finished_at: {dict(status.raw)}")
    return status.result.value, time.time() - status.finished_at


def _trivial_loop(session: requests.Session, url: str, job: PlannedJob,
                  barrier: threading.Barrier, timeout: float) -> tuple[str, float]:
    """What a first client does: start until accepted, then ask once a second."""
    barrier.wait(timeout=120)
    deadline = time.monotonic() + timeout
    key = uuid.uuid4().hex
    job_id = None
    while job_id is None:
        reply = session.post(url + "/start", json={"delay": job.delay, "outcome": job.outcome},
                             headers={"Idempotency-Key": key}, timeout=10)
        if reply.status_code in (200, 201, 202):
            job_id = reply.json()["job_id"]
        elif time.monotonic() > deadline:
            raise BenchError(f"1s-loop: start still refused ({reply.status_code})")
        else:
            time.sleep(LOOP_INTERVAL)
    while time.monotonic() < deadline:
        time.sleep(LOOP_INTERVAL)
        reply = session.get(f"{url}/status/{job_id}", timeout=10)
        if reply.status_code == 200:
            document = reply.json()
            if document["result"] in ("completed", "error"):
                return document["result"], time.time() - document["finished_at"]
    raise BenchError(f"1s-loop: job {job_id} not final within {timeout:g} s")


def run_way(way: str, plan: Sequence[PlannedJob], *, rate: int, seed: int, workdir: Path,
            timeout: float) -> WayResult:
    """Wait for every planned job one way, on a fresh rate-limited server; return the figures."""
    args = [str(arg) for arg in ("--rate-limit", rate, "--seed", seed, "--max-waiters",
                                 len(plan) + 10, "--max-jobs", len(plan) + 1000)]
    summaries = {"paced": "VideoTranslationClient(), one for all threads",
                 "unpaced": "the same, respect_rate_limits=False (a start refused after "
                            "urllib3's 5 retries: again 1 s later)",
                 "1s-loop": "POST until accepted, then GET every 1 s"}
    with MeasuredServer(f"ratelimit-{way}", args, workdir=workdir) as server, ExitStack() as stack:
        if way == "1s-loop":
            session = stack.enter_context(requests.Session())
            session.mount("http://", HTTPAdapter(pool_maxsize=len(plan) + POOL_EXTRA))
            work = functools.partial(_trivial_loop, session, server.url, timeout=timeout)
        else:
            api = stack.enter_context(VideoTranslationClient(
                server.url, rng=random.Random(seed), respect_rate_limits=(way == "paced")))
            _big_pool(api.session, len(plan) + POOL_EXTRA)
            work = functools.partial(_with_client, api, timeout=timeout)
        # The warm-up bucket refills before the clock starts: /healthz costs no token.
        requests.get(server.url + "/healthz", timeout=10).raise_for_status()
        barrier = threading.Barrier(len(plan) + 1)
        logger.info("%s: %d jobs against RATE_LIMIT=%d", way, len(plan), rate)
        with concurrent.futures.ThreadPoolExecutor(len(plan), f"bench-{way}") as pool:
            futures = [pool.submit(work, job, barrier) for job in plan]
            started, outcomes = start_together(way, barrier, futures, timeout, server)
            wall = time.monotonic() - started
        time.sleep(0.2)  # the last access lines reach the log
        answers = count_answers(server.log_path.read_text(errors="replace"))
    wrong = [(job.outcome, result) for job, (result, _) in zip(plan, outcomes, strict=True)
             if result != job.outcome]
    if wrong:
        raise BenchError(f"{way}: {len(wrong)} jobs ended with the wrong result, e.g. {wrong[0]}")
    total = sum(answers.values())
    result = WayResult(
        way=way, summary=summaries[way], jobs=len(plan),
        completed=sum(r == "completed" for r, _ in outcomes),
        errors=sum(r == "error" for r, _ in outcomes), requests=total,
        refused=answers["429"], requests_per_job=total / len(plan),
        delay_ms=Spread.of([delay for _, delay in outcomes], 1000), wall_s=wall)
    logger.info("%s: %d requests, %d answered 429, p99 delay %.0f ms, %.1f s", way, total,
                result.refused, result.delay_ms.p99, wall)
    return result


# ---------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ratelimit mode's own options."""
    add_sized_options(parser, (("jobs", int, "jobs, all started at once"),
                               ("rate", int, "the server's RATE_LIMIT, requests/s (burst as many)"),
                               ("min-delay", float, "shortest job, seconds"),
                               ("max-delay", float, "longest job, seconds")),
                      RATELIMIT_DEFAULTS, RATELIMIT_QUICK)
    parser.add_argument("--ways", default=",".join(WAYS),
                        help="comma-separated, in order (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the job plan and the "
                        "client's jitter (default: %(default)s)")


def run(options: argparse.Namespace) -> int:
    """``python bench.py ratelimit ...``; returns the exit status."""
    fill_defaults(options, RATELIMIT_DEFAULTS, RATELIMIT_QUICK)
    ways = chosen_names(options.ways, list(WAYS), "ways")
    if options.jobs < 1 or options.rate < 1 or not 0 < options.min_delay <= options.max_delay:
        raise OptionError("need --jobs >= 1, --rate >= 1 and 0 < --min-delay <= --max-delay")
    for name in ("vtwait.client", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)  # 429 retries are counted, not logged
    plan = plan_jobs(options.jobs, seed=options.seed, min_delay=options.min_delay,
                     max_delay=options.max_delay)
    # The paced client needs (2 requests x jobs) / rate seconds; the loop longer: generous.
    timeout = options.max_delay * 4 + 4 * options.jobs / options.rate + 60
    with bench_workdir(options.server_logs) as workdir:
        results = [run_way(way, plan, rate=options.rate, seed=options.seed, workdir=workdir,
                           timeout=timeout) for way in ways]
    errors = sum(job.outcome == "error" for job in plan)
    finish(options, title=f"Rate limits: {len(plan)} jobs of {options.min_delay:g}-"
                          f"{options.max_delay:g} s ({errors} fated to fail), all started at "
                          f"once, RATE_LIMIT={options.rate}",
           notes="Requests: every request the server answered (its log), starts and retries "
                 "included. Detection delay: the moment the job's thread knows the final status "
                 f"minus the job's `finished_at`. Seed {options.seed}.",
           body=ratelimit_markdown(results), targets=ratelimit_targets(results),
           results={"ways": [dataclasses.asdict(r) for r in results]})
    return 0
