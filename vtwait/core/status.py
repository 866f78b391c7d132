"""What a server's answers say about a job, read strictly: the value types and their parsers.

    status = read_status_answer(json_body, headers, job_id="j1")   # a JobStatus
    status.result, status.done, status.eta_seconds, status.retry_after

:class:`JobStatus` is one answer about a job; :func:`parse_status_document` reads our server's
status document or a plainer one; :func:`read_status_answer` adds the hint headers
(``Retry-After``, ``Preference-Applied``, rate-limit fields); :func:`decode_json` and
:func:`start_answer_job_id` read the other answers both clients get. An answer that cannot be read
raises :class:`~vtwait.core.errors.ProtocolError`. All durations are in seconds.
"""

from __future__ import annotations

import email.utils
import enum
import json
import math
import reprlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from dataclasses import replace as _replace
from typing import Any

from vtwait.core.errors import ProtocolError
from vtwait.core.ratelimit import RateLimit, parse_rate_limit

__all__ = [
    "FINAL_RESULTS",
    "JobResult",
    "JobStatus",
    "decode_json",
    "describe",
    "parse_preference_applied",
    "parse_retry_after",
    "parse_status_document",
    "read_status_answer",
    "start_answer_job_id",
    "with_answer_headers",
]


class JobResult(str, enum.Enum):
    """A job's state as the server reports it."""

    PENDING = "pending"
    COMPLETED = "completed"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


FINAL_RESULTS = frozenset({JobResult.COMPLETED, JobResult.ERROR})

# Status words seen in the wild, mapped onto ours (compared lower-cased, '-' and ' ' as '_').
_RESULT_WORDS = {
    **dict.fromkeys(("pending", "queued", "running", "processing", "in_progress", "started",
                     "waiting", "accepted", "scheduled"), JobResult.PENDING),
    **dict.fromkeys(("completed", "complete", "succeeded", "success", "successful", "done",
                     "finished", "ok"), JobResult.COMPLETED),
    **dict.fromkeys(("error", "failed", "failure", "errored", "cancelled", "canceled", "aborted"),
                    JobResult.ERROR),
}
_STATUS_KEYS = ("result", "status", "state")


@dataclass(frozen=True)
class JobStatus:
    """One answer about a job: its state, and the server's hints for when to ask again."""

    job_id: str | None
    result: JobResult
    progress: float | None = None  #: 0.0 to 1.0, when the server says
    eta_seconds: float | None = None  #: the server's estimate of the time left
    finished_at: float | None = None  #: Unix time the job became final, when the server says
    retry_after: float | None = None  #: the ``Retry-After`` header, in seconds from the answer
    wait_applied: float | None = None  #: the long-poll wait the server says it applied
    error: str | None = None  #: the server's message for a job that ended in error
    phase: str | None = None  #: ``queued``, ``running``, ``completed``, ``error``, ``canceled``
    queue_position: int | None = None  #: 1-based place in the server's queue, while queued
    started_at: float | None = None  #: Unix time the job left the queue and began to run
    #: Where the job's output is, where to cancel it and where to ask next, when the answer
    #: says (the dialects' links, :mod:`vtwait.core.dialects`).
    output_url: str | None = field(default=None, compare=False)
    cancel_url: str | None = field(default=None, compare=False, repr=False)
    monitor_url: str | None = field(default=None, compare=False, repr=False)
    #: The answer's rate-limit fields, when it had any (see :mod:`vtwait.core.ratelimit`).
    rate_limit: RateLimit | None = field(default=None, repr=False, compare=False)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        """True once the job is ``completed`` or ``error``."""
        return self.result in FINAL_RESULTS

    def __str__(self) -> str:
        return self.result.value



def parse_retry_after(value: str | None, *, now: float | None = None,
                      maximum: float | None = math.inf) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), or None.

    Unreadable values give None. Negative and past values give 0 ("now"), huge ones ``maximum``
    (None: no cap).
    """
    maximum = math.inf if maximum is None else maximum
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is read as such
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return maximum if seconds > 0 else None
    return min(max(seconds, 0.0), maximum)


def parse_preference_applied(value: str | None) -> float | None:
    """The ``wait`` a server reports in ``Preference-Applied`` (RFC 7240), or None."""
    if not value:
        return None
    for token in value.split(","):
        name, _, arg = token.partition("=")
        if name.strip().lower() == "wait":
            seconds = _number(arg.strip().strip('"'))
            return seconds if seconds is not None and seconds >= 0 else None
    return None


def _number(value: Any) -> float | None:
    """A finite float from a JSON number or numeric string, else None (bools are not numbers)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def describe(payload: Any, limit: int = 120) -> str:
    """A short, quoted excerpt of an answer for an error message (cut at ``limit`` characters)."""
    try:
        text = payload if isinstance(payload, str) else json.dumps(payload, default=str)
    except (RecursionError, TypeError, ValueError):  # nested too deeply, or not JSON-like at all
        text = reprlib.repr(payload)  # depth-limited
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_status_document(document: Any, *, job_id: str | None = None) -> JobStatus:
    """Read a status document from our server or a plainer one; raise ProtocolError if unusable.

    The state may sit under ``result``, ``status`` or ``state``, at the top or one level down
    (``{"status": {"status": "running", "progress": 40}}``), in any case; common synonyms are read
    (``failed`` as error, ``succeeded`` as completed, ``queued``/``running`` as pending). Progress
    may be a fraction or a percentage. ``phase`` (or a ``queued``, ``running`` or ``canceled``
    status word), ``queue_position`` and ``started_at`` are read when present; a ``canceled``
    phase is a final error whatever the result says.
    """
    if not isinstance(document, Mapping):
        raise ProtocolError(f"expected a JSON object with a job status, got {describe(document)}",
                            job_id=job_id)
    body: Mapping[str, Any] = document
    word = None
    for key in _STATUS_KEYS:
        value = document.get(key)
        if isinstance(value, Mapping):  # nested one level down
            body = {**document, **value}
            value = next((value.get(k) for k in _STATUS_KEYS if isinstance(value.get(k), str)),
                         None)
        if isinstance(value, str):
            word = value
            break
    if word is None:
        raise ProtocolError("the answer has no job state; it has no 'result', 'status' or "
                            f"'state' word; got {describe(document)}", job_id=job_id)
    result = _RESULT_WORDS.get(word.strip().lower().replace("-", "_").replace(" ", "_"))
    if result is None:
        raise ProtocolError(f"unknown job status {word!r} in the answer: {describe(document)}",
                            job_id=job_id)

    phase = _phase(body.get("phase")) or _phase(word, _WORD_PHASES)
    if phase == "canceled":
        result = JobResult.ERROR
    position = _number(body.get("queue_position"))
    progress = _number(body.get("progress"))
    if progress is not None:
        progress = min(max(progress / 100 if progress > 1 else progress, 0.0), 1.0)
    eta = _number(body.get("eta_seconds", body.get("eta")))
    error = body.get("error") if result is JobResult.ERROR else None
    if isinstance(error, Mapping):
        error = error.get("message")
    found_id = body.get("job_id", body.get("id"))
    return JobStatus(
        job_id=str(found_id) if isinstance(found_id, str | int) else job_id,
        result=result,
        progress=progress,
        eta_seconds=max(eta, 0.0) if eta is not None else None,
        finished_at=_number(body.get("finished_at")),
        error=str(error) if error is not None else None,
        phase=phase,
        queue_position=int(position) if position is not None and 1 <= position < 2**63 else None,
        started_at=_number(body.get("started_at")),
        raw=dict(document),
    )


_PHASES = frozenset({"queued", "running", "completed", "error", "canceled"})
# Status words that also name a phase (a plainer server's "status": "queued").
_WORD_PHASES = frozenset({"queued", "running", "canceled"})


def _phase(value: Any, known: frozenset[str] = _PHASES) -> str | None:
    """A phase word, lower-cased (``cancelled`` spelled ``canceled``), or None."""
    if not isinstance(value, str):
        return None
    word = value.strip().lower().replace("cancelled", "canceled")
    return word if word in known else None


def read_status_answer(document: Any, headers: Mapping[str, str], *, job_id: str | None,
                       max_hint_delay: float | None = None,
                       now: float | None = None) -> JobStatus:
    """A status answer, body and headers, as one :class:`JobStatus` (any transport uses this).

    Adds to :func:`parse_status_document` the hint headers: ``Retry-After`` (clamped to
    ``max_hint_delay``), ``Preference-Applied`` and the rate-limit fields (``rate_limit``), from
    which :class:`WaitPlanner` tells a rate limiter's ``Retry-After`` from a poll hint.

    Args:
        document: The decoded JSON body.
        headers: The answer's header fields (names in any case).
        job_id: The job asked about, used when the body names none.
        max_hint_delay: Cap on ``Retry-After`` (None: no cap).
        now: Unix time for date-valued fields (default: the time now).

    Raises:
        ProtocolError: the body holds no readable status.
    """
    return with_answer_headers(parse_status_document(document, job_id=job_id), headers,
                               max_hint_delay=max_hint_delay, now=now)


def with_answer_headers(status: JobStatus, headers: Mapping[str, str], *,
                        max_hint_delay: float | None = None, now: float | None = None) -> JobStatus:
    """``status`` with the hints of its answer's headers (see :func:`read_status_answer`)."""
    lower = {str(k).lower(): v for k, v in headers.items()}
    return _replace(status,
                    retry_after=parse_retry_after(lower.get("retry-after"), now=now,
                                                  maximum=max_hint_delay),
                    wait_applied=parse_preference_applied(lower.get("preference-applied")),
                    rate_limit=parse_rate_limit(headers, now=now))



def decode_json(body: bytes | str, *, status_code: int, content_type: str | None,
                job_id: str | None) -> Any:
    """The JSON document of an answer's body (either transport's bytes).

    Raises:
        ProtocolError: the body is not JSON (or nested deeper than the parser goes).
    """
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json parses
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        raise ProtocolError(f"HTTP {status_code} answer is not JSON "
                            f"({content_type or 'no content type'}): {describe(text)}",
                            job_id=job_id, status_code=status_code) from None


def start_answer_job_id(document: Any, location: str | None) -> str:
    """The job id of a start answer: ``job_id`` (or ``id``) in its body, else its ``Location``.

    Raises:
        ProtocolError: the answer names no job.
    """
    job_id = document.get("job_id", document.get("id")) if isinstance(document, Mapping) \
        else None
    if not isinstance(job_id, str | int) or isinstance(job_id, bool):
        job_id = location.rstrip("/").rsplit("/", 1)[-1] if location else None
    if not job_id:
        raise ProtocolError(f"the start answer has no job id: {describe(document)}")
    return str(job_id)
