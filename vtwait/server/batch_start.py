"""``POST /start/batch``: one request starts many jobs, each with its own answer (issue 19).

Usage::

    curl -X POST http://127.0.0.1:8000/start/batch -H 'Content-Type: application/json' \\
         -d '{"jobs": [{"delay": 5}, {"outcome": "error", "idempotency_key": "k-2"}, {}]}'
    200 {"jobs": [{"job_id": "...", "result": "pending", ...},
                  {"job_id": "...", ...},
                  {"job_id": "...", ...}]}

Each item is what a ``POST /start`` body may hold, plus an optional ``"idempotency_key"`` (the
``Idempotency-Key`` header of a single start: a key already seen answers that key's job again).
Every item is parsed by the single start's own parser, so a key the single start accepts or
refuses is accepted or refused here the same way. The answer holds one entry per item, in order:
the job's status document (as a 201 of ``POST /start`` gives it), or, for an item that failed,
``{"error": {"code": ..., "message": ...}, "index": i}``: a bad item fails alone, the others are
started. The whole request is refused (400) only when it is not ``{"jobs": [...]}`` or holds more
than ``MAX_BATCH_START`` items (its ``Batch-Limit`` header names the cap); the body may be
``MAX_BATCH_START`` KiB (plus the single start's 64 KiB), far above what a single start takes.

Why: starting 10,000 jobs one request each costs the server 10,000 request cycles (parsing,
auth, metrics, logging) before any work; one batch of 1,000 costs ten, so a client starts and
waits for 10,000 jobs in about 20 requests (``docs/server.md``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Response, jsonify, request

from vtwait.core.starts import BATCH_LIMIT_HEADER
from vtwait.server.errors import ApiError, error_body
from vtwait.server.routes import (
    _IDEMPOTENCY_KEY_RE,
    MAX_CONTENT_LENGTH,
    _parse_start_body,
    answer_document,
    read_chunked_body,
    start_options,
)
from vtwait.server.state import AppState, current_state
from vtwait.server.stores.base import StoreFullError

__all__ = ["BATCH_ITEM_BYTES", "batch_body_limit", "start_batch"]

logger = logging.getLogger(__name__)

_encode = json.JSONEncoder().encode
#: Body bytes allowed per item of a batch (beside the single start's ``MAX_CONTENT_LENGTH``).
BATCH_ITEM_BYTES = 1024


def batch_body_limit(max_batch_start: int) -> int:
    """Largest body ``POST /start/batch`` reads, for a cap of ``max_batch_start`` items."""
    return MAX_CONTENT_LENGTH + BATCH_ITEM_BYTES * max_batch_start


def start_batch() -> Response:
    """``POST /start/batch``: starts each item as ``POST /start`` would; 200 with every answer."""
    state = current_state()
    cap = state.settings.max_batch_start
    raw = _read_body(batch_body_limit(cap))
    try:
        body = json.loads(raw) if raw.strip() else None
    except ValueError:
        raise ApiError(400, "bad_request", "body is not valid JSON") from None
    except RecursionError:
        raise ApiError(400, "bad_request", "body is not valid JSON: nested too deeply") from None
    items = body.get("jobs") if isinstance(body, dict) and len(body) == 1 else None
    if not isinstance(items, list):  # {"jobs": [...]} and nothing else
        raise ApiError(400, "bad_request", 'body must be {"jobs": [<start body>, ...]}')
    if len(items) > cap:
        raise ApiError(400, "bad_request",
                       f"at most {cap} jobs per batch (MAX_BATCH_START), got {len(items)}",
                       headers={BATCH_LIMIT_HEADER: str(cap)})  # a client resends smaller ones
    hosts = state.settings.webhook_hosts  # a property that parses the setting: once, not per item
    answers = [_start_item(state, hosts, index, item) for index, item in enumerate(items)]
    failed = sum("error" in answer for answer in answers)
    if failed:
        logger.info("batch start: %d of %d items failed", failed, len(answers))
    response = jsonify({"jobs": answers})
    response.status_code = 200
    return response


def _start_item(state: AppState, hosts: frozenset[str], index: int, item: Any) -> dict[str, Any]:
    """One item's answer: the started (or replayed) job's document, or its error and index."""
    try:
        if not isinstance(item, dict):
            raise ApiError(400, "bad_request", "each job must be a JSON object")
        fields = dict(item)
        key = fields.pop("idempotency_key", None)
        if key is not None and not (isinstance(key, str) and _IDEMPOTENCY_KEY_RE.fullmatch(key)):
            raise ApiError(400, "bad_request",
                           "idempotency_key must be 1 to 255 characters of [A-Za-z0-9_:.-]")
        # The single start's parser, on the item re-encoded (a few microseconds): one set of
        # rules for both routes, whatever keys a start body learns later.
        raw = _encode(fields).encode()
        cancel_after, script = start_options(raw, state.settings)
        delay, outcome, callback_url, callback_id = _parse_start_body(raw, hosts)
        if script is not None:  # a scripted job: its timeline fixes the duration and the result
            delay, outcome = script.delay, script.outcome
        try:
            doc, created = state.store.start(delay=delay, outcome=outcome, idempotency_key=key,
                                             callback_url=callback_url, callback_id=callback_id,
                                             cancel_after=cancel_after)
        except StoreFullError as exc:
            raise ApiError(429, "too_many_jobs",
                           f"{state.settings.max_jobs} live jobs already; retry in "
                           f"{exc.retry_after} s") from exc
    except ApiError as exc:
        return {**error_body(exc.code, exc.message), "index": index}
    if script is not None and created and state.admin is not None:
        state.admin.scripts.attach(doc["job_id"], script)
    return answer_document(doc, state.settings)


def _read_body(limit: int) -> bytes:
    """The request body, at most ``limit`` bytes (a chunked body too), else a 413.

    Read from the WSGI input here, not with ``request.get_data()``: werkzeug holds every route to
    the app's ``MAX_CONTENT_LENGTH``, and a batch may be larger.
    """
    environ = request.environ
    stream = environ["wsgi.input"]
    too_large = ApiError(413, "payload_too_large", f"batch body larger than {limit} bytes")
    if not environ.get("wsgi.input_terminated"):
        length = request.content_length or 0
        if length > limit:
            raise too_large
        return bytes(stream.read(length)) if length else b""
    body = read_chunked_body(limit)
    if body is None:
        raise too_large
    return body
