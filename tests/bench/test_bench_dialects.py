"""`bench.py dialects --quick` runs end to end and reports every figure, so that it cannot rot.

It starts its own servers (``DIALECT=...``) on 127.0.0.1 in subprocesses: two dialects here, the
native one and Google's (each server costs seconds to start and stop; every dialect is waited for
live in tests/e2e/test_dialects_live.py). No figure is compared with a target here (the report's
verdicts are for people): only that each is there and sane.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ("jobs", "completed", "errors", "status_requests", "all_requests",
           "status_requests_per_job", "requests_per_job", "wall_s")


def test_quick_dialects_reports_every_figure_of_each_dialect(tmp_path: Path) -> None:
    """`bench.py dialects --quick` exits 0 with a table, targets and JSON for the dialects asked;
    every job is waited for with no status template, with at least one status request each."""
    json_path = tmp_path / "dialects.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench.py"), "dialects", "--quick",
                           "--dialects", "native,google", "--json", str(json_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=100, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| dialect |" in done.stdout and "### Targets" in done.stdout
    report = json.loads(json_path.read_text())
    assert [d["dialect"] for d in report["dialects"]] == ["native", "google"]
    for dialect in report["dialects"]:
        for name in FIGURES:
            value = dialect[name]
            assert isinstance(value, int | float) and math.isfinite(value) and value >= 0, name
        assert dialect["completed"] + dialect["errors"] == dialect["jobs"] > 0
        assert dialect["status_requests"] >= dialect["jobs"]
        assert dialect["all_requests"] == dialect["status_requests"] + dialect["jobs"]
        assert all(math.isfinite(dialect["delay_ms"][q]) for q in ("p50", "p99", "max"))
        assert f"| {dialect['dialect']} |" in done.stdout
