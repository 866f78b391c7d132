"""The testspeed mode: how fast a test of slow things runs under virtual time (``python bench.py testspeed``).

    python bench.py testspeed --json docs/bench-results/testspeed.json
    python bench.py testspeed --quick        # a few seconds: 3 runs of each test

Two tests a user of the pytest plugin writes, each run ``--runs`` times against one simulator
subprocess with ``CLOCK=virtual`` (``vtwait.testing.VtServer``, what the ``vt_server`` fixture
hands out; reset before each run, as the fixture does):

* ``1-hour job``: start a job of 3,600 s with the client, ``clock.advance(3600)`` over the
  control API, then ``wait_for_completion`` answers ``completed``;
* ``webhook ladder``: a job whose ``callback_url`` is a receiver (in this process) that always
  answers 500; one advance past the whole retry ladder (``WEBHOOK_MAX_ATTEMPTS`` attempts,
  ``WEBHOOK_RETRY_DELAY`` doubling, capped like the server caps it); every attempt must arrive.

The figure is each test's wall time (p50, max), beside what it takes on real time (the job's
3,600 s; the ladder's sum of delays). The server's start, once per test session, is shown on its
own; the calibration is one plain status request's round trip on the same server.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.server
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests

from benchmarks.common import BenchError, OptionError, Spread, Target, finish, markdown_table
from vtwait.testing.server import VtServer

logger = logging.getLogger(__name__)

HELP = "test speed under virtual time: a 1-hour job and a webhook retry ladder, in wall seconds"

#: Full run and ``--quick``.
TESTSPEED_DEFAULTS = {"runs": 20}
TESTSPEED_QUICK = {"runs": 3}
#: The job of the first test, seconds.
JOB_SECONDS = 3600.0
#: The server's cap on one retry delay (vtwait/server/webhooks.py MAX_RETRY_DELAY).
MAX_RETRY_DELAY = 300.0
#: The goal of the issue: each test under this many wall seconds.
GOAL_S = 1.0


@dataclass(frozen=True)
class TestResult:
    """The wall times of one test's runs."""

    test: str
    what: str
    runs: int
    virtual_s: float  #: the virtual time the test covers (its wall length on a real clock)
    wall_s: Spread  #: the test's wall time, seconds
    speedup: float  #: virtual_s / p50 wall


def ladder_seconds(attempts: int, first_delay: float) -> float:
    """The sum of the waits between ``attempts`` webhook attempts (the server's schedule)."""
    return sum(min(first_delay * 2 ** (n - 1), MAX_RETRY_DELAY) for n in range(1, attempts))


class _Failing(http.server.BaseHTTPRequestHandler):
    """Answers every POST with a 500 and counts it."""

    received: list[float]

    def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append(time.monotonic())  # type: ignore[attr-defined]
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@contextmanager
def failing_receiver() -> Iterator[tuple[str, list[float]]]:
    """A webhook receiver on 127.0.0.1 that always answers 500; yields its URL and hits."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", server.received  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def one_hour_job(server: VtServer) -> None:
    """The test: a 1-hour job, advanced past, waited for."""
    server.reset()
    with server.client() as client:
        job_id = client.start_job(delay=JOB_SECONDS, outcome="completed")
        server.clock.advance(JOB_SECONDS)
        status = client.wait_for_completion(job_id, timeout=30)
    if status.result.value != "completed":
        raise BenchError(f"1-hour job ended {status.result.value}, not completed")


def webhook_ladder(server: VtServer, url: str, received: list[float], attempts: int,
                   ladder: float) -> None:
    """The test: every attempt of a webhook that always fails, in one advance."""
    server.reset()
    received.clear()
    with server.client() as client:
        client.start_job(delay=0, outcome="completed", callback_url=url)
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:  # the first attempt is at once
        time.sleep(0.001)
    server.clock.advance(ladder)
    if len(received) != attempts:
        raise BenchError(f"webhook ladder: {len(received)} attempts arrived, not {attempts}")


def measure(name: str, runs: int, test: Callable[[], None]) -> list[float]:
    """Wall seconds of ``runs`` runs of ``test`` (one warm-up run first, not counted)."""
    test()
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        test()
        walls.append(time.perf_counter() - started)
    logger.info("%s: p50 %.3f s over %d runs", name, sorted(walls)[len(walls) // 2], runs)
    return walls


def round_trip_ms(server: VtServer, count: int = 50) -> float:
    """Median wall time of one plain ``GET /status`` on the server, ms (the calibration)."""
    with requests.Session() as session:
        session.auth = (server.username or "", server.password or "")
        times = []
        for _ in range(count):
            started = time.perf_counter()
            session.get(server.base_url + "/status", timeout=10).raise_for_status()
            times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2] * 1000


# ---------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The testspeed mode's own options."""
    parser.add_argument("--runs", type=int, help=f"timed runs of each test (default: "
                        f"{TESTSPEED_DEFAULTS['runs']}; --quick: {TESTSPEED_QUICK['runs']})")
    parser.add_argument("--attempts", type=int, default=5,
                        help="WEBHOOK_MAX_ATTEMPTS of the ladder (default: %(default)s)")
    parser.add_argument("--retry-delay", type=float, default=60.0,
                        help="WEBHOOK_RETRY_DELAY, the first retry's wait in seconds "
                             "(default: %(default)s)")


def run(options: argparse.Namespace) -> int:
    """``python bench.py testspeed ...``; returns the exit status."""
    if options.runs is None:
        options.runs = (TESTSPEED_QUICK if options.quick else TESTSPEED_DEFAULTS)["runs"]
    if options.runs < 1 or options.attempts < 1 or options.retry_delay <= 0:
        raise OptionError("need --runs >= 1, --attempts >= 1 and --retry-delay > 0")
    ladder = ladder_seconds(options.attempts, options.retry_delay)
    started = time.perf_counter()
    server = VtServer.start(CLOCK="virtual", WEBHOOK_MAX_ATTEMPTS=options.attempts,
                            WEBHOOK_RETRY_DELAY=options.retry_delay, WEBHOOK_TIMEOUT=5)
    start_s = time.perf_counter() - started
    try:
        calibration_ms = round_trip_ms(server)
        hour = measure("1-hour job", options.runs, lambda: one_hour_job(server))
        with failing_receiver() as (url, received):
            hook = measure("webhook ladder", options.runs, lambda: webhook_ladder(
                server, url, received, options.attempts, ladder))
    finally:
        server.stop()
    results = [
        TestResult("1-hour job", "start a 3,600 s job, advance 3,600 s, wait_for_completion",
                   options.runs, JOB_SECONDS, Spread.of(hour), JOB_SECONDS / Spread.of(hour).p50),
        TestResult("webhook ladder", f"{options.attempts} attempts answered 500, first retry "
                   f"after {options.retry_delay:g} s doubling; one advance", options.runs, ladder,
                   Spread.of(hook), ladder / Spread.of(hook).p50),
    ]
    rows = [(r.test, r.what, r.runs, f"{r.virtual_s:,.0f}", f"{r.wall_s.p50:.3f}",
             f"{r.wall_s.max:.3f}", f"{r.speedup:,.0f}x") for r in results]
    body = markdown_table(("test", "what it does", "runs", "on real time (s)", "wall p50 (s)",
                           "wall max (s)", "faster"), rows, "ll")
    body += (f"\n\nThe simulator's start (once per test session, `vt_server` keeps it): "
             f"{start_s:.2f} s.")
    targets = [Target(f"{r.test}: wall time of the test", f"< {GOAL_S:g} s",
                      f"{r.wall_s.max:.3f} s (max)", r.wall_s.max < GOAL_S) for r in results]
    finish(options, title="Test speed: slow server behaviour under virtual time (CLOCK=virtual)",
           notes="Each test runs against one `VtServer` (the `vt_server` fixture's server, a "
                 "subprocess) reset before each run; one warm-up run first, not counted. The "
                 "real-time column is computed (the job's length, the ladder's sum of delays), "
                 "not run.",
           calibration=f"one plain `GET /status` round trip on the same server: "
                       f"{calibration_ms:.2f} ms (median of 50)",
           body=body, targets=targets,
           results={"tests": [dataclasses.asdict(r) for r in results],
                    "server_start_s": start_s, "calibration_ms": calibration_ms})
    return 0
