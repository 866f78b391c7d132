"""The decisions of one output download, with no I/O: resume, refresh, verify.

    download = Download(output, job_id="j1")
    headers = download.request_headers()        # Range: bytes=N- (and If-Range) after a drop
    step = download.on_answer(206, answer_headers)   # WRITE (from 0 or appended), REFRESH, ...
    download.on_data(chunk)                     # each chunk written; hashed as it goes
    step = download.on_drop()                   # RETRY after a delay, or FAIL
    download.verify()                           # size and SHA-256, else ChecksumMismatchError

The transport streams into a temporary file beside the target, writes where :class:`Step` says,
and renames it only after :meth:`Download.verify`. A dropped connection resumes with ``Range``
from the bytes already written (``If-Range`` with the ETag, so a changed file restarts from 0);
an expired or refused URL (403) is replaced by a fresh one from the job's status
(:attr:`Action.REFRESH`). All durations are in seconds.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from vtwait.core.errors import ChecksumMismatchError, ProtocolError, VideoTranslationError
from vtwait.core.lifecycle import JobOutput

__all__ = ["MAX_DROPS", "MAX_REFRESHES", "Action", "Download", "DownloadProgress", "Step", "error_code"]

logger = logging.getLogger(__name__)

#: Consecutive drops with no byte received in between before a download gives up.
MAX_DROPS = 5
#: Fresh URLs a download may fetch (an expired or refused one each time) before it gives up.
MAX_REFRESHES = 3
_DROP_DELAYS = (0.0, 0.1, 0.5, 1.0, 2.0)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


class Action(str, enum.Enum):
    """What the transport does after an answer or a drop."""

    WRITE = "write"  #: stream the body into the file, from ``Step.offset`` (0: truncate first)
    RETRY = "retry"  #: send the request again (with :meth:`Download.request_headers`) after delay
    REFRESH = "refresh"  #: read the job's status again for a fresh URL, then retry
    DONE = "done"  #: the file is complete: verify it
    FAIL = "fail"  #: raise ``Step.error``


@dataclass(frozen=True)
class Step:
    """One decision of a download."""

    action: Action
    offset: int = 0
    delay: float = 0.0
    error: VideoTranslationError | None = None


@dataclass(frozen=True)
class DownloadProgress:
    """Where a download stands, for an ``on_progress`` hook."""

    written: int  #: bytes of the file written so far
    total: int  #: the file's size
    received: int  #: body bytes received over the network, re-reads included
    resumes: int  #: requests sent after the first (drops, refreshes)


class Download:
    """The state of one download of ``output`` (see the module docstring).

    Args:
        output: What the job's status announced.
        job_id: The job, for messages.
    """

    def __init__(self, output: JobOutput, *, job_id: str | None = None) -> None:
        self.output = output
        self.job_id = job_id
        self.written = 0
        self.received = 0
        self.requests = 0
        self.etag: str | None = None
        self._hash = hashlib.sha256()
        self._drops = 0
        self._refreshes = 0

    @property
    def progress(self) -> DownloadProgress:
        """The progress so far."""
        return DownloadProgress(self.written, self.output.size, self.received,
                                max(self.requests - 1, 0))

    def request_headers(self) -> dict[str, str]:
        """The headers of the next request: a ``Range`` from what is written (and ``If-Range``)."""
        self.requests += 1
        if self.written == 0:
            return {}
        headers = {"Range": f"bytes={self.written}-"}
        if self.etag:
            headers["If-Range"] = self.etag
        return headers

    def on_answer(self, code: int, headers: Mapping[str, str], *,
                  error_code: str | None = None) -> Step:
        """What an answer to the output request means.

        Args:
            code: Its HTTP status.
            headers: Its header fields (any case).
            error_code: The ``error.code`` of a JSON error body (e.g. ``url_expired``).
        """
        lower = {str(k).lower(): v for k, v in headers.items()}
        if code == 200:
            self._restart()
            self.etag = lower.get("etag") or self.etag
            return Step(Action.WRITE, 0)
        if code == 206:
            match = _CONTENT_RANGE.fullmatch((lower.get("content-range") or "").strip())
            if match is None or int(match.group(1)) != self.written:
                return self._fail(ProtocolError(
                    f"output of job {self.job_id}: a 206 for bytes={self.written}- answered "
                    f"Content-Range {lower.get('content-range')!r}", job_id=self.job_id,
                    status_code=206))
            self.etag = lower.get("etag") or self.etag
            return Step(Action.WRITE, self.written)
        if code == 416 and self.written >= self.output.size:
            return Step(Action.DONE)  # we had it all: the drop came after the last byte
        if code == 416:  # our Range is past a file that changed: start over
            self._restart()
            return Step(Action.RETRY)
        if code in (403, 404, 410):  # expired, refused or gone URL: a fresh one from the status
            self._refreshes += 1
            if self._refreshes > MAX_REFRESHES:
                return self._fail(VideoTranslationError(
                    f"output of job {self.job_id}: the URL was refused {self._refreshes} times "
                    f"(HTTP {code}: {error_code or 'no detail'})", job_id=self.job_id,
                    status_code=code))
            logger.info("job %s: output URL refused (HTTP %d %s): reading a fresh one",
                        self.job_id, code, error_code or "")
            return Step(Action.REFRESH)
        if code in (429, 500, 502, 503, 504):
            return self.on_drop()
        return self._fail(VideoTranslationError(
            f"output of job {self.job_id}: HTTP {code} ({error_code or 'no detail'})",
            job_id=self.job_id, status_code=code))

    def on_refreshed(self, output: JobOutput) -> None:
        """A fresh URL for the same output; a different file (size, digest) starts over."""
        if (output.size, output.sha256) != (self.output.size, self.output.sha256):
            self._restart()
        self.output = output

    def on_data(self, data: bytes) -> None:
        """Record bytes written to the file (in order).

        Raises:
            ChecksumMismatchError: more bytes came than the output's size.
        """
        self.received += len(data)
        self.written += len(data)
        self._hash.update(data)
        self._drops = 0
        if self.written > self.output.size:
            raise self._mismatch()

    def on_drop(self) -> Step:
        """The answer broke off (or a transient status came): resume, or give up."""
        self._drops += 1
        if self._drops > MAX_DROPS:
            return self._fail(VideoTranslationError(
                f"output of job {self.job_id}: the connection dropped {MAX_DROPS + 1} times in a "
                "row with nothing received", job_id=self.job_id))
        delay = _DROP_DELAYS[min(self._drops - 1, len(_DROP_DELAYS) - 1)]
        logger.warning("job %s: output download dropped at %d of %d bytes; resuming in %.1f s",
                       self.job_id, self.written, self.output.size, delay)
        return Step(Action.RETRY, self.written, delay)

    def on_body_end(self) -> Step:
        """The body ended cleanly: done if the file is whole, else a resume (a short body)."""
        if self.written >= self.output.size:
            return Step(Action.DONE)
        return self.on_drop()

    def verify(self) -> None:
        """Check the written file against the announced size and SHA-256.

        Raises:
            ChecksumMismatchError: they differ (the caller deletes the temporary file).
        """
        if self.written != self.output.size or self._hash.hexdigest() != self.output.sha256:
            raise self._mismatch()

    def _restart(self) -> None:
        self.written = 0
        self._hash = hashlib.sha256()

    def _mismatch(self) -> ChecksumMismatchError:
        actual = (self.written, self._hash.hexdigest())
        expected = (self.output.size, self.output.sha256)
        return ChecksumMismatchError(
            f"output of job {self.job_id}: got {actual[0]} bytes with SHA-256 {actual[1][:16]}..., "
            f"the server announced {expected[0]} bytes with {expected[1][:16]}...; not kept",
            job_id=self.job_id, expected=expected, actual=actual)

    @staticmethod
    def _fail(error: VideoTranslationError) -> Step:
        return Step(Action.FAIL, error=error)



def error_code(body: bytes) -> str | None:
    """The ``error.code`` of a JSON error body (e.g. ``url_expired``), else None."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError, RecursionError):
        return None
    code = error.get("code") if isinstance(error, dict) else None
    return str(code) if code else None
