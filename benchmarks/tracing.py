"""The tracing mode: the server's CPU per status request with OpenTelemetry off, installed but not
configured, and exporting every span (``python bench.py tracing``).

    python bench.py tracing --json docs/bench-results/tracing.json
    python bench.py tracing --quick          # a few seconds: one round of 2 s per setting

For each setting a fresh ``python server.py`` (gunicorn + gevent, one worker, no auth) starts one
long job, then ``wrk`` asks for that job's status over ``--connections`` keep-alive connections
for ``--seconds``; the server's CPU seconds (master and worker, from psutil) over the run, divided
by the requests answered, is its CPU per status request. The settings:

* ``off``: ``OTEL_SDK_DISABLED=true``;
* ``unconfigured``: the ``otel`` extra installed, no ``OTEL_*`` variable (what most users run);
* ``exporting``: ``OTEL_TRACES_EXPORTER=memory``, a server span per request recorded and handed
  to the SDK's batch processor, whose exporter keeps the last 10,000 in memory.

The settings take turns for ``--rounds`` rounds (so a busy moment of the machine hits all of
them); each one's figure is the median of its rounds. The client's CPU per wait is not measured:
the client makes no spans yet. Markdown on stdout, logs on stderr, JSON on request.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

import requests

from benchmarks.common import (
    BenchError,
    MeasuredServer,
    OptionError,
    Target,
    bench_workdir,
    finish,
    markdown_table,
    parse_wrk,
)

logger = logging.getLogger(__name__)

HELP = "the server's CPU per status request: tracing off, unconfigured, exporting"

SETTINGS = {
    "off": {"OTEL_SDK_DISABLED": "true"},
    "unconfigured": {},
    "exporting": {"OTEL_TRACES_EXPORTER": "memory", "OTEL_SERVICE_NAME": "vtwait-bench"},
}
#: Full run and ``--quick``.
TRACING_DEFAULTS = {"rounds": 3, "seconds": 10, "connections": 8}
TRACING_QUICK = {"rounds": 1, "seconds": 2, "connections": 4}
#: The issue's goals: unconfigured within noise of off; exporting at most 20 % more CPU.
NOISE = 0.10
EXPORTING_MAX = 0.20


@dataclass(frozen=True)
class SettingResult:
    """The figures of one setting, medians over the rounds."""

    setting: str
    rounds: int
    requests: int  #: answered, all rounds together
    cpu_us_per_request: float
    requests_per_s: float
    p99_ms: float
    cpu_us_rounds: list[float]


def measure_round(setting: str, *, seconds: int, connections: int, workdir: object,
                  index: int) -> dict[str, float]:
    """One server with ``setting``, one wrk run against one pending job's status."""
    with MeasuredServer(f"tracing-{setting}-{index}", ["--min-delay", "3600", "--max-delay",
                                                       "3600", "--max-jobs", "100"],
                        workdir=workdir, env=SETTINGS[setting]) as server:  # type: ignore[arg-type]
        job_id = requests.post(server.url + "/start", timeout=10).json()["job_id"]
        url = f"{server.url}/status/{job_id}"
        requests.get(url, timeout=10).raise_for_status()  # warm: the route, the spans' code
        before = server.cpu_seconds()
        done = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                               url], capture_output=True, text=True, timeout=seconds + 60,
                              check=False)
        cpu = server.cpu_seconds() - before
    if done.returncode != 0:
        raise BenchError(f"wrk failed: {done.stderr or done.stdout}")
    figures = parse_wrk(done.stdout)
    if figures["errors"] or not figures["requests"]:
        raise BenchError(f"{setting}: wrk saw {figures['errors']} errors of "
                         f"{figures['requests']} requests")
    figures["cpu_us_per_request"] = cpu / figures["requests"] * 1e6
    logger.info("%s round %d: %d requests, %.0f/s, %.1f us CPU each", setting, index,
                figures["requests"], figures["requests_per_s"], figures["cpu_us_per_request"])
    return figures


def tracing_targets(results: Sequence[SettingResult]) -> list[Target]:
    by = {r.setting: r for r in results}
    targets = []
    off = by.get("off")
    if off is not None and (plain := by.get("unconfigured")) is not None:
        ratio = plain.cpu_us_per_request / off.cpu_us_per_request - 1
        targets.append(Target("unconfigured: CPU per request against off",
                              f"within noise (<= +{NOISE:.0%})", f"{ratio:+.1%}", ratio <= NOISE))
    if off is not None and (exporting := by.get("exporting")) is not None:
        ratio = exporting.cpu_us_per_request / off.cpu_us_per_request - 1
        targets.append(Target("exporting: CPU per request against off",
                              f"<= +{EXPORTING_MAX:.0%}", f"{ratio:+.1%}", ratio <= EXPORTING_MAX))
    return targets


def tracing_markdown(results: Sequence[SettingResult]) -> str:
    off = next((r for r in results if r.setting == "off"), None)
    rows = []
    for r in results:
        against = "" if off is None else f"{r.cpu_us_per_request / off.cpu_us_per_request - 1:+.1%}"
        rows.append((r.setting, r.requests, f"{r.cpu_us_per_request:.0f}", against,
                     " / ".join(f"{x:.0f}" for x in r.cpu_us_rounds), f"{r.requests_per_s:.0f}",
                     f"{r.p99_ms:.1f}"))
    return markdown_table(("setting", "requests", "server CPU per request (us)", "vs off",
                           "rounds (us)", "requests/s", "p99 (ms)"), rows, "l")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The tracing mode's own options."""
    for name, kind, text in (("rounds", int, "rounds; the settings take turns in each"),
                             ("seconds", int, "wrk's run per setting and round, whole seconds"),
                             ("connections", int, "wrk's keep-alive connections")):
        parser.add_argument(f"--{name}", type=kind, help=f"{text} (default: "
                            f"{TRACING_DEFAULTS[name]}; --quick: {TRACING_QUICK[name]})")


def run(options: argparse.Namespace) -> int:
    """``python bench.py tracing ...``; returns the exit status."""
    defaults = TRACING_QUICK if options.quick else TRACING_DEFAULTS
    for key, value in defaults.items():
        if getattr(options, key) is None:
            setattr(options, key, value)
    if options.rounds < 1 or options.seconds < 1 or options.connections < 1:
        raise OptionError("need --rounds >= 1, --seconds >= 1 and --connections >= 1")
    if shutil.which("wrk") is None:
        raise BenchError("the tracing mode needs wrk (apt-get install wrk)")
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in SETTINGS}
    with bench_workdir(options.server_logs) as workdir:
        for index in range(options.rounds):
            for setting in SETTINGS:
                rounds[setting].append(measure_round(
                    setting, seconds=options.seconds, connections=options.connections,
                    workdir=workdir, index=index))
    results = [SettingResult(
        setting=name, rounds=len(runs), requests=int(sum(r["requests"] for r in runs)),
        cpu_us_per_request=statistics.median(r["cpu_us_per_request"] for r in runs),
        requests_per_s=statistics.median(r["requests_per_s"] for r in runs),
        p99_ms=statistics.median(r["p99"] for r in runs),
        cpu_us_rounds=[r["cpu_us_per_request"] for r in runs]) for name, runs in rounds.items()]
    off = results[0]
    finish(options, title="Tracing: the server's CPU per status request",
           notes="Server CPU: user + system seconds of gunicorn's master and worker over the wrk "
                 "run, divided by the requests answered; medians of the rounds. One pending job's "
                 "`GET /status/<id>`, no auth, no long-poll. `exporting`: a span per request, "
                 "the SDK's batch processor, an exporter that keeps the last 10,000 spans.",
           calibration=f"the `off` server answered {off.requests_per_s:.0f} status requests/s "
                       f"at {off.cpu_us_per_request:.0f} us of CPU each.",
           body=tracing_markdown(results), targets=tracing_targets(results),
           results={"settings": [dataclasses.asdict(r) for r in results]})
    return 0
