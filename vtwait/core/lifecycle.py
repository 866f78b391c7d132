"""A job's life beyond the wait, with no I/O: the start that waits, deadlines, outputs, listing.

    headers = start_headers(hold=30, deadline=600.0)   # {"Prefer": "wait=30", "Cancel-After": "600"}
    answer = read_start_answer(201, document, headers)  # StartAnswer(job_id, final=None, ...)
    output = output_of(status)                          # JobOutput(url, expires_at, size, sha256)
    page = read_jobs_page(document)                     # JobsPage(statuses, next_cursor)

The rules both clients follow (the transports only send what these say):

- **Start and wait in one request** (RFC 7240 ``Prefer: wait=N``): a 200 carries the final
  document; a 201 is the pending answer of a server that held it for N seconds (or ignored the
  preference: then the wait goes on with status requests, one more request and nothing else).
- **Deadlines**: ``Cancel-After: <seconds>`` on the start; the server cancels the job if it has not
  ended by then (``cancel_reason: "deadline"`` in its final document).
- **Cancel on timeout**: whether the cancel sent on giving up took (:func:`cancel_took`).
- **Outputs**: a completed job's ``output`` (:class:`JobOutput`); a completed job without one yet
  is the late-output race, waited out on :func:`output_wait_delays`.
- **Listing**: ``GET /jobs`` pages (:class:`JobsPage`), followed by their cursor.

All durations are in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from vtwait.core.errors import (
    NoOutputError,
    ProtocolError,
    UnsupportedFeatureError,
    VideoTranslationError,
    WaitTimeout,
)
from vtwait.core.status import (
    JobResult,
    JobStatus,
    describe,
    parse_preference_applied,
    parse_status_document,
    start_answer_job_id,
)

__all__ = [
    "JOBS_PAGE_SIZE",
    "OUTPUT_WAIT",
    "JobOutput",
    "JobsPage",
    "OutputWait",
    "StartAnswer",
    "cancel_took",
    "jobs_query",
    "output_of",
    "output_wait_delays",
    "read_jobs_page",
    "read_start_answer",
    "record_cancel",
    "start_headers",
    "start_hold",
]

#: Seconds a download waits for the output of a completed job to appear (the late-output race)
#: before it says the server gives none.
OUTPUT_WAIT = 10.0
#: Jobs one ``GET /jobs`` page asks for.
JOBS_PAGE_SIZE = 100


@dataclass(frozen=True)
class JobOutput:
    """A completed job's deliverable, as its status document announces it."""

    url: str  #: absolute, signed and expiring: usable without the API's credentials
    expires_at: float  #: Unix time after which the URL is refused (a fresh status gives a new one)
    size: int  #: bytes
    sha256: str  #: hex digest of the whole file
    content_type: str = "application/octet-stream"

    def expired(self, now: float, *, margin: float = 1.0) -> bool:
        """True when the URL expires within ``margin`` seconds of Unix time ``now``."""
        return self.expires_at - margin <= now


def output_of(status: JobStatus | None) -> JobOutput | None:
    """The output a status announces, or None (not completed, or no output yet, or malformed)."""
    if status is None or status.result is not JobResult.COMPLETED:
        return None
    raw = status.raw.get("output")
    if not isinstance(raw, Mapping):
        return None
    url, size, digest = raw.get("url"), raw.get("size"), raw.get("sha256")
    expires = raw.get("expires_at")
    if not (isinstance(url, str) and url and isinstance(digest, str) and digest):
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return None
    if not isinstance(expires, int | float) or isinstance(expires, bool) \
            or not math.isfinite(expires):
        expires = math.inf  # no expiry said: the URL is good until refused
    content_type = raw.get("content_type")
    return JobOutput(url=url, expires_at=float(expires), size=size, sha256=digest.lower(),
                     content_type=content_type if isinstance(content_type, str) and content_type
                     else "application/octet-stream")


def output_wait_delays(first: float = 0.05, cap: float = 1.0) -> Iterator[float]:
    """Delays between status reads while a completed job's output has not appeared: doubling."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


class OutputWait:
    """From a final status to a usable output: waits out the late-output race, renews an expired
    URL, and names what is missing (no output for a failed job; none from a server without them).

    Feed it each status read; it answers the output, or the seconds to sleep before reading the
    status again.

    Args:
        job_id: The job.
        limit: Seconds to wait for a completed job's output to appear (:data:`OUTPUT_WAIT`).
    """

    def __init__(self, job_id: str, *, limit: float = OUTPUT_WAIT) -> None:
        self.job_id = job_id
        self.limit = limit
        self.waited = 0.0
        self._delays = output_wait_delays()
        self._renewed = False

    def on_status(self, status: JobStatus, *, wall_now: float) -> JobOutput | float:
        """The output to download, or the delay before the next status read.

        Args:
            status: The job's final status (a pending one is the caller's to wait for first).
            wall_now: Unix time now (to see an expired URL before sending it).

        Raises:
            NoOutputError: the job ended in error or was cancelled.
            UnsupportedFeatureError: a completed job still has no output after ``limit``.
        """
        if status.result is not JobResult.COMPLETED:
            how = "was cancelled" if status.phase == "canceled" else "ended in error"
            raise NoOutputError(f"job {self.job_id} {how}: it has no output"
                                + (f" ({status.error})" if status.error else ""),
                                job_id=self.job_id, last_status=status)
        output = output_of(status)
        if output is not None:
            if output.expired(wall_now) and not self._renewed:
                self._renewed = True  # once: a clock far off the server's would loop here
                return 0.0
            return output
        if self.waited >= self.limit:
            raise UnsupportedFeatureError(
                f"job {self.job_id} completed {self.waited:.1f} s ago and its status still "
                "announces no output: the server does not serve outputs", feature="outputs",
                job_id=self.job_id)
        delay = min(next(self._delays), max(self.limit - self.waited, 0.0))
        self.waited += delay
        return delay


def start_hold(timeout: float, max_long_poll: float) -> int:
    """The whole seconds a start may ask the server to hold it (0: do not ask)."""
    return int(max(min(timeout, max_long_poll), 0.0))


def start_headers(*, hold: int = 0, deadline: float | None = None) -> dict[str, str]:
    """The extra headers of ``POST /start``: ``Prefer: wait=N`` and ``Cancel-After``.

    Raises:
        ValueError: ``deadline`` is not a positive finite number of seconds.
    """
    headers: dict[str, str] = {}
    if hold > 0:
        headers["Prefer"] = f"wait={hold}"
    if deadline is not None:
        if not isinstance(deadline, int | float) or isinstance(deadline, bool) \
                or not math.isfinite(deadline) or deadline <= 0:
            raise ValueError(f"deadline must be a number of seconds > 0, got {deadline!r}")
        headers["Cancel-After"] = f"{deadline:g}" if deadline >= 1e-3 else "0.001"
    return headers


@dataclass(frozen=True)
class StartAnswer:
    """What a start answered: the job, and its final status when the server held the start."""

    job_id: str
    document: Any
    final: JobStatus | None  #: the final status (a 200 after ``Prefer: wait``), else None
    wait_applied: float | None  #: the hold the server says it applied (Preference-Applied)


def read_start_answer(code: int, document: Any, headers: Mapping[str, str], *,
                      job_id: str | None = None) -> StartAnswer:
    """A start answer as a :class:`StartAnswer` (``job_id``: the job as the caller read it, e.g.
    from a dialect's answer by :func:`vtwait.core.dialects.start_answer_ref`).

    Raises:
        ProtocolError: the answer names no job, or a final-looking 200 holds no readable status.
    """
    lower = {str(k).lower(): v for k, v in headers.items()}
    job_id = job_id or start_answer_job_id(document, lower.get("location", ""))
    final = None
    if code == 200 and isinstance(document, Mapping) and any(
            k in document for k in ("result", "status", "state")):
        status = parse_status_document(document, job_id=job_id)
        final = status if status.done else None
    return StartAnswer(job_id, document, final,
                       parse_preference_applied(lower.get("preference-applied")))


def cancel_took(status: JobStatus) -> bool:
    """Whether a cancel's answer shows the job cancelled (not ended on its own first)."""
    return status.phase == "canceled"


def record_cancel(timeout: WaitTimeout,
                  outcomes: Mapping[str, JobStatus | VideoTranslationError]) -> WaitTimeout:
    """Tell ``timeout`` what the cancels sent on giving up did (one per job still pending).

    ``cancelled`` is True only if every cancel took; ``cancel_status`` and ``cancel_error`` are
    those of a single job's wait (the first failure's error for many).
    """
    statuses = [o for o in outcomes.values() if isinstance(o, JobStatus)]
    errors = [o for o in outcomes.values() if isinstance(o, VideoTranslationError)]
    timeout.cancelled = bool(outcomes) and not errors and all(cancel_took(s) for s in statuses)
    timeout.cancel_status = statuses[0] if len(outcomes) == 1 and statuses else None
    timeout.cancel_error = errors[0] if errors else None
    return timeout


def jobs_query(*, result: str | None, phase: str | None, limit: int = JOBS_PAGE_SIZE,
               cursor: str | None = None) -> dict[str, str]:
    """The query of one ``GET /jobs`` page."""
    query = {"limit": str(limit)}
    for name, value in (("result", result), ("phase", phase), ("cursor", cursor)):
        if value is not None:
            query[name] = str(value)
    return query


@dataclass(frozen=True)
class JobsPage:
    """One page of ``GET /jobs``: its jobs (newest first) and the cursor of the next (None: last)."""

    statuses: tuple[JobStatus, ...]
    next_cursor: str | None


def read_jobs_page(document: Any) -> JobsPage:
    """A ``GET /jobs`` answer as a :class:`JobsPage`.

    Raises:
        ProtocolError: the answer is not ``{"jobs": [...], "next_cursor": ...}``.
    """
    jobs = document.get("jobs") if isinstance(document, Mapping) else None
    if not isinstance(jobs, list):
        raise ProtocolError(f"GET /jobs: expected {{'jobs': [...]}}, got {describe(document)}")
    cursor = document.get("next_cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise ProtocolError(f"GET /jobs: next_cursor must be a string or null, got {cursor!r}")
    return JobsPage(tuple(parse_status_document(item) for item in jobs), cursor or None)
