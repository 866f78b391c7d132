"""``python client.py --count N`` and repeated ``--job-id``: wait for many jobs with one live display.

On a terminal, one tqdm bar with done / failed / pending counts; otherwise (piped, a log file) one
plain line per job as it ends and a summary line. ``client.main`` calls :func:`run_many`.
"""

from __future__ import annotations

import json
import shutil
import sys
from typing import IO, Any

from tqdm import tqdm

from vtwait.core.errors import BatchError, WaitTimeout
from vtwait.core.status import JobResult, JobStatus

__all__ = ["ManyProgress", "run_many"]


class ManyProgress:
    """Counts of a batch wait, shown as a tqdm bar on a terminal or as plain lines."""

    def __init__(self, total: int, stream: IO[str]):
        self.total, self.stream = total, stream
        self.completed = self.failed = 0
        self.tty = stream.isatty()
        # shutil falls back to 80 columns where the terminal reports 0 (a pty without a size),
        # which would leave tqdm drawing nothing at all.
        self.bar: Any = tqdm(total=total, file=stream, unit="job",
                             ncols=shutil.get_terminal_size().columns) if self.tty else None
        self._show()

    @property
    def pending(self) -> int:
        """Jobs not ended yet."""
        return self.total - self.completed - self.failed

    def ended(self, status: JobStatus) -> None:
        """Count one final status and show it."""
        if status.result is JobResult.COMPLETED:
            self.completed += 1
        else:
            self.failed += 1
        if self.bar is None:
            detail = f": {status.error}" if status.error else ""
            self.stream.write(f"job {status.job_id}: {status.result}{detail}\n")
            self.stream.flush()
        self._show(advance=1)

    def close(self) -> None:
        """End the display with the summary line."""
        if self.bar is not None:
            self.bar.close()
        self.stream.write(f"{self.summary()}\n")
        self.stream.flush()

    def summary(self) -> str:
        """The counts in one line."""
        return (f"{self.total} jobs: {self.completed} completed, {self.failed} failed, "
                f"{self.pending} pending")

    def _show(self, advance: int = 0) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"done={self.completed} failed={self.failed} "
                                     f"pending={self.pending}", refresh=False)
            self.bar.update(advance)


def run_many(api: Any, job_ids: list[str], *, timeout: float, as_json: bool,
             stream: IO[str] | None = None) -> int:
    """Wait for ``job_ids`` with a live display; the exit code (0 only if all completed).

    Raises:
        WaitTimeout, BatchError and the client's other errors, for ``client.main`` to map; the
        display is closed first, with its summary.
    """
    ids = list(dict.fromkeys(job_ids))
    progress = ManyProgress(len(ids), stream or sys.stderr)
    finished: dict[str, JobStatus] = {}
    try:
        for status in api.as_completed(ids, timeout=timeout):
            finished[str(status.job_id)] = status
            progress.ended(status)
    except BatchError as exc:
        finished.update(exc.finished)
        progress.failed += len(exc.failed)  # unknown to the server: counted as failed
        raise
    except WaitTimeout as exc:
        finished.update(exc.finished)
        raise
    finally:
        progress.close()
        if as_json:
            print(json.dumps({job_id: dict(finished[job_id].raw) for job_id in ids
                              if job_id in finished}, indent=2, sort_keys=True))
    return 0 if progress.completed == len(ids) else 1
