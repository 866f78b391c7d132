"""bench.py runs end to end in quick mode and reports every figure, so that it cannot rot.

Each test starts ``python bench.py ... --quick`` in a subprocess (which starts its own servers on
127.0.0.1) and reads what it wrote. No figure is compared with a target here: the benchmark's
targets are read from its output by people, never asserted on a shared machine's timing.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = ["fixed", "doubling", "backoff", "hints", "long-poll", "run"]
SPREAD = ("p50", "p95", "p99", "max")
STRATEGY_FIGURES = ("jobs", "completed", "errors", "requests_per_job_mean",
                    "requests_per_job_max", "wall_s", "client_cpu_s", "server_cpu_s",
                    "all_requests_per_job_mean")
PENDING_FIGURES = ("jobs", "start_s", "rss_before_mb", "rss_after_mb", "threads_before",
                   "threads_after")
THROUGHPUT_FIGURES = ("connections", "seconds", "requests", "errors", "requests_per_s",
                      "latency_p50_ms", "latency_p99_ms", "latency_max_ms", "server_cpu_share")
ROUND_FIGURES = ("round", "waiters", "answered", "polls", "held", "held_at_once", "finish_spread_ms",
                 "rss_before_mb", "rss_peak_mb", "rss_after_mb", "threads_before",
                 "threads_peak", "threads_after")


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    """Run bench.py with ``args``; bounded, so a hang fails the test instead of the suite."""
    return subprocess.run([sys.executable, str(ROOT / "bench.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=100)


def assert_figures(document: dict[str, Any], names: tuple[str, ...], where: str) -> None:
    """Every figure in ``names`` is present in ``document`` and is a finite number >= 0."""
    for name in names:
        value = document.get(name)
        assert isinstance(value, int | float) and not isinstance(value, bool), (where, name, value)
        assert math.isfinite(value) and value >= 0, (where, name, value)


def assert_targets(report: dict[str, Any]) -> None:
    """The report lists targets, each with a goal, a measured figure and a verdict."""
    assert report["targets"]
    for target in report["targets"]:
        assert target["goal"] and target["measured"] and isinstance(target["passed"], bool)


def test_quick_strategies_report_every_figure(tmp_path: Path) -> None:
    """`bench.py --quick` exits 0 and reports every figure of every strategy: table, JSON, PNG."""
    json_path, png_path = tmp_path / "bench.json", tmp_path / "bench.png"

    done = run_bench("--quick", "--json", str(json_path), "--plot", str(png_path))

    assert done.returncode == 0, done.stderr[-3000:]
    assert "| strategy |" in done.stdout and "### Targets" in done.stdout
    report = json.loads(json_path.read_text())
    assert [r["strategy"] for r in report["strategies"]] == STRATEGIES
    for result in report["strategies"]:
        assert_figures(result, STRATEGY_FIGURES, result["strategy"])
        assert_figures(result["delay_ms"], SPREAD, result["strategy"])
        assert result["completed"] + result["errors"] == result["jobs"] > 0
        assert result["all_requests_per_job_mean"] >= 1  # the start, at least
        assert f"| {result['strategy']} |" in done.stdout
    assert_targets(report)
    assert png_path.read_bytes().startswith(b"\x89PNG")


def test_quick_scale_reports_every_figure(tmp_path: Path) -> None:
    """`bench.py scale --quick` exits 0 and reports throughput of both servers (and which load
    generator), waiter rounds of both kinds, pending-job memory, and the targets."""
    json_path = tmp_path / "scale.json"

    done = run_bench("scale", "--quick", "--json", str(json_path))

    assert done.returncode == 0, done.stderr[-3000:]
    assert "### Targets" in done.stdout and "Load generator: " in done.stdout
    report = json.loads(json_path.read_text())
    scale = report["scale"]
    assert [t["server"] for t in scale["throughput"]] == ["python server.py",
                                                           "python server.py --dev-server",
                                                           "minimal Flask route (calibration)"]
    for throughput in scale["throughput"]:
        assert_figures(throughput, THROUGHPUT_FIGURES, throughput["server"])
        assert throughput["requests"] > 0 and throughput["generator"]
    assert_figures(scale["pending"], PENDING_FIGURES, "pending")
    assert_figures(scale, ("threads_baseline", "rss_baseline_mb"), "scale")
    assert [r["kind"] for r in scale["rounds"]] == ["together", "spread", "together"]
    for waiter_round in scale["rounds"]:
        assert_figures(waiter_round, ROUND_FIGURES, f"round {waiter_round['round']}")
        assert_figures(waiter_round["delay_ms"], SPREAD, f"round {waiter_round['round']}")
        assert waiter_round["answered"] == waiter_round["waiters"]  # none lost, even on a busy box
    assert_targets(report)
