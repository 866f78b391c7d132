"""``GET /jobs`` (the live jobs, newest first, a page at a time) and ``DELETE /jobs/<id>``.

A page is ``{"jobs": [<status documents>], "next_cursor": <str|null>}``; with a next page, the
answer also carries ``Link: <...>; rel="next"``. Jobs sort by creation time, then id, newest
first, and a cursor is the position after the page's last job: a job started between two pages
sorts before the first page, so a listing neither repeats nor loses a job that lives through it.
Filters: ``result`` and ``phase``; ``limit`` is 1 to :data:`MAX_LIMIT` (default
:data:`DEFAULT_LIMIT`). A filtered page looks at no more than ``limit +``
:data:`~vtwait.server.stores.base.LIST_SCAN_BUDGET` jobs, so it may hold fewer than ``limit``
jobs and still give a cursor; an unfiltered page costs O(limit) (Redis: O(log n + limit)).

A cursor is opaque: the position and an HMAC-SHA256 tag (the key that signs output URLs), so a
cursor from another server, or an edited one, is a 400 naming ``cursor``, not a wrong page.
``DELETE /jobs/<id>`` forgets a finished job at once (204), as its ``JOB_TTL`` would; a job still
queued or running is a 409 with its document, as is the server's default job (never forgotten).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import urllib.parse

from flask import Blueprint, Response, jsonify, request

from vtwait.server.errors import ApiError
from vtwait.server.state import AppState, current_state
from vtwait.server.stores.base import JOB_ID_RE, JobPhase, JobResult

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "decode_cursor", "encode_cursor", "listing_api"]

#: Jobs per page when ``limit`` is not given, and the most a page may ask for.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

_TAG_BYTES = 16
_POSITION_RE = re.compile(r"[0-9]{16}:[A-Za-z0-9_-]{1,128}")
_LIMIT_RE = re.compile(r"[0-9]{1,4}")
_RESULTS = frozenset(result.value for result in JobResult)
_PHASES = frozenset(phase.value for phase in JobPhase)

listing_api = Blueprint("listing", __name__)


def encode_cursor(position: str, secret: bytes) -> str:
    """The opaque cursor of a listing position: base64url of the position and its tag."""
    raw = position.encode()
    tag = hmac.new(secret, b"cursor:" + raw, hashlib.sha256).digest()[:_TAG_BYTES]
    return base64.urlsafe_b64encode(tag + raw).decode().rstrip("=")


def decode_cursor(cursor: str, secret: bytes) -> str:
    """The listing position a cursor names.

    Raises:
        ApiError: 400 naming ``cursor``: not one this server gave (malformed, edited, foreign).
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (ValueError, binascii.Error):
        raw = b""
    tag, position = raw[:_TAG_BYTES], raw[_TAG_BYTES:]
    expected = hmac.new(secret, b"cursor:" + position, hashlib.sha256).digest()[:_TAG_BYTES]
    if len(cursor) > 400 or not position or not hmac.compare_digest(tag, expected):
        raise ApiError(400, "bad_request", "cursor is not one this server gave (take next_cursor "
                       "from the previous page as it is)")
    text = position.decode("ascii", "replace")
    if not _POSITION_RE.fullmatch(text):
        raise ApiError(400, "bad_request", "cursor is malformed")
    return text


@listing_api.get("/jobs")
def list_jobs() -> Response:
    state = _lifecycle_state()
    args = request.args
    limit = _limit(args.get("limit"))
    result, phase = args.get("result"), args.get("phase")
    if result is not None and result not in _RESULTS:
        raise ApiError(400, "bad_request", f"result must be one of {', '.join(sorted(_RESULTS))}")
    if phase is not None and phase not in _PHASES:
        raise ApiError(400, "bad_request", f"phase must be one of {', '.join(sorted(_PHASES))}")
    secret = state.signing_secret or b""
    cursor = args.get("cursor")
    before = None if cursor is None else decode_cursor(cursor, secret)
    docs, position = state.store.list_jobs(limit=limit, before=before, result=result, phase=phase)
    base = request.host_url
    if state.outputs is not None:
        docs = [state.outputs.attach(doc, base) for doc in docs]
    for doc in docs:
        if state.settings.plain:
            doc.pop("eta_seconds", None)
    next_cursor = None if position is None else encode_cursor(position, secret)
    response = jsonify({"jobs": docs, "next_cursor": next_cursor})
    if next_cursor is not None:
        query = {"limit": str(limit), "cursor": next_cursor}
        query.update({k: v for k, v in (("result", result), ("phase", phase)) if v is not None})
        response.headers["Link"] = (f"<{request.base_url}?{urllib.parse.urlencode(query)}>; "
                                    'rel="next"')
    return response


@listing_api.delete("/jobs/<job_id>")
def delete_job(job_id: str) -> Response:
    state = _lifecycle_state()
    outcome, doc = state.store.delete(job_id) if JOB_ID_RE.fullmatch(job_id) else ("unknown", None)
    if outcome == "deleted":
        return Response(status=204)
    if doc is None:
        raise ApiError(404, "not_found", f"no job {job_id}"[:200])
    response = jsonify(doc)
    response.status_code = 409
    return response


def _lifecycle_state() -> AppState:
    state = current_state()
    if state.signing_secret is None:  # PLAIN: the server as it was before job listing
        raise ApiError(404, "not_found", "no such route")
    return state


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not _LIMIT_RE.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, "bad_request", f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)

