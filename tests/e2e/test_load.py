"""Load: 500 jobs from 50 concurrent clients against ``python server.py`` as shipped.

Every job is accounted for exactly once (one start, one final status seen by its client, one end
and one eviction in the server's log), nothing answers 5xx, and once the jobs are evicted the
serving process's threads, connections and memory are back where they started (psutil on
gunicorn's worker).
"""

from __future__ import annotations

import collections
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.helpers import serving_process
from vtwait import JobResult, VideoTranslationClient
from vtwait.testing import ServerProcess

CLIENTS, JOBS_PER_CLIENT = 50, 10
JOB_TTL = 1.0
#: Allowed growth of the server's resident memory after eviction, against the warmed-up baseline.
RSS_TOLERANCE = 20 * 1024 * 1024
#: Allowed extra threads and open connections after eviction (one still closing, say).
THREAD_TOLERANCE = 2
CONNECTION_TOLERANCE = 5

_REQUEST = re.compile(r" vtwait\.server[\w.]*: (GET|POST) (\S+) (\d{3}|dropped) [\d.]+ms$")
_JOB_EVENT = re.compile(r" vtwait\.server[\w.]*: job ([0-9a-f]{32}) (started|completed|error|evicted)\b")


def read_log(path: Path) -> tuple[list[tuple[str, ...]], dict[str, collections.Counter]]:
    """The server's log: (method, path, status) per request, and per job a count of each event."""
    requests_seen: list[tuple[str, ...]] = []
    events: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := _REQUEST.search(line):
            requests_seen.append(match.groups())
        elif match := _JOB_EVENT.search(line):
            events[match.group(1)][match.group(2)] += 1
    return requests_seen, events


def wait_until(condition, timeout: float, interval: float = 0.05) -> bool:
    """Polls ``condition()`` until true or ``timeout`` seconds pass; returns the last answer."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return condition()
        time.sleep(interval)
    return True


def run_jobs(url: str, jobs: list[tuple[float, str]]) -> list[tuple[str, JobResult]]:
    """One client starts and waits for ``jobs`` ((delay, outcome) pairs) one after the other."""
    seen = []
    with VideoTranslationClient(url) as api:
        for delay, outcome in jobs:
            job_id = api.start_job(delay=delay, outcome=outcome)
            seen.append((job_id, api.wait_for_completion(job_id, timeout=30).result))
    return seen


def test_500_jobs_from_50_clients_are_each_accounted_for_and_resources_return(tmp_path) -> None:
    """500 long-polled jobs, 50 clients at once: each job's status seen exactly once, no 5xx,
    and threads and memory back to the baseline once the jobs are evicted."""
    log_file = tmp_path / "server.log"
    srv = ServerProcess.start("--job-ttl", str(JOB_TTL), "--log-file", str(log_file),
                       "--seed", "3")
    try:
        process = serving_process(srv)

        def connections() -> int:
            return len(process.net_connections(kind="tcp"))

        run_jobs(srv.url, [(0.05, "completed")] * 5)  # warm up: lazy imports, first allocations
        assert wait_until(lambda: sum(e["evicted"] for e in read_log(log_file)[1].values()) == 5,
                          timeout=JOB_TTL + 5)
        time.sleep(0.2)
        base_threads, base_rss = process.num_threads(), process.memory_info().rss
        base_connections = connections()

        peak = {"threads": 0, "rss": 0, "connections": 0}
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.02):
                peak["threads"] = max(peak["threads"], process.num_threads())
                peak["rss"] = max(peak["rss"], process.memory_info().rss)
                peak["connections"] = max(peak["connections"], connections())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rng = random.Random(3)
        plans = [[(rng.uniform(0.05, 0.3), rng.choice(["completed", "error"]))
                  for _ in range(JOBS_PER_CLIENT)] for _ in range(CLIENTS)]
        began = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            outcomes = list(pool.map(run_jobs, [srv.url] * CLIENTS, plans))
        elapsed = time.monotonic() - began
        stop.set()
        sampler.join()

        seen = [pair for per_client in outcomes for pair in per_client]
        forced = [outcome for plan in plans for _, outcome in plan]
        job_ids = [job_id for job_id, _ in seen]
        assert len(seen) == CLIENTS * JOBS_PER_CLIENT and len(set(job_ids)) == len(seen)
        assert [result.value for _, result in seen] == forced

        evicted = lambda: sum(e["evicted"] for e in read_log(log_file)[1].values())  # noqa: E731
        assert wait_until(lambda: evicted() == len(seen) + 5, timeout=JOB_TTL + 10), evicted()
        wait_until(lambda: process.num_threads() <= base_threads + THREAD_TOLERANCE, timeout=5)
        # The clients closed their sessions; the server closes its side at once.
        wait_until(lambda: connections() <= base_connections + CONNECTION_TOLERANCE, timeout=10)
        threads_after, rss_after = process.num_threads(), process.memory_info().rss
        connections_after = connections()
    finally:
        srv.stop()

    requests_seen, events = read_log(log_file)
    assert not [r for r in requests_seen if r[2] == "dropped" or int(r[2]) >= 500]
    starts = [r for r in requests_seen if r[0] == "POST"]
    assert len(starts) == len(seen) + 5 and {r[2] for r in starts} == {"201"}
    for job_id, result in seen:
        assert events[job_id] == {"started": 1, result.value: 1, "evicted": 1}, events[job_id]
    status_requests = [r for r in requests_seen if r[0] == "GET" and r[1].startswith("/status/")]
    assert len(status_requests) <= 2 * len(seen)  # long-poll: about one per job
    # The load was real (50 connections held at once; under gevent, not a thread each), and it
    # is gone: no thread, connection or memory left behind.
    assert peak["connections"] > base_connections + CLIENTS // 2, peak
    assert peak["threads"] <= base_threads + THREAD_TOLERANCE, peak
    assert threads_after <= base_threads + THREAD_TOLERANCE, (base_threads, threads_after)
    assert connections_after <= base_connections + CONNECTION_TOLERANCE, connections_after
    assert rss_after <= base_rss + RSS_TOLERANCE, (base_rss, peak["rss"], rss_after)
    assert elapsed < 30
