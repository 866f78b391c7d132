"""The benchmarks' command line and the generated page ``docs/benchmarks.md``.

In-process and fast: no server is started here. The page test regenerates the page from the
committed ``docs/bench-results/*.json`` and compares it with the committed page, so a stale page
(or JSON changed without regenerating) fails.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from benchmarks import cli, report
from benchmarks.common import Target, parse_wrk, section_markdown

ROOT = Path(__file__).resolve().parents[2]
RESULTS = sorted((ROOT / report.RESULTS_DIR).glob("*.json"))
WRK_OUTPUT = """\
Running 2s test @ http://127.0.0.1:8000/status/abc
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.50ms    3.10ms   1.63s    90.00%
    Req/Sec     1.61k   100.00     1.80k    70.00%
  Latency Distribution
     50%  350.00us
     75%    1.00ms
     90%    5.00ms
     99%   40.00ms
  6442 requests in 2.00s, 1.50MB read
  Socket errors: connect 0, read 12, write 0, timeout 5
  Non-2xx or 3xx responses: 3
Requests/sec:   3221.00
Transfer/sec:    768.00KB
"""


def test_help_lists_every_mode(capsys: pytest.CaptureFixture[str]) -> None:
    """`bench.py --help` names every mode, learned, many, redis and ratelimit included."""
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for mode in [*cli.MODES, "report"]:
        assert f"    {mode}" in text, mode


@pytest.mark.parametrize("mode", [*cli.MODES, "report"])
def test_every_mode_has_its_own_help(mode: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`bench.py MODE --help` works for every mode; measuring modes all take --quick and --json."""
    with pytest.raises(SystemExit) as done:
        cli.main([mode, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: bench.py {mode}" in text
    if mode != "report":
        assert "--quick" in text and "--json PATH" in text


def test_the_default_mode_is_strategies() -> None:
    """A command line naming no mode runs the strategies mode, with its options as given."""
    parser = cli.build_parser()
    options = parser.parse_args(cli._with_mode(["--quick", "--jobs", "3"]))
    assert (options.mode, options.quick, options.jobs) == ("strategies", True, 3)
    assert parser.parse_args(cli._with_mode(["scale", "--quick"])).mode == "scale"


def test_a_bad_option_combination_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A mode's own check of its options exits 2 with the reason, before anything starts."""
    with pytest.raises(SystemExit) as done:
        cli.main(["strategies", "--quick", "--strategies", "nope"])
    assert done.value.code == 2
    assert "unknown strategies ['nope']" in capsys.readouterr().err


def test_parse_wrk_reads_every_figure() -> None:
    """Requests, rate, p50/p99/max in ms, and socket errors plus non-2xx answers as errors."""
    figures = parse_wrk(WRK_OUTPUT)
    assert figures == pytest.approx({"requests": 6442, "errors": 20, "non_2xx": 3,
                                     "requests_per_s": 3221.0, "p50": 0.35, "p99": 40.0,
                                     "max": 1630.0})


def test_benchmarks_import_neither_the_dispatcher_nor_the_tests() -> None:
    """No mode imports benchmarks.cli (so no import cycle), and nothing imports tests/."""
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names]
        names += [node.module or "" for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom)]
        assert not [n for n in names if n.startswith("tests")], path.name
        if path.name != "cli.py":
            assert "benchmarks.cli" not in names, path.name


def _document(mode: str, quick: bool) -> dict[str, object]:
    return {"mode": mode, "title": f"The {mode} mode", "command": f"python bench.py {mode}",
            "date": "2026-01-02 03:04 UTC", "elapsed_s": 42, "quick": quick, "notes": "Seed 1.",
            "machine": {"cpu_model": "Some CPU", "cores": 2, "memory_gb": 8.0,
                        "os": "Linux 6 x86_64", "python": "3.11.7"},
            "calibration": "x served 1 req/s." if mode == "scale" else None,
            "body": "| a |\n| --- |\n| 1 |",
            "targets": [{"name": "t", "goal": "<= 1", "measured": "1", "passed": True}]}


def test_a_section_shows_command_date_machine_calibration_and_targets() -> None:
    """A run's section is rendered from its JSON alone, quick runs marked."""
    text = section_markdown(_document("scale", quick=True))
    for part in ("## The scale mode", "**Quick run**", "Command: `python bench.py scale`",
                 "Run 2026-01-02 03:04 UTC (took 42 s) on Some CPU, 2 CPUs, 8 GB, Linux 6 x86_64, Python "
                 "3.11.7.", "Calibration: x served 1 req/s.", "| 1 |", "### Targets",
                 "| t | <= 1 | 1 | PASS |"):
        assert part in text, part
    assert "Quick run" not in section_markdown(_document("many", quick=False))
    assert Target("t", "<= 1", "1", True).passed


def test_the_page_orders_the_modes_and_names_the_quick_ones(tmp_path: Path) -> None:
    """Sections follow the modes' order whatever the files' order; quick runs are named on top."""
    paths = []
    for mode, quick in (("ratelimit", False), ("strategies", True)):
        paths.append(tmp_path / f"{mode}.json")
        paths[-1].write_text(json.dumps(_document(mode, quick)))
    page = report.render_page(report.load(paths))
    assert page.index("## The strategies mode") < page.index("## The ratelimit mode")
    assert "**Quick figures** for strategies:" in page
    assert "| strategies (quick) | 2026-01-02 03:04 UTC | 42 |" in page


def test_a_file_that_is_not_a_result_is_refused(tmp_path: Path) -> None:
    """JSON of an older version (no machine, no body) is refused with the fix."""
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"mode": "scale", "markdown": "..."}))
    with pytest.raises(report.OptionError, match="rerun the mode with --json"):
        report.load([old])


@pytest.mark.skipif(not RESULTS, reason="no results in docs/bench-results/ yet: run a mode with "
                    "--json docs/bench-results/<mode>.json, then `python bench.py report`")
def test_the_committed_page_is_generated_from_the_committed_results() -> None:
    """docs/benchmarks.md is exactly what `bench.py report` makes of docs/bench-results/*.json."""
    expected = report.render_page(report.load(RESULTS))
    page = ROOT / report.PAGE
    assert page.exists(), "docs/benchmarks.md is missing: run `python bench.py report`"
    assert page.read_text(encoding="utf-8") == expected, (
        "docs/benchmarks.md is stale: run `python bench.py report --out docs/benchmarks.md "
        "docs/bench-results/*.json`")
