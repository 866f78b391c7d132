"""The redis mode: the Redis job store's throughput, 10,000 held long-polls, cross-worker wake.

    python bench.py redis --json bench-results/redis.json
    python bench.py redis --quick                                 # a few seconds

Three set-ups, one after another, each a fresh ``python server.py`` (gunicorn + gevent) on
127.0.0.1, and one private ``redis-server`` (loopback, a free port, no persistence):

* ``1 worker, memory``: the default store;
* ``1 worker, Redis``: ``JOB_STORE=redis://...``;
* ``2 workers, Redis``: the same with ``--workers 2``.

For each: **status throughput**, ``wrk`` (C, one thread, keep-alive connections) asking
``GET /status/<id>`` of pending jobs for a few seconds, with the CPU of the server's processes and
of ``redis-server`` over the same seconds; **held long-polls**, 10,000 jobs that end at one
moment, each with a ``?wait=30`` long-poll held on it (asyncio clients in two processes, one
connection each), then how long after its job's ``finished_at`` each answer arrived, and the
server's resident memory while they were held. Then **cross-worker wake**: two server processes
on different ports and one Redis; jobs started on one, long-polled on the other, ending one by
one; the delay of the answers on jobs that the *other* process finished (its log says which).

Output is Markdown on stdout (tables, then each target with PASS or MISS), logs on stderr. A missed
target is reported, not raised. Percentiles are nearest-rank; durations in seconds unless a name
ends in ``_ms``. Every request goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import http.client
import json
import logging
import multiprocessing
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil
import redis

from benchmarks.common import (
    HOST,
    BenchError,
    OptionError,
    Spread,
    Target,
    bench_workdir,
    cpu_seconds,
    fill_defaults,
    finish,
    parse_wrk,
    process_tree,
    rss_mb,
)
from vtwait.testing import RedisServer, ServerProcess

__all__ = ["add_arguments", "run"]

logger = logging.getLogger(__name__)

HELP = "the Redis store: throughput and held long-polls on 1 and 2 workers, cross-worker wake"
#: Sizes of a full run and of ``--quick``.
DEFAULTS = {"waiters": 10_000, "seconds": 5.0, "connections": 64, "cross": 300}
QUICK = {"waiters": 200, "seconds": 1.0, "connections": 16, "cross": 40}
#: Pending jobs whose status the throughput run asks (round robin).
THROUGHPUT_JOBS = 100
#: Processes holding the long-polls (asyncio, one connection per long-poll).
WAITER_PROCESSES = 2
#: Connections a waiter process opens at once (the rest queue for a slot).
CONNECT_BURST = 256
#: Long-poll asked by each waiter; the server holds at most its MAX_WAIT (30 s).
WAIT = 30.0
#: Time from the first start of a waiter round to the moment its jobs end: base + per waiter.
WAITER_LEAD = (1.5, 0.002)
#: Threads that POST /start jobs, each with its own connection.
STARTERS = 8
#: Targets of the issue.
TARGET_SCALE_REDIS = 1.5  # 2 workers Redis / 1 worker Redis, throughput
TARGET_SHARE_OF_MEMORY = 0.6  # 2 workers Redis / 1 worker memory, throughput
TARGET_CROSS_WAKE_P99_MS = 10.0

SETUPS = (("1 worker, memory", False, 1), ("1 worker, Redis", True, 1),
          ("2 workers, Redis", True, 2))


@dataclasses.dataclass(frozen=True)
class SetupResult:
    """What one set-up measured."""

    name: str
    workers: int
    redis: bool
    requests_per_s: float
    non_2xx: int
    latency_p50_ms: float  #: wrk's latency percentiles
    latency_p99_ms: float
    latency_max_ms: float
    server_cores: float  #: CPU of the server's processes during the throughput run, in cores
    redis_cores: float  #: CPU of redis-server during the throughput run, in cores
    waiters: int
    answered: int  #: final answers among the waiters
    held: int  #: answers that were held until their job ended
    wake_ms: Spread  #: answer received minus the job's finished_at (p95 too)
    held_rss_mb: float  #: resident memory of the server's processes with every waiter held
    waiter_server_cpu_s: float  #: server CPU seconds over the whole waiter round
    waiter_redis_cpu_s: float


@dataclasses.dataclass(frozen=True)
class CrossResult:
    """Long-polls on one server process, jobs finished by another."""

    jobs: int
    cross: int  #: answers on jobs the other process finished
    cross_ms: Spread
    same_ms: Spread  #: answers on jobs the holding process finished itself


# --- processes --------------------------------------------------------------------------------


def _start_server(workdir: Path, name: str, store: str, workers: int) -> ServerProcess:
    server = ServerProcess.start(
        "--workers", str(workers), "--max-waiters", "12000", "--max-jobs", "100000",
        "--error-probability", "0", "--eta-noise", "0",
        env={"JOB_STORE": store}, log_path=workdir / f"{name}.log")  # fmt: skip
    if workers > 1:  # gunicorn forks its workers after it listens
        deadline = time.monotonic() + 20
        while len(psutil.Process(server.pid).children()) < workers:
            if time.monotonic() > deadline:
                server.stop()
                raise BenchError(f"{name}: {workers} workers did not start")
            time.sleep(0.05)
    return server


def _post_jobs(port: int, count: int, delay_for: Callable[[], float],
               threads: int = STARTERS) -> list[str]:
    """Starts ``count`` jobs, each lasting ``delay_for()`` at its start; returns their ids."""
    ids = [""] * count

    def run(indexes: range) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        try:
            for index in indexes:
                body = json.dumps({"delay": round(max(delay_for(), 0.0), 4)})
                conn.request("POST", "/start", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
                if response.status != 201:
                    raise BenchError(f"POST /start answered {response.status}: {data[:200]!r}")
                ids[index] = json.loads(data)["job_id"]
        finally:
            conn.close()

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(run, range(k, count, threads)) for k in range(threads)]:
            future.result(timeout=600)
    return ids


# --- throughput -------------------------------------------------------------------------------

_WRK_SCRIPT = """
local ids = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/status/" .. ids[i %% #ids + 1])
end
"""


def _throughput(server: ServerProcess, redis_pid: int | None, *, seconds: float,
                connections: int, workdir: Path) -> tuple[dict[str, float], float, float]:
    ids = _post_jobs(server.port, THROUGHPUT_JOBS, lambda: 3600.0)
    script = workdir / "status.lua"
    script.write_text(_WRK_SCRIPT % ", ".join(f'"{i}"' for i in ids))
    url = f"http://{HOST}:{server.port}"
    subprocess.run(["wrk", "-t1", "-c8", "-d1s", "-s", str(script), url], check=True,
                   capture_output=True, timeout=60)  # warm-up: imports, connections, scripts
    pids = process_tree(server.pid)
    cpu, redis_cpu = cpu_seconds(pids), cpu_seconds([redis_pid] if redis_pid else [])
    began = time.monotonic()
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script), url],
        check=True, capture_output=True, text=True, timeout=seconds + 60)
    took = time.monotonic() - began
    cpu = (cpu_seconds(pids) - cpu) / took
    redis_cpu = (cpu_seconds([redis_pid] if redis_pid else []) - redis_cpu) / took
    return parse_wrk(done.stdout), cpu, redis_cpu


# --- held long-polls --------------------------------------------------------------------------


def _waiter_process(port: int, paths: list[str], wait: float) -> list[tuple]:
    """Holds one long-poll per path (asyncio, a connection each); returns one sample each:
    (status, sent, answered, result, finished_at, held)."""
    return asyncio.run(_hold_all(port, paths, wait))


async def _hold_all(port: int, paths: list[str], wait: float) -> list[tuple]:
    slots = asyncio.Semaphore(CONNECT_BURST)

    async def hold(path: str) -> tuple:
        sent = time.time()
        try:
            async with slots:
                reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(f"GET {path}?wait={wait:g} HTTP/1.1\r\nHost: {HOST}\r\n"
                         "Connection: close\r\n\r\n".encode())
            await writer.drain()
            data = await asyncio.wait_for(reader.read(-1), wait + 60)
            answered = time.time()
            writer.close()
            head, _, body = data.partition(b"\r\n\r\n")
            status = int(head.split()[1])
            doc = json.loads(body)
            held = b"preference-applied:" in head.lower()
            return status, sent, answered, doc.get("result"), doc.get("finished_at"), held
        except (OSError, ValueError, IndexError, TimeoutError) as exc:
            return 0, sent, 0.0, repr(exc), None, False

    return await asyncio.gather(*(hold(path) for path in paths))


def _waiter_round(server: ServerProcess, redis_pid: int | None, pool: Any, waiters: int,
                  ) -> tuple[int, int, Spread, float, float, float]:
    """``waiters`` jobs ending at one moment, a long-poll held on each."""
    lead = WAITER_LEAD[0] + WAITER_LEAD[1] * waiters
    end = time.time() + lead
    logger.info("%d jobs ending in %.1f s, a long-poll on each", waiters, lead)
    ids = _post_jobs(server.port, waiters, lambda: end - time.time())
    if time.time() > end - 1.0:  # the "held to the end" column shows what this cost
        logger.warning("starting the jobs took %.1f s of the %.1f s lead: some waiters may "
                       "arrive after their job ended (is the machine busy?)",
                       lead - (end - time.time()), lead)
    pids = process_tree(server.pid)
    cpu, redis_cpu = cpu_seconds(pids), cpu_seconds([redis_pid] if redis_pid else [])
    paths = [f"/status/{job_id}" for job_id in ids]
    tasks = [pool.submit(_waiter_process, server.port, paths[k::WAITER_PROCESSES], WAIT)
             for k in range(WAITER_PROCESSES)]
    time.sleep(max(end - time.time() - 0.3, 0))
    rss = rss_mb(pids)  # every waiter held by now, their jobs not yet ended
    samples = [s for task in tasks for s in task.result(timeout=lead + WAIT + 120)]
    cpu = cpu_seconds(pids) - cpu
    redis_cpu = cpu_seconds([redis_pid] if redis_pid else []) - redis_cpu
    good = [s for s in samples if s[0] == 200 and s[3] == "completed" and s[4] is not None]
    if len(good) < len(samples):
        bad = [s for s in samples if s not in good]
        logger.warning("%d waiters without a final answer, e.g. %s", len(bad), bad[0])
    held = sum(1 for s in good if s[5] and s[1] < s[4])
    return len(good), held, Spread.of([s[2] - s[4] for s in good], 1000), rss, cpu, redis_cpu


# --- cross-worker wake ------------------------------------------------------------------------


def _cross_wake(store: str, jobs: int, pool: Any, workdir: Path) -> CrossResult:
    """Jobs started on server A, held on server B, ending one by one (every 10 ms)."""
    first = _start_server(workdir, "cross-a", store, 1)
    second = _start_server(workdir, "cross-b", store, 1)
    try:
        lead = 2.0 + 0.004 * jobs
        end = time.time() + lead
        ends = [end + 0.01 * k for k in range(jobs)]
        order = iter(range(jobs))
        ids = _post_jobs(first.port, jobs, lambda: ends[next(order)] - time.time(), threads=1)
        task = pool.submit(_waiter_process, second.port, [f"/status/{i}" for i in ids], WAIT)
        samples = task.result(timeout=lead + jobs * 0.01 + WAIT + 60)
    finally:
        first.stop()
        second.stop()
    finished_by_a = set(re.findall(r"job ([0-9a-f]{32}) completed",
                                   (workdir / "cross-a.log").read_text()))
    cross: list[float] = []
    same: list[float] = []
    for job_id, sample in zip(ids, samples, strict=True):
        if sample[0] == 200 and sample[4] is not None:
            (cross if job_id in finished_by_a else same).append(sample[2] - sample[4])
    return CrossResult(jobs, len(cross), Spread.of(cross, 1000), Spread.of(same, 1000))


# --- report -----------------------------------------------------------------------------------


def redis_targets(results: Sequence[SetupResult], cross: CrossResult) -> list[Target]:
    """The issue's targets, read off the three set-ups and the cross-worker run."""
    memory, one, two = results
    scale = two.requests_per_s / one.requests_per_s
    share = two.requests_per_s / memory.requests_per_s
    return [
        Target("2 workers on Redis against 1 worker on Redis, throughput",
               f">= {TARGET_SCALE_REDIS:g}x", f"{scale:.2f}x", scale >= TARGET_SCALE_REDIS),
        Target("2 workers on Redis against 1 worker in memory, throughput",
               f">= {TARGET_SHARE_OF_MEMORY:g}x", f"{share:.2f}x",
               share >= TARGET_SHARE_OF_MEMORY),
        Target("cross-worker wake p99", f"<= {TARGET_CROSS_WAKE_P99_MS:g} ms",
               f"{cross.cross_ms.p99:.1f} ms over {cross.cross} answers",
               cross.cross_ms.p99 <= TARGET_CROSS_WAKE_P99_MS),
        Target("every held long-poll answered with its final status", "all",
               ", ".join(f"{r.answered:,}/{r.waiters:,}" for r in results),
               all(r.answered == r.waiters for r in results)),
    ]


def redis_markdown(results: Sequence[SetupResult], cross: CrossResult, seconds: float,
                   connections: int) -> str:
    """The report's body: throughput, held long-polls, cross-worker wake."""
    cpus = os.cpu_count()
    load = ", ".join(f"{x:.1f}" for x in psutil.getloadavg())
    lines = [
        f"Load average when the report was written (1, 5, 15 min): {load}.", "",
        (f"Status throughput: `wrk`, 1 thread, {connections} keep-alive connections, "
         f"{seconds:g} s, `GET /status/<id>` over {THROUGHPUT_JOBS} pending jobs. CPU in cores "
         f"over the same seconds (the machine has {cpus}; `wrk` and the load processes share "
         "them)."), "",
        "| set-up | status req/s | p50 ms | p99 ms | server CPU | redis CPU | non-2xx |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        redis_cpu = f"{r.redis_cores:.2f}" if r.redis else "-"
        lines.append(f"| {r.name} | {r.requests_per_s:,.0f} | {r.latency_p50_ms:.2f} | "
                     f"{r.latency_p99_ms:.2f} | {r.server_cores:.2f} | {redis_cpu} | "
                     f"{r.non_2xx} |")
    lines += [
        "", (f"Held long-polls: {results[0].waiters:,} jobs ending at one moment, a `wait=30` "
             "long-poll held on each (asyncio, one connection each). Wake: answer received minus "
             "the job's `finished_at`. Memory: resident, all server processes, every waiter "
             "held. CPU: seconds over the whole round (starts included)."), "",
        ("| set-up | answered | held to the end | wake p50 ms | p99 ms | max ms | server MB | "
         "server CPU s | redis CPU s |"), "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        redis_cpu = f"{r.waiter_redis_cpu_s:.2f}" if r.redis else "-"
        lines.append(f"| {r.name} | {r.answered:,}/{r.waiters:,} | {r.held:,} | "
                     f"{r.wake_ms.p50:.1f} | {r.wake_ms.p99:.1f} | {r.wake_ms.max:.1f} | "
                     f"{r.held_rss_mb:.0f} | {r.waiter_server_cpu_s:.2f} | {redis_cpu} |")
    lines += [
        "", (f"Cross-worker wake: two server processes (1 worker each, different ports) on one "
             f"Redis; {cross.jobs} jobs started on A ending 10 ms apart, each long-polled on B. "
             "Both run the timer; A's log names the jobs A finished."), "",
        "| answers on jobs finished by | count | p50 ms | p99 ms | max ms |",
        "| --- | --- | --- | --- | --- |",
        (f"| the other process (cross-worker) | {cross.cross} | {cross.cross_ms.p50:.1f} | "
         f"{cross.cross_ms.p99:.1f} | {cross.cross_ms.max:.1f} |"),
        (f"| the holding process | {cross.jobs - cross.cross} | {cross.same_ms.p50:.1f} | "
         f"{cross.same_ms.p99:.1f} | {cross.same_ms.max:.1f} |"),
    ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The redis mode's own options."""
    for name, text in (("waiters", "held long-polls per set-up"),
                       ("seconds", "length of each throughput run, seconds"),
                       ("connections", "wrk connections"),
                       ("cross", "jobs of the cross-worker run")):
        parser.add_argument(f"--{name}", type=float if name == "seconds" else int,
                            help=f"{text} (default: {DEFAULTS[name]:g}; --quick: {QUICK[name]:g})")


def run(options: argparse.Namespace) -> int:
    """``python bench.py redis ...``; returns the exit status."""
    fill_defaults(options, DEFAULTS, QUICK)
    if min(options.waiters, options.connections, options.cross) < 1 or options.seconds <= 0:
        raise OptionError("sizes must be at least 1, --seconds above 0")
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            raise OptionError(f"{tool} is not installed")
    with bench_workdir(options.server_logs) as workdir, \
            concurrent.futures.ProcessPoolExecutor(
                WAITER_PROCESSES, mp_context=multiprocessing.get_context("spawn")) as pool:
        store = RedisServer.start(workdir / "redis")
        try:
            results = [_run_setup(name, on_redis, workers, store, pool, workdir, options)
                       for name, on_redis, workers in SETUPS]
            with redis.Redis(port=store.port) as client:
                client.flushdb()
            cross = _cross_wake(store.url(), options.cross, pool, workdir)
        finally:
            store.stop()
    memory = results[0]
    finish(options, title=f"Redis store: {results[0].waiters:,} held long-polls per set-up",
           notes="", body=redis_markdown(results, cross, options.seconds, options.connections),
           targets=redis_targets(results, cross),
           results={"setups": [dataclasses.asdict(r) for r in results],
                    "cross": dataclasses.asdict(cross)},
           calibration=f"the memory store on 1 worker served {memory.requests_per_s:,.0f} status "
                       "requests/s in the same run, the reference of the Redis set-ups.")
    return 0


def _run_setup(name: str, on_redis: bool, workers: int, store: RedisServer, pool: Any,
               workdir: Path, options: argparse.Namespace) -> SetupResult:
    """One set-up: a fresh server, its throughput, then a round of held long-polls."""
    if on_redis:
        with redis.Redis(port=store.port) as client:
            client.flushdb()
    logger.info("%s", name)
    server = _start_server(workdir, re.sub(r"\W+", "-", name),
                           store.url() if on_redis else "memory", workers)
    redis_pid = store.process.pid if on_redis and store.process else None
    try:
        wrk, cores, redis_cores = _throughput(server, redis_pid, seconds=options.seconds,
                                              connections=options.connections, workdir=workdir)
        answered, held, wake, rss, cpu, redis_cpu = _waiter_round(server, redis_pid, pool,
                                                                  options.waiters)
    finally:
        server.stop()
    return SetupResult(name, workers, on_redis, wrk["requests_per_s"], int(wrk["non_2xx"]),
                       wrk["p50"], wrk["p99"], wrk["max"], cores, redis_cores, options.waiters,
                       answered, held, wake, rss, cpu, redis_cpu)
