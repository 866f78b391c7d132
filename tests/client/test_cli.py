"""The client's command line, in process: its displays (one job, many jobs, with and without tqdm)
and its program name. Runs against a server are in test_client_live.py and e2e/test_many_live.py.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from vtwait import JobResult, JobStatus
from vtwait.client.cli import ManyProgress, ProgressLine, build_parser

ROOT = Path(__file__).resolve().parents[2]


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def ended(job_id: str, result: JobResult) -> JobStatus:
    return JobStatus(job_id=job_id, result=result, error="boom" if result is JobResult.ERROR
                     else None)


def test_progress_line_updates_in_place_on_a_terminal():
    """On a terminal, progress rewrites one line; the final status ends it."""
    screen = Terminal()
    line = ProgressLine(screen)
    line(JobStatus(job_id="j", result=JobResult.PENDING, progress=0.42, eta_seconds=3.14))
    line(JobStatus(job_id="j", result=JobResult.COMPLETED, progress=1.0))
    assert screen.getvalue() == ("\r\033[Kjob j: pending  42%  eta 3.1 s"
                                 "\r\033[Kjob j: completed  100%\n")


def test_an_open_progress_line_is_ended_before_what_comes_next():
    """A wait that fails mid-way leaves the line open; close() ends it, once, so the error is
    printed on a line of its own instead of run into the progress."""
    screen = Terminal()
    line = ProgressLine(screen)
    line(JobStatus(job_id="j", result=JobResult.PENDING, progress=0.42))
    line.close()
    line.close()
    assert screen.getvalue() == "\r\033[Kjob j: pending  42%\n"


def test_terminal_gets_one_bar_with_counts():
    """On a terminal: a tqdm bar whose postfix carries done/failed/pending; then the summary."""
    pytest.importorskip("tqdm")
    out = Terminal()
    progress = ManyProgress(3, out)
    progress.ended(ended("a", JobResult.COMPLETED))
    progress.ended(ended("b", JobResult.ERROR))
    progress.close()
    text = out.getvalue()
    assert "done=1 failed=1 pending=1" in text and "2/3" in text
    assert "job a" not in text  # no per-job lines on a terminal
    assert text.rstrip().endswith("3 jobs: 1 completed, 1 failed, 1 pending")


def test_terminal_without_tqdm_gets_one_plain_updating_line(monkeypatch):
    """tqdm is optional (the [cli] extra): without it a terminal gets one line rewritten in place
    with the same counts, then the summary."""
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `from tqdm import tqdm` raises ImportError
    out = Terminal()
    progress = ManyProgress(2, out)
    progress.ended(ended("a", JobResult.COMPLETED))
    progress.close()
    assert progress.bar is None
    assert out.getvalue() == ("\r\033[K0/2 jobs  done=0 failed=0 pending=2"
                              "\r\033[K1/2 jobs  done=1 failed=0 pending=1"
                              "\r\033[K2 jobs: 1 completed, 0 failed, 1 pending\n")


def test_pipe_gets_plain_lines():
    """Piped: one plain line per job as it ends (with the error), then the summary."""
    out = io.StringIO()
    progress = ManyProgress(2, out)
    progress.ended(ended("a", JobResult.COMPLETED))
    progress.ended(ended("b", JobResult.ERROR))
    progress.close()
    assert out.getvalue().splitlines() == ["job a: completed", "job b: error: boom",
                                           "2 jobs: 1 completed, 1 failed, 0 pending"]


@pytest.mark.parametrize("argv0,prog", [("client.py", "client.py"),
                                        ("/home/me/checkout/client.py", "client.py"),
                                        ("/usr/bin/vtwait", "vtwait"),
                                        ("/x/vtwait/client/__main__.py", "vtwait")])
def test_messages_name_client_py_from_a_checkout_and_vtwait_otherwise(monkeypatch, argv0, prog):
    """`python client.py` keeps its name in usage and errors; the console script and
    `python -m vtwait.client` are `vtwait`."""
    monkeypatch.setattr(sys, "argv", [argv0])
    assert build_parser().prog == prog


def test_python_m_vtwait_client_runs_the_command_line():
    """`python -m vtwait.client --help` prints the usage, under the name `vtwait`."""
    done = subprocess.run([sys.executable, "-m", "vtwait.client", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: vtwait ") and "Exit codes" in done.stdout
