"""`bench.py testspeed --quick` runs end to end and reports every figure, so that it cannot rot.

It starts its own simulator (CLOCK=virtual, control API on) in a subprocess. No figure is compared
with a target here (the report's verdicts are for people): only that each is there and sane.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from benchmarks.testspeed import ladder_seconds

ROOT = Path(__file__).resolve().parents[2]


def test_the_ladder_length_is_the_servers_schedule() -> None:
    assert ladder_seconds(5, 1.0) == 1 + 2 + 4 + 8
    assert ladder_seconds(1, 60.0) == 0
    assert ladder_seconds(5, 200.0) == 200 + 300 + 300 + 300  # each wait capped at 300 s


def test_quick_testspeed_reports_both_tests(tmp_path: Path) -> None:
    json_path = tmp_path / "testspeed.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench.py"), "testspeed", "--quick",
                           "--json", str(json_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=100, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| test |" in done.stdout and "### Targets" in done.stdout
    report = json.loads(json_path.read_text())
    assert [t["test"] for t in report["tests"]] == ["1-hour job", "webhook ladder"]
    assert [t["virtual_s"] for t in report["tests"]] == [3600, 720]
    for test in report["tests"]:
        assert test["runs"] == 3
        for q in ("p50", "max"):
            assert math.isfinite(test["wall_s"][q]) and test["wall_s"][q] > 0
    assert report["server_start_s"] > 0 and report["calibration_ms"] > 0
    assert report["mode"] == "testspeed" and report["calibration"]
