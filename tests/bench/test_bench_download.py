"""`bench.py download --quick` runs end to end and reports every figure, so that it cannot rot.

It starts its own servers on 127.0.0.1 in subprocesses. No figure is compared with a target here
(the report's verdicts are for people): only that each is there and sane.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_download_reports_both_ways(tmp_path: Path) -> None:
    """`bench.py download --quick` exits 0 with a table, a target and JSON for both ways; the
    dropped download took more than one request and received at least every byte."""
    json_path = tmp_path / "download.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench.py"), "download", "--quick",
                           "--json", str(json_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=100, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| way |" in done.stdout and "### Targets" in done.stdout
    report = json.loads(json_path.read_text())
    clean, dropped = report["downloads"]
    assert (clean["way"], dropped["way"]) == ("clean", "dropped")
    assert clean["requests"] == 1 and dropped["requests"] >= 2
    for way in (clean, dropped):
        assert way["received"] >= way["size"] > 0 and way["wall_s"] > 0
    assert report["calibration"] and report["targets"][0]["name"].startswith("dropped")
