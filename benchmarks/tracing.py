"""The tracing mode: the server's CPU per status request and the client's CPU per wait with
OpenTelemetry off, installed but not configured, and exporting every span
(``python bench.py tracing``).

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

The client's CPU per wait: one ``python server.py`` (tracing off), and per setting a fresh
client process (``benchmarks/tracing_client.py``) that waits ``--waits`` times for a job that has
ended (one status request per wait: the wait's fixed cost, where tracing weighs most), its CPU
seconds over them divided by the waits. ``off``: OpenTelemetry cannot be imported (as without the
extra); ``unconfigured``: installed, no provider (a library's default); ``exporting``: a provider
from ``OTEL_TRACES_EXPORTER=memory``, a ``wait`` and a ``GET`` span per wait.

The settings take turns for ``--rounds`` rounds (so a busy moment of the machine hits all of
them); each one's figure is the median of its rounds. Markdown on stdout, logs on stderr, JSON on
request.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
TRACING_DEFAULTS = {"rounds": 3, "seconds": 10, "connections": 8, "waits": 2000}
TRACING_QUICK = {"rounds": 1, "seconds": 2, "connections": 4, "waits": 200}
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


@dataclass(frozen=True)
class ClientResult:
    """The client's figures of one setting, medians over the rounds."""

    setting: str
    rounds: int
    waits: int  #: measured, all rounds together
    cpu_us_per_wait: float
    wall_us_per_wait: float
    cpu_us_rounds: list[float]
    opentelemetry_loaded: bool  #: whether the client process had imported OpenTelemetry


def measure_client(url: str, setting: str, waits: int) -> dict[str, float]:
    """One client process with ``setting``: its CPU per wait (``benchmarks/tracing_client.py``)."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.tracing_client", url, setting,
                           str(waits)], capture_output=True, text=True, timeout=600, check=False,
                          cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise BenchError(f"the {setting} client failed: {done.stderr[-2000:]}")
    figures: dict[str, float] = json.loads(done.stdout)
    logger.info("client %s: %.1f us CPU per wait (%.1f us wall)", setting,
                figures["cpu_us_per_wait"], figures["wall_us_per_wait"])
    return figures


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


def client_targets(results: Sequence[ClientResult]) -> list[Target]:
    by = {r.setting: r for r in results}
    targets = []
    off = by.get("off")
    if off is not None and (plain := by.get("unconfigured")) is not None:
        ratio = plain.cpu_us_per_wait / off.cpu_us_per_wait - 1
        targets.append(Target("client, unconfigured: CPU per wait against off",
                              f"within noise (<= +{NOISE:.0%})", f"{ratio:+.1%}", ratio <= NOISE))
    if off is not None and (exporting := by.get("exporting")) is not None:
        ratio = exporting.cpu_us_per_wait / off.cpu_us_per_wait - 1
        targets.append(Target("client, exporting: CPU per wait against off",
                              f"<= +{EXPORTING_MAX:.0%}", f"{ratio:+.1%}", ratio <= EXPORTING_MAX))
    return targets


def client_markdown(results: Sequence[ClientResult]) -> str:
    off = next((r for r in results if r.setting == "off"), None)
    rows = []
    for r in results:
        against = "" if off is None else f"{r.cpu_us_per_wait / off.cpu_us_per_wait - 1:+.1%}"
        rows.append((r.setting, r.waits, f"{r.cpu_us_per_wait:.0f}", against,
                     " / ".join(f"{x:.0f}" for x in r.cpu_us_rounds), f"{r.wall_us_per_wait:.0f}",
                     "yes" if r.opentelemetry_loaded else "no"))
    return markdown_table(("setting", "waits", "client CPU per wait (us)", "vs off", "rounds (us)",
                           "wall per wait (us)", "OpenTelemetry imported"), rows, "l")


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
                             ("connections", int, "wrk's keep-alive connections"),
                             ("waits", int, "the client's waits per setting and round")):
        parser.add_argument(f"--{name}", type=kind, help=f"{text} (default: "
                            f"{TRACING_DEFAULTS[name]}; --quick: {TRACING_QUICK[name]})")


def run(options: argparse.Namespace) -> int:
    """``python bench.py tracing ...``; returns the exit status."""
    defaults = TRACING_QUICK if options.quick else TRACING_DEFAULTS
    for key, value in defaults.items():
        if getattr(options, key) is None:
            setattr(options, key, value)
    if (options.rounds < 1 or options.seconds < 1 or options.connections < 1
            or options.waits < 1):
        raise OptionError("need --rounds >= 1, --seconds >= 1, --connections >= 1 and "
                          "--waits >= 1")
    if shutil.which("wrk") is None:
        raise BenchError("the tracing mode needs wrk (apt-get install wrk)")
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in SETTINGS}
    with bench_workdir(options.server_logs) as workdir:
        for index in range(options.rounds):
            for setting in SETTINGS:
                rounds[setting].append(measure_round(
                    setting, seconds=options.seconds, connections=options.connections,
                    workdir=workdir, index=index))
        client_rounds: dict[str, list[dict[str, float]]] = {name: [] for name in SETTINGS}
        with MeasuredServer("tracing-client", ["--min-delay", "0", "--max-delay", "0"],
                            workdir=workdir, env=SETTINGS["off"]) as server:
            for _ in range(options.rounds):
                for setting in SETTINGS:
                    client_rounds[setting].append(measure_client(server.url, setting,
                                                                 options.waits))
    clients = [ClientResult(
        setting=name, rounds=len(runs), waits=int(sum(r["waits"] for r in runs)),
        cpu_us_per_wait=statistics.median(r["cpu_us_per_wait"] for r in runs),
        wall_us_per_wait=statistics.median(r["wall_us_per_wait"] for r in runs),
        cpu_us_rounds=[r["cpu_us_per_wait"] for r in runs],
        opentelemetry_loaded=any(r["opentelemetry_loaded"] for r in runs))
        for name, runs in client_rounds.items()]
    results = [SettingResult(
        setting=name, rounds=len(runs), requests=int(sum(r["requests"] for r in runs)),
        cpu_us_per_request=statistics.median(r["cpu_us_per_request"] for r in runs),
        requests_per_s=statistics.median(r["requests_per_s"] for r in runs),
        p99_ms=statistics.median(r["p99"] for r in runs),
        cpu_us_rounds=[r["cpu_us_per_request"] for r in runs]) for name, runs in rounds.items()]
    off = results[0]
    finish(options, title="Tracing: the server's CPU per status request, the client's per wait",
           notes="Server CPU: user + system seconds of gunicorn's master and worker over the wrk "
                 "run, divided by the requests answered; medians of the rounds. One pending job's "
                 "`GET /status/<id>`, no auth, no long-poll. `exporting`: a span per request, "
                 "the SDK's batch processor, an exporter that keeps the last 10,000 spans. "
                 "Client CPU: one client process per setting and round, its CPU seconds (all "
                 "threads) over `--waits` waits for an ended job (one status request each) "
                 "against one untraced server, divided by the waits.",
           calibration=f"the `off` server answered {off.requests_per_s:.0f} status requests/s "
                       f"at {off.cpu_us_per_request:.0f} us of CPU each; the `off` client "
                       f"spent {clients[0].cpu_us_per_wait:.0f} us of CPU per wait.",
           body=tracing_markdown(results) + "\n\n**The client's CPU per wait**\n\n"
           + client_markdown(clients),
           targets=tracing_targets(results) + client_targets(clients),
           results={"settings": [dataclasses.asdict(r) for r in results],
                    "client_settings": [dataclasses.asdict(r) for r in clients]})
    return 0
