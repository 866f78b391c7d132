"""`bench.py ratelimit --quick` runs end to end and reports every figure, so that it cannot rot.

It starts its own rate-limited servers on 127.0.0.1 in subprocesses. No figure is compared with a
target here (the report's verdicts are for people): only that each is there and sane.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ("jobs", "completed", "errors", "requests", "refused", "requests_per_job", "wall_s")


def test_quick_ratelimit_reports_every_figure_of_every_way(tmp_path: Path) -> None:
    """`bench.py ratelimit --quick` exits 0 with a table, targets and JSON for all three ways;
    each way's requests cover at least a start and a status request per job."""
    json_path = tmp_path / "ratelimit.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench.py"), "ratelimit", "--quick",
                           "--json", str(json_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=100, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| way |" in done.stdout and "### Targets" in done.stdout
    report = json.loads(json_path.read_text())
    assert [w["way"] for w in report["ways"]] == ["paced", "unpaced", "1s-loop"]
    for way in report["ways"]:
        for name in FIGURES:
            value = way[name]
            assert isinstance(value, int | float) and math.isfinite(value) and value >= 0, name
        assert way["completed"] + way["errors"] == way["jobs"] > 0
        assert way["requests"] >= 2 * way["jobs"] and way["refused"] <= way["requests"]
        assert all(math.isfinite(way["delay_ms"][q]) for q in ("p50", "p99", "max"))
        assert f"| {way['way']} |" in done.stdout
    assert report["targets"][0]["name"] == "paced: requests answered 429"
