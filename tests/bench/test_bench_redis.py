"""``python bench.py redis --quick`` runs end to end and reports every figure, so it cannot rot.

No figure is compared with a target here (a shared machine's timing is not a test); only that
each was measured, and that every held long-poll got its final answer.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETUP_FIGURES = ("requests_per_s", "server_cores", "waiters", "answered", "held", "held_rss_mb",
                 "waiter_server_cpu_s")


def test_bench_redis_quick_reports_every_figure(tmp_path: Path) -> None:
    """The three set-ups, the cross-worker run and the four targets are all in the report."""
    out = tmp_path / "redis.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench.py"), "redis", "--quick",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    document = json.loads(out.read_text())
    names = [setup["name"] for setup in document["setups"]]
    assert names == ["1 worker, memory", "1 worker, Redis", "2 workers, Redis"]
    for setup in document["setups"]:
        for figure in SETUP_FIGURES:
            value = setup[figure]
            assert isinstance(value, int | float) and math.isfinite(value) and value >= 0, figure
        assert setup["answered"] == setup["waiters"] and setup["non_2xx"] == 0
        assert setup["requests_per_s"] > 0 and math.isfinite(setup["wake_ms"]["p99"])
    cross = document["cross"]
    assert cross["jobs"] == 40 and 0 <= cross["cross"] <= 40
    assert len(document["targets"]) == 4 and "| 2 workers, Redis |" in done.stdout
    assert "`python bench.py redis --quick --json" in done.stdout
