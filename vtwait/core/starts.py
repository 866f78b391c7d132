"""Batch starts, sans-IO: the body of ``POST /start/batch`` and the reading of its answer.

    body = batch_start_body(bodies, keys)        # {"jobs": [{..., "idempotency_key": k}, ...]}
    started = read_batch_answer(document, count=len(bodies))
    started.job_ids    # one per body, None where that job failed
    started.failed     # {index: VideoTranslationError}
    started.documents  # {index: status document} of the jobs that started

A server that offers the batch route starts up to its ``MAX_BATCH_START`` jobs per request, each
with its own idempotency key and its own answer (a bad item fails alone); a server without it
answers 404 or 405, and the clients start one job per request instead (:func:`offers_batch`).
A server whose cap is below the client's chunk size refuses the request with a 400 and names its
cap in the :data:`BATCH_LIMIT_HEADER` header (:func:`batch_limit`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vtwait.core.errors import (
    InvalidRequestError,
    ProtocolError,
    ServerError,
    VideoTranslationError,
)
from vtwait.core.status import describe

__all__ = [
    "BATCH_LIMIT_HEADER",
    "DEFAULT_BATCH_SIZE",
    "BatchStarted",
    "batch_limit",
    "batch_start_body",
    "offers_batch",
    "read_batch_answer",
]

#: Jobs per ``POST /start/batch`` a client sends (the server's default ``MAX_BATCH_START``).
DEFAULT_BATCH_SIZE = 1000
#: Header of a 400 for a batch above the server's cap: the cap.
BATCH_LIMIT_HEADER = "Batch-Limit"
#: Item error codes that mean "the server is busy": a ServerError, as a 429 would be.
_BUSY_CODES = frozenset({"too_many_jobs", "too_many_requests", "service_unavailable"})


@dataclass
class BatchStarted:
    """What one batch answer said, item by item (indexes are the body's)."""

    job_ids: list[str | None]
    failed: dict[int, VideoTranslationError] = field(default_factory=dict)
    documents: dict[int, Mapping[str, Any]] = field(default_factory=dict)


def batch_start_body(bodies: Sequence[Mapping[str, Any] | None],
                     keys: Sequence[str]) -> dict[str, Any]:
    """``{"jobs": [...]}``: each start body with its idempotency key."""
    return {"jobs": [{**(body or {}), "idempotency_key": key}
                     for body, key in zip(bodies, keys, strict=True)]}


def offers_batch(status_code: int) -> bool:
    """Whether an answer to ``POST /start/batch`` comes from a server that has the route."""
    return status_code not in (404, 405)


def batch_limit(status_code: int, headers: Mapping[str, str]) -> int | None:
    """The server's cap named by a 400 refusal of a batch too large, else None."""
    raw = headers.get(BATCH_LIMIT_HEADER) if status_code == 400 else None
    if raw is None or not raw.strip().isdigit():
        return None
    limit = int(raw.strip())
    return limit if limit >= 1 else None


def read_batch_answer(document: Any, *, count: int) -> BatchStarted:
    """The job ids (or errors) of a ``POST /start/batch`` answer of ``count`` items.

    Raises:
        ProtocolError: the answer is not ``{"jobs": [...]}`` with ``count`` entries.
    """
    items = document.get("jobs") if isinstance(document, Mapping) else None
    if not isinstance(items, list) or len(items) != count:
        raise ProtocolError(f"the batch start answer is not {count} jobs: {describe(document)}")
    started = BatchStarted(job_ids=[None] * count)
    for index, item in enumerate(items):
        job_id = item.get("job_id") if isinstance(item, Mapping) else None
        if isinstance(job_id, str) and job_id:
            started.job_ids[index] = job_id
            started.documents[index] = item
            continue
        error = item.get("error") if isinstance(item, Mapping) else None
        if not isinstance(error, Mapping):
            started.failed[index] = ProtocolError(
                f"batch start item {index} names no job and no error: {describe(item)}")
            continue
        code, message = str(error.get("code", "")), str(error.get("message", ""))
        text = f"batch start item {index}: {code}: {message}"
        started.failed[index] = (ServerError(text, status_code=429) if code in _BUSY_CODES
                                 else InvalidRequestError(text, status_code=400))
    return started
