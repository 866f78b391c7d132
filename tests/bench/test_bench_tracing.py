"""`bench.py tracing --quick` runs end to end and reports every figure, so that it cannot rot.

It starts its own servers (one per setting) on 127.0.0.1 and needs ``wrk``. No figure is compared
with a target here (the report's verdicts are for people): only that each is there and sane.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt-get install wrk)")
def test_quick_tracing_reports_every_setting(tmp_path: Path) -> None:
    json_path = tmp_path / "tracing.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench.py"), "tracing", "--quick",
                           "--seconds", "1", "--json", str(json_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=110, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| setting |" in done.stdout and "### Targets" in done.stdout
    report = json.loads(json_path.read_text())
    assert [s["setting"] for s in report["settings"]] == ["off", "unconfigured", "exporting"]
    for setting in report["settings"]:
        assert setting["requests"] > 0
        for name in ("cpu_us_per_request", "requests_per_s", "p99_ms"):
            assert math.isfinite(setting[name]) and setting[name] > 0, name
        assert f"| {setting['setting']} |" in done.stdout
    assert [t["name"] for t in report["targets"]] == [
        "unconfigured: CPU per request against off", "exporting: CPU per request against off"]
    assert report["calibration"].startswith("the `off` server answered")
