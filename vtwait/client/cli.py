"""The client's command line: start a job (or pick existing ones) and wait until each one ends.

    vtwait --delay 2                       # or: python client.py ..., python -m vtwait.client ...
    vtwait --count 50 --json > done.json   # many jobs, one live display
    vtwait --count 100 --state batch.json  # killed? run it again: it finishes the same jobs
    vtwait --delay 2 --download out.mp4    # wait, then download the output (verified)

One job shows a progress line (:class:`ProgressLine`); many jobs (``--count``, repeated
``--job-id``) one display with done / failed / pending counts (:class:`ManyProgress`): a tqdm bar
on a terminal when tqdm is installed (the ``[cli]`` extra), else one plain updating line, and
plain lines when piped. Exit codes: ``EXIT_*`` below. The library never imports this module.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from dataclasses import replace
from typing import IO, Any

from vtwait.client.sync import VideoTranslationClient
from vtwait.core import (
    DEFAULT_BASE_URL,
    DEFAULT_WAIT_TIMEOUT,
    AuthenticationError,
    BatchError,
    InvalidRequestError,
    JobNotFoundError,
    JobResult,
    JobStatus,
    PollingPolicy,
    ProtocolError,
    VideoTranslationError,
    WaitTimeout,
)
from vtwait.core.batch_state import BatchState
from vtwait.core.download import DownloadProgress
from vtwait.core.errors import UnsupportedFeatureError

__all__ = [
    "EXIT_COMPLETED",
    "EXIT_JOB_ERROR",
    "EXIT_TIMEOUT",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "DownloadBar",
    "ManyProgress",
    "ProgressLine",
    "build_parser",
    "load_state",
    "main",
    "run_many",
    "save_state",
]

EXIT_COMPLETED, EXIT_JOB_ERROR, EXIT_USAGE, EXIT_TIMEOUT, EXIT_UNREACHABLE = 0, 1, 2, 3, 4
# Anything else (ServerError, ServerUnreachableError, ProtocolError) exits EXIT_UNREACHABLE.
_EXIT_CODES = ((WaitTimeout, EXIT_TIMEOUT), (AuthenticationError, EXIT_USAGE),
               (JobNotFoundError, EXIT_USAGE), (InvalidRequestError, EXIT_USAGE),
               (BatchError, EXIT_USAGE), (UnsupportedFeatureError, EXIT_USAGE))
#: The program name when not run as ``python client.py``: the console script's.
PROG = "vtwait"


def program_name() -> str:
    """``client.py`` when run as ``python client.py`` from a checkout, else ``vtwait``."""
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "client.py" if script == "client.py" else PROG


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser (``prog``: the name in messages, default :func:`program_name`)."""
    parser = argparse.ArgumentParser(
        prog=prog or program_name(),
        description="Start a video-translation job (or pick an existing one) and wait until it is "
                    "completed or failed, with as few status requests as the server allows.",
        epilog="Credentials: set API_USERNAME and API_PASSWORD in the environment, or "
               "API_BEARER_TOKEN, or API_KEY (sent in API_KEY_HEADER, default X-Api-Key); "
               "--password is accepted, but a command line is visible to other users of the "
               "machine. Exit "
               "codes: 0 completed (all of them, for many jobs), 1 a job ended in error, 2 usage "
               "or authentication error (or unknown job), 3 timed out, 4 server unreachable or "
               "unusable.")
    parser.add_argument("--base-url", default=os.environ.get("API_BASE_URL", DEFAULT_BASE_URL),
                        help="server URL (default: $API_BASE_URL or %(default)s)")
    parser.add_argument("--username", help="Basic auth user (default: $API_USERNAME)")
    parser.add_argument("--password", help="Basic auth password (default: $API_PASSWORD)")
    parser.add_argument("--job-id", action="append",
                        help="wait for this existing job instead of starting one; repeat it to "
                             "wait for many (one progress display)")
    parser.add_argument("--count", type=int, metavar="N",
                        help="start N jobs (with --delay/--outcome) and wait for all of them")
    parser.add_argument("--delay", type=float, help="ask the simulator for this job duration")
    parser.add_argument("--outcome", choices=("completed", "error"),
                        help="ask the simulator for this final result")
    parser.add_argument("--timeout", type=float, default=DEFAULT_WAIT_TIMEOUT,
                        help="give up after this many seconds (default: %(default)g)")
    parser.add_argument("--json", action="store_true",
                        help="print the final status document as JSON on stdout")
    parser.add_argument("--state", metavar="PATH",
                        help="with --count: keep the batch's place in this JSON file; if it "
                             "exists, resume that batch (no new jobs) and finish its jobs")
    parser.add_argument("--download", metavar="PATH",
                        help="after the job completes, download its output to PATH (size and "
                             "SHA-256 verified; a progress bar on a terminal)")
    parser.add_argument("--log-file", help="also write the client's log to this file")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log every status request and why the next one comes when it does")
    return parser


# ------------------------------------------------------------------------------ displays
class ProgressLine:
    """One job's live progress: one updating line on a terminal; plain lines when piped."""

    def __init__(self, stream: IO[str]):
        self.stream, self.tty = stream, stream.isatty()
        self.open = False  # a terminal line without its newline yet

    def close(self) -> None:
        """End an open terminal line, so that what is printed next starts on its own line."""
        if self.open:
            self.stream.write("\n")
            self.stream.flush()
            self.open = False

    def __call__(self, status: JobStatus) -> None:
        parts = [f"job {status.job_id or '(default)'}: {status.result}"]
        if status.progress is not None:
            parts.append(f"{status.progress:.0%}")
        if status.eta_seconds is not None and not status.done:
            parts.append(f"eta {status.eta_seconds:.1f} s")
        line = "  ".join(parts)
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if status.done else ""))
            self.open = not status.done
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _tqdm() -> Any:
    """tqdm's class, or None when it is not installed (``pip install 'vtwait[cli]'`` adds it)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class ManyProgress:
    """Counts of a batch wait: a tqdm bar on a terminal (one updating plain line without tqdm),
    plain lines when piped.

    Args:
        total: Jobs in the batch.
        stream: Where to draw (a terminal or not, by its ``isatty()``).
    """

    def __init__(self, total: int, stream: IO[str]):
        self.total, self.stream = total, stream
        self.completed = self.failed = 0
        self.tty = stream.isatty()
        tqdm = _tqdm() if self.tty else None
        # shutil falls back to 80 columns where the terminal reports 0 (a pty without a size),
        # which would leave tqdm drawing nothing at all.
        self.bar: Any = tqdm(total=total, file=stream, unit="job",
                             ncols=shutil.get_terminal_size().columns) if tqdm else None
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
        if not self.tty:
            detail = f": {status.error}" if status.error else ""
            self.stream.write(f"job {status.job_id}: {status.result}{detail}\n")
            self.stream.flush()
        self._show(advance=1)

    def close(self) -> None:
        """End the display with the summary line."""
        if self.bar is not None:
            self.bar.close()
        elif self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(f"{self.summary()}\n")
        self.stream.flush()

    def summary(self) -> str:
        """The counts in one line."""
        return (f"{self.total} jobs: {self.completed} completed, {self.failed} failed, "
                f"{self.pending} pending")

    def _show(self, advance: int = 0) -> None:
        counts = f"done={self.completed} failed={self.failed} pending={self.pending}"
        if self.bar is not None:
            self.bar.set_postfix_str(counts, refresh=False)
            self.bar.update(advance)
        elif self.tty:
            self.stream.write(f"\r\033[K{self.completed + self.failed}/{self.total} jobs  {counts}")
            self.stream.flush()


def run_many(api: Any, job_ids: list[str], *, timeout: float, as_json: bool,
             stream: IO[str] | None = None, state: BatchState | None = None,
             state_path: str | None = None) -> int:
    """Wait for ``job_ids`` with a live display; the exit code (0 only if all completed).

    With ``state`` the batch is that state's (resumed from it), saved to ``state_path`` after
    each job that ends.

    Raises:
        WaitTimeout, BatchError and the client's other errors, for :func:`main` to map; the
        display is closed first, with its summary.
    """
    ids = list(state.job_ids) if state is not None else list(dict.fromkeys(job_ids))
    progress = ManyProgress(len(ids), stream or sys.stderr)
    finished: dict[str, JobStatus] = {}
    try:
        if state is not None:
            for job_id, status in state.statuses().items():  # ended before this process
                finished[job_id] = status
                progress.ended(status)
            statuses = api.watch_batch(state, timeout=timeout)
        else:
            statuses = api.as_completed(ids, timeout=timeout)
        for status in statuses:
            finished[str(status.job_id)] = status
            progress.ended(status)
            if state is not None and state_path:
                save_state(state, state_path)
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
    return EXIT_COMPLETED if progress.completed == len(ids) else EXIT_JOB_ERROR


def load_state(path: str) -> BatchState | None:
    """The batch state saved at ``path``, or None when there is no file.

    Raises:
        ValueError: the file is not a batch state (ProtocolError).
    """
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        return None
    return BatchState.from_json(text)


def save_state(state: BatchState, path: str) -> None:
    """Write ``state`` to ``path`` atomically (a temporary file beside it, then a rename), so a
    process killed while saving leaves the previous state whole."""
    partial = f"{path}.{os.getpid()}.tmp"
    with open(partial, "w", encoding="utf-8") as file:
        file.write(state.to_json())
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)


class DownloadBar:
    """A download's progress: a tqdm bar in bytes on a terminal (a plain updating line without
    tqdm); nothing when not on a terminal."""

    def __init__(self, stream: IO[str]):
        self.stream, self.tty = stream, stream.isatty()
        self.bar: Any = None
        self._tqdm = _tqdm() if self.tty else None
        self._shown = 0

    def __call__(self, progress: DownloadProgress) -> None:
        if not self.tty:
            return
        if self._tqdm is not None:
            if self.bar is None:
                self.bar = self._tqdm(total=progress.total, file=self.stream, unit="B",
                                      unit_scale=True, ncols=shutil.get_terminal_size().columns)
            self.bar.update(progress.written - self._shown)
        else:
            self.stream.write(f"\r\033[Kdownloading {progress.written}/{progress.total} bytes")
            self.stream.flush()
        self._shown = progress.written

    def close(self) -> None:
        """End the display."""
        if self.bar is not None:
            self.bar.close()
        elif self.tty and self._shown:
            self.stream.write("\n")
            self.stream.flush()


def _download(api: VideoTranslationClient, job_id: str, path: str) -> None:
    bar = DownloadBar(sys.stderr)
    try:
        saved = api.download(job_id, path, on_progress=bar)
    finally:
        bar.close()
    print(f"job {job_id}: output saved to {saved}", file=sys.stderr)


# ------------------------------------------------------------------------------ entry point
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.count is not None and args.count < 1:
        parser.error(f"--count must be >= 1, got {args.count}")
    if args.state and args.count is None:
        parser.error("--state needs --count (the batch it keeps the place of)")
    if args.download and (args.count is not None or len(args.job_id or ()) > 1):
        parser.error("--download takes one job (not --count or a repeated --job-id)")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if args.log_file:
        handlers.append(logging.FileHandler(args.log_file))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Every logger of the library (core and client) is under "vtwait".
    logging.getLogger("vtwait").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if args.log_file:  # the file always gets the outcome, the terminal only with -v
        handlers[0].setLevel(logging.DEBUG if args.verbose else logging.WARNING)

    progress = ProgressLine(sys.stderr)
    policy = PollingPolicy()
    if progress.tty:  # short long-poll windows, so that the progress line moves
        policy = replace(policy, max_long_poll=2.0)
    try:
        with VideoTranslationClient(args.base_url, args.username, args.password,
                                    policy=policy) as api:
            if args.count is not None or len(args.job_id or ()) > 1:
                if not args.verbose:  # one display, not a log line per started job
                    handlers[0].setLevel(logging.WARNING)
                job_ids = list(args.job_id or ())
                try:
                    state = load_state(args.state) if args.state else None
                except (OSError, ProtocolError) as exc:
                    return _fail(parser.prog, f"--state {args.state}: {exc}", EXIT_USAGE)
                if state is None and args.count:
                    job_ids += api.start_jobs(args.count, delay=args.delay, outcome=args.outcome)
                if args.state and state is None:
                    state = BatchState.new(job_ids)
                    save_state(state, args.state)
                return run_many(api, job_ids, timeout=args.timeout, as_json=args.json,
                                state=state, state_path=args.state)
            job_id = args.job_id[0] if args.job_id else api.start_job(delay=args.delay,
                                                                      outcome=args.outcome)
            status = api.wait_for_completion(job_id, timeout=args.timeout, on_update=progress)
            if args.download and status.result is JobResult.COMPLETED:
                _download(api, job_id, args.download)
    except VideoTranslationError as exc:
        progress.close()  # the error on a line of its own, not run into the progress line
        code = next((c for kind, c in _EXIT_CODES if isinstance(exc, kind)), EXIT_UNREACHABLE)
        return _fail(parser.prog, str(exc), code)
    except ValueError as exc:  # a bad argument, e.g. the URL or the timeout
        return _fail(parser.prog, str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail(parser.prog, "interrupted", 130)
    if args.json:
        print(json.dumps(dict(status.raw), indent=2, sort_keys=True))
    else:
        detail = f": {status.error}" if status.error else ""
        print(f"job {status.job_id or job_id}: {status.result}{detail}")
    return EXIT_COMPLETED if status.result is JobResult.COMPLETED else EXIT_JOB_ERROR


def _fail(prog: str, message: str, code: int) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code
