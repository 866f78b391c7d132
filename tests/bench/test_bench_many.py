"""`bench.py many --quick` runs end to end and reports every figure, so that it cannot rot.

It starts its own servers and client processes on 127.0.0.1. No figure is compared with a target
here: targets are read from the output by people, never asserted on a shared machine's timing.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN_FIGURES = ("jobs", "start_s", "start_requests", "status_requests", "stream_requests",
               "requests_per_job",
               "wall_s", "client_cpu_s", "client_peak_rss_mb", "client_threads_max",
               "server_cpu_s", "server_peak_rss_mb")


def test_quick_many_reports_every_figure_of_every_run(tmp_path: Path) -> None:
    """`bench.py many --quick` exits 0: both scenarios x four strategies, table, JSON, PNG."""
    json_path, png_path = tmp_path / "many.json", tmp_path / "many.png"

    done = subprocess.run([sys.executable, str(ROOT / "bench.py"), "many", "--quick", "--json",
                           str(json_path), "--plot", str(png_path)], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=100)

    assert done.returncode == 0, done.stderr[-3000:]
    assert "### Targets" in done.stdout and "| stream-async |" in done.stdout
    report = json.loads(json_path.read_text())
    runs = [(r["scenario"], r["strategy"]) for r in report["runs"]]
    assert runs == [(scenario, strategy) for scenario in ("spread", "burst")
                    for strategy in ("stream-async", "long-poll-async", "stream-sync",
                                     "fixed-async")]
    for run in report["runs"]:
        assert run["wrong_results"] == 0 and run["jobs"] > 0
        for name in RUN_FIGURES:
            value = run[name]
            assert isinstance(value, int | float) and math.isfinite(value) and value >= 0, name
        assert 0 <= run["delay_ms"]["p50"] <= run["delay_ms"]["p99"] <= run["delay_ms"]["max"]
    assert len(report["targets"]) >= 8
    assert all(isinstance(t["passed"], bool) and t["measured"] for t in report["targets"])
    assert png_path.read_bytes().startswith(b"\x89PNG")
