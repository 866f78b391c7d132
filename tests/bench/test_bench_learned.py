"""`bench.py learned --quick` runs end to end and reports every figure, so that it cannot rot.

The offline optimum is checked exactly on small cases; no measured figure is compared with a
target here (the benchmark's targets are read from its output, never asserted on a shared machine).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.learned import least_requests, optimum_p99

ROOT = Path(__file__).resolve().parents[2]
ROWS = [("fixed", "base"), ("doubling", "base"), ("backoff", "base"), ("backoff", "shifted"),
        ("learned: cold", "base"), ("learned: warm", "base"),
        ("learned: shifted", "shifted"), ("learned: warm again", "shifted")]


def test_least_requests_by_hand():
    """Jobs ending at 1, 2, 3 with delay 1 and no miss: polls at 2 and 4 (3 + 1 requests)."""
    assert least_requests([1.0, 2.0, 3.0], 1.0, 0) == 4


def test_least_requests_may_let_the_earliest_job_through_late():
    """One miss allowed: a single poll at 3 + 1 catches 2 and 3 in time, 1 late: 3 requests."""
    assert least_requests([1.0, 2.0, 3.0], 1.0, 1) == 3


def test_optimum_p99_trades_requests_for_delay():
    """More requests per job never give a longer optimal p99; one request per job waits for
    the longest job; enough requests reach zero.
    """
    durations = [1.0 + k / 10 for k in range(100)]
    figures = [optimum_p99(durations, r) for r in (1.0, 2.0, 3.0, 5.0, 100.0)]
    assert figures == sorted(figures, reverse=True)
    assert figures[0] == pytest.approx(durations[-1] - durations[1], abs=1e-6)
    assert figures[-1] == 0.0


def test_quick_learned_reports_every_round(tmp_path: Path) -> None:
    """`bench.py learned --quick` exits 0 with every row, the optimum, targets, JSON and a PNG."""
    json_path, png_path = tmp_path / "learned.json", tmp_path / "learned.png"

    done = subprocess.run([sys.executable, str(ROOT / "bench.py"), "learned", "--quick",
                           "--json", str(json_path), "--plot", str(png_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=100, check=False)

    assert done.returncode == 0, done.stderr[-3000:]
    assert "### Targets" in done.stdout
    report = json.loads(json_path.read_text())
    assert [(r["name"], r["durations"]) for r in report["rows"]] == ROWS
    for row in report["rows"]:
        for name in ("requests_per_job_mean", "optimum_p99_ms", "wall_s"):
            assert math.isfinite(row[name]) and row[name] >= 0, (row["name"], name)
        assert row["completed"] + row["errors"] == row["jobs"] == 20
        assert f"| {row['name']} | {row['durations']} |" in done.stdout
    assert {t["passed"] for t in report["targets"]} <= {True, False}
    assert len(report["targets"]) == 11
    assert png_path.read_bytes().startswith(b"\x89PNG")
