"""The exception tree of the clients: one base, a shallow tree, context attributes.

Every error a client raises is a :class:`VideoTranslationError` carrying ``job_id`` and
``status_code`` when known; causes are chained (``raise ... from``). Where a builtin fits, the
class subclasses it too::

    VideoTranslationError
    ├── AuthenticationError      401/403; never retried
    ├── JobNotFoundError         404 (also LookupError)
    ├── InvalidRequestError      another 4xx: the server rejected what was sent (also ValueError)
    ├── ServerError              5xx or 429 still answered after the retries
    ├── ServerUnreachableError   no answer at all after the retries (also ConnectionError)
    ├── ProtocolError            an answer with no usable status in it (also ValueError)
    ├── WaitTimeout              deadline or attempt budget spent (also TimeoutError)
    ├── BatchError               some jobs of a batch could not be waited for (the rest ended)
    ├── StartBatchError          some jobs of a batch start failed (the rest started)
    ├── WebhookVerificationError a forged, stale or malformed webhook delivery (also ValueError)
    ├── UnsupportedFeatureError  the server lacks what the call needs (``feature`` names it)
    ├── NoOutputError            the job has no output to download (failed, or none appeared)
    └── ChecksumMismatchError    a download's size or SHA-256 is not the server's (also ValueError)

Import them from ``vtwait``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vtwait.core.status import JobStatus

__all__ = [
    "AuthenticationError",
    "BatchError",
    "ChecksumMismatchError",
    "InvalidRequestError",
    "JobNotFoundError",
    "NoOutputError",
    "ProtocolError",
    "ServerError",
    "ServerUnreachableError",
    "UnsupportedFeatureError",
    "StartBatchError",
    "VideoTranslationError",
    "WaitTimeout",
    "WebhookVerificationError",
]


class VideoTranslationError(Exception):
    """Base of every error this client raises."""

    def __init__(self, message: str, *, job_id: str | None = None, status_code: int | None = None):
        super().__init__(message)
        self.job_id = job_id
        self.status_code = status_code


class AuthenticationError(VideoTranslationError):
    """The server refused the credentials (401) or the action (403); retrying will not help."""


class JobNotFoundError(VideoTranslationError, LookupError):
    """The server does not know the job (404)."""


class InvalidRequestError(VideoTranslationError, ValueError):
    """The server rejected the request as malformed (a 4xx other than 401, 403, 404 and 429)."""


class ServerError(VideoTranslationError):
    """The server kept failing (5xx) or refusing (429) after the transient retries."""


class ServerUnreachableError(VideoTranslationError, ConnectionError):
    """No answer from the server after the transient retries (refused, reset, timed out)."""


class ProtocolError(VideoTranslationError, ValueError):
    """The server answered, but not with a status this client can read."""


class WaitTimeout(VideoTranslationError, TimeoutError):
    """The deadline or the attempt budget ran out before the job reached a final status.

    A wait for many jobs names the jobs still ``pending`` and carries the ``finished`` ones
    (``{job_id: JobStatus}``) and the ``failed`` ones (``{job_id: VideoTranslationError}``).

    With ``cancel_on_timeout``, ``cancelled`` says whether the server's job was cancelled
    (True: cancelled by this call; False: the cancel did not take, e.g. the job had just ended,
    see ``cancel_status``, or the cancel request failed, see ``cancel_error``); None when no
    cancel was tried.
    """

    #: Whether the cancel sent on giving up took (None: none was sent).
    cancelled: bool | None = None
    #: The status the cancel answered (final), when it answered.
    cancel_status: JobStatus | None = None
    #: Why the cancel failed, when it did.
    cancel_error: VideoTranslationError | None = None

    def __init__(self, message: str, *, job_id: str | None, last_status: JobStatus | None,
                 attempts: int, elapsed: float, pending: tuple[str, ...] = (),
                 finished: Mapping[str, JobStatus] | None = None,
                 failed: Mapping[str, VideoTranslationError] | None = None):
        super().__init__(message, job_id=job_id)
        self.last_status = last_status
        self.attempts = attempts
        self.elapsed = elapsed
        self.pending = pending
        self.finished = dict(finished or {})
        self.failed = dict(failed or {})


class BatchError(VideoTranslationError):
    """Some jobs of a batch could not be waited for (unknown, refused); every other one ended.

    ``failed`` maps each such job to its error (e.g. :class:`JobNotFoundError`), ``finished``
    maps every other job to its final :class:`JobStatus`.
    """

    def __init__(self, message: str, *, failed: Mapping[str, VideoTranslationError],
                 finished: Mapping[str, JobStatus]):
        super().__init__(message)
        self.failed = dict(failed)
        self.finished = dict(finished)


class StartBatchError(VideoTranslationError):
    """Some jobs of ``start_jobs`` / ``start_many`` could not be started; every other one was.

    ``job_ids`` holds one entry per job asked for, in order: its id, or None where it failed;
    ``failed`` maps the index of each job that failed to its error (e.g. :class:`ServerError` for
    a server full of jobs, :class:`InvalidRequestError` for a refused body).
    """

    def __init__(self, message: str, *, job_ids: list[str | None],
                 failed: Mapping[int, VideoTranslationError]):
        super().__init__(message)
        self.job_ids = list(job_ids)
        self.failed = dict(failed)


class WebhookVerificationError(VideoTranslationError, ValueError):
    """A webhook delivery that is not genuine: ``reason`` is ``forged``, ``stale`` or ``malformed``."""

    def __init__(self, message: str, *, reason: str, job_id: str | None = None):
        super().__init__(message, job_id=job_id)
        self.reason = reason



class UnsupportedFeatureError(VideoTranslationError):
    """The server lacks what this call needs; ``feature`` names it (e.g. ``"GET /jobs"``)."""

    def __init__(self, message: str, *, feature: str, job_id: str | None = None,
                 status_code: int | None = None):
        super().__init__(message, job_id=job_id, status_code=status_code)
        self.feature = feature


class NoOutputError(VideoTranslationError, LookupError):
    """The job has no output to download: it ended in error or was cancelled (``last_status``)."""

    def __init__(self, message: str, *, job_id: str | None, last_status: JobStatus | None):
        super().__init__(message, job_id=job_id)
        self.last_status = last_status


class ChecksumMismatchError(VideoTranslationError, ValueError):
    """A downloaded file's size or SHA-256 differs from what the server announced; the file is
    not kept (``expected`` and ``actual`` are ``(size, sha256)`` pairs)."""

    def __init__(self, message: str, *, job_id: str | None, expected: tuple[int, str],
                 actual: tuple[int, str]):
        super().__init__(message, job_id=job_id)
        self.expected = expected
        self.actual = actual
