"""The many-jobs progress display: a tqdm bar with counts on a terminal, plain lines otherwise."""

from __future__ import annotations

import io

from vtwait.client.progress import ManyProgress
from vtwait.client.sync import JobResult, JobStatus


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def ended(job_id: str, result: JobResult) -> JobStatus:
    return JobStatus(job_id=job_id, result=result, error="boom" if result is JobResult.ERROR
                     else None)


def test_terminal_gets_one_bar_with_counts():
    """On a terminal: a tqdm bar whose postfix carries done/failed/pending; then the summary."""
    out = Terminal()
    progress = ManyProgress(3, out)
    progress.ended(ended("a", JobResult.COMPLETED))
    progress.ended(ended("b", JobResult.ERROR))
    progress.close()
    text = out.getvalue()
    assert "done=1 failed=1 pending=1" in text and "2/3" in text
    assert "job a" not in text  # no per-job lines on a terminal
    assert text.rstrip().endswith("3 jobs: 1 completed, 1 failed, 1 pending")


def test_pipe_gets_plain_lines():
    """Piped: one plain line per job as it ends (with the error), then the summary."""
    out = io.StringIO()
    progress = ManyProgress(2, out)
    progress.ended(ended("a", JobResult.COMPLETED))
    progress.ended(ended("b", JobResult.ERROR))
    progress.close()
    assert out.getvalue().splitlines() == ["job a: completed", "job b: error: boom",
                                           "2 jobs: 1 completed, 1 failed, 0 pending"]
