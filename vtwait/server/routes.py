"""The API's routes, as one Flask Blueprint (``api``): start, status, cancel, health, openapi.

Each view reads the app's parts through :func:`~vtwait.server.state.current_state`; the app
factory (``app.py``) registers the blueprint and adds the hooks and error handlers. Request
parsing lives here too: the ``POST /start`` body, ``?wait=N`` and ``Prefer: wait=N``. All
durations are in seconds.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import math
import re
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

import vtwait.server.deadlines as deadlines
import vtwait.server.webhooks as webhooks
from vtwait.server.admin.scripts import Script, ScriptBook, ScriptError
from vtwait.server.errors import ApiError
from vtwait.server.lean import json_response
from vtwait.server.settings import Settings
from vtwait.server.start_body import check_unknown_keys
from vtwait.server.state import current_state
from vtwait.server.stores.base import JOB_ID_RE, JobPhase, JobResult, StoreFullError

try:  # optional: without PyYAML, /openapi.json is a 404 and /openapi.yaml still answers
    import yaml
except ImportError:  # pragma: no cover - PyYAML is installed wherever the tests run
    yaml = None  # type: ignore[assignment]

__all__ = ["MAX_CONTENT_LENGTH", "MAX_START_DELAY", "OPEN_ENDPOINTS", "OPENAPI_RESOURCE", "api"]

#: The API description served at ``/openapi.yaml`` and ``/openapi.json``: package data beside
#: this module (read with importlib.resources, so it is found in an installed package too).
OPENAPI_RESOURCE = "openapi.yaml"
#: Largest accepted request body.
MAX_CONTENT_LENGTH = 64 * 1024
#: Largest ``delay`` accepted by ``POST /start``: one day.
MAX_START_DELAY = 86400.0

api = Blueprint("api", __name__)

#: Endpoints that answer without credentials (readiness checks, the API description).
OPEN_ENDPOINTS = frozenset({"api.healthz", "metrics", "api.openapi", "api.openapi_yaml",
                            "outputs.download"})  # a signed output URL is its own credential

_IDEMPOTENCY_KEY_RE = re.compile(r"[A-Za-z0-9_:.-]{1,255}")
# A wait is plain decimal digits: no sign, exponent, "_", "inf" or "nan" (float() takes them all).
_WAIT_RE = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_START_KEYS = frozenset({"delay", "outcome", "callback_url", "callback_id", "script",
                         "cancel_after"})


@api.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@api.get("/openapi.yaml")
def openapi_yaml() -> Response:
    text = _openapi_text()
    if text is None:
        raise ApiError(404, "not_found", f"no {OPENAPI_RESOURCE} beside the server")
    return Response(text, 200, mimetype="application/yaml")


@api.get("/openapi.json")
def openapi() -> Response:
    if yaml is None:
        raise ApiError(404, "not_found", "/openapi.json needs PyYAML; see /openapi.yaml")
    document = _openapi_document()
    if document is None:
        raise ApiError(404, "not_found", f"no {OPENAPI_RESOURCE} beside the server")
    return jsonify(document)


@api.post("/start")
def start() -> Response:
    state = current_state()
    settings = state.settings
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise ApiError(
            400, "bad_request", "Idempotency-Key must be 1 to 255 characters of [A-Za-z0-9_:.-]"
        )
    # Issue 16: read before the job exists, so that a bad value starts nothing.
    hold = None if settings.plain else _start_hold()
    raw = _read_body()
    if settings.plain:
        deadlines.refuse_key(raw)
    cancel_after = None if settings.plain else deadlines.requested_cancel_after(
        request.headers.get("Cancel-After"), raw)
    delay, outcome, callback_url, callback_id = _parse_start_body(raw, settings.webhook_hosts)
    script = None if state.admin is None else _start_script(state.admin.scripts, raw)
    if script is not None:  # a scripted job: its timeline fixes the duration and the result
        delay, outcome = script.delay, script.outcome
    try:
        doc, created = state.store.start(delay=delay, outcome=outcome, idempotency_key=key,
                                         callback_url=callback_url, callback_id=callback_id,
                                         cancel_after=cancel_after)
    except StoreFullError as exc:
        raise ApiError(
            429,
            "too_many_jobs",
            f"{settings.max_jobs} live jobs already; retry later",
            headers={"Retry-After": str(exc.retry_after)},
        ) from exc
    if script is not None and created and state.admin is not None:
        state.admin.scripts.attach(doc["job_id"], script)
    applied = None
    if hold is not None and doc["result"] == JobResult.PENDING.value:
        # Prefer: wait (RFC 7240): hold the start like a long-poll; a replay waits on its job.
        with state.metrics.holding():
            final, held = state.store.wait(doc["job_id"], hold)
        if final is not None:
            doc = final
        applied = hold if held or doc["result"] != JobResult.PENDING.value else None
    elif hold is not None:
        applied = hold  # already final: the preference is met without a hold
    final_now = applied is not None and doc["result"] != JobResult.PENDING.value
    response = _status_answer(doc, settings, 201 if created and not final_now else 200)
    response.headers["Location"] = f"/status/{doc['job_id']}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    if applied is not None:
        response.headers["Preference-Applied"] = f"wait={_format_seconds(applied)}"
    return response


def _start_hold() -> float | None:
    """The hold ``Prefer: wait=N`` asks of ``POST /start``, capped by MAX_WAIT; None for none."""
    prefer = _prefer_wait(request.headers.getlist("Prefer"))
    if prefer is None:
        return None
    seconds = min(_parse_wait(prefer, "Prefer: wait"), current_state().settings.max_wait)
    return seconds if seconds > 0 else None


@api.get("/status")
def status_default() -> Response:
    job_id = request.args.get("job_id")
    return _status((current_state().store.default_job_id or "") if job_id is None else job_id)


@api.get("/status/<job_id>")
def status_job(job_id: str) -> Response:
    return _status(job_id)


@api.post("/status/<job_id>/cancel")
def cancel_job(job_id: str) -> Response:
    state = current_state()
    doc = state.store.cancel(job_id) if JOB_ID_RE.fullmatch(job_id) else None
    if doc is None:
        raise ApiError(404, "not_found", f"no job {job_id}"[:200])
    return _status_answer(doc, state.settings, 200 if doc["phase"] == JobPhase.CANCELED else 409)


def _status(job_id: str) -> Response:
    state = current_state()
    settings = state.settings
    wait = None if settings.plain else _requested_wait()
    if not JOB_ID_RE.fullmatch(job_id):
        raise ApiError(404, "not_found", "no such job")
    held = False
    if wait is not None and wait > 0:
        wait = min(wait, settings.max_wait)
        with state.metrics.holding():
            doc, held = state.store.wait(job_id, wait)
    else:
        doc = state.store.status(job_id)
    if doc is None:
        raise ApiError(404, "not_found", f"no job {job_id}")
    response = _status_answer(doc, settings, 200)
    if held and wait is not None:
        response.headers["Preference-Applied"] = f"wait={_format_seconds(wait)}"
    return response


def answer_document(doc: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A store's status document as the API shows it: a scripted job's phase and progress, no
    ETA when PLAIN, a completed job's signed output URL."""
    state = current_state()
    if state.admin is not None:  # a scripted job shows its timeline's phase and progress
        doc = state.admin.scripts.overlay(doc)
    if settings.plain:
        doc.pop("eta_seconds", None)
    if state.outputs is not None and doc.get("phase") == "completed":
        state.outputs.attach(doc, request.host_url)  # host_url costs: only for an output
    return doc


def start_options(raw: bytes, settings: Settings) -> tuple[float | None, Script | None]:
    """What a start body asks beyond delay and outcome: its deadline (``cancel_after``; the
    ``Cancel-After`` header is the single start's own) and its script. Raises ApiError."""
    state = current_state()
    if settings.plain:
        deadlines.refuse_key(raw)
    cancel_after = None if settings.plain else deadlines.requested_cancel_after(None, raw)
    script = None if state.admin is None else _start_script(state.admin.scripts, raw)
    return cancel_after, script


def _status_answer(doc: dict[str, Any], settings: Settings, status: int) -> Response:
    """The status document as a response, with hints on a pending job unless PLAIN."""
    doc = answer_document(doc, settings)
    eta = doc.get("eta_seconds")
    response = json_response(doc, status)  # jsonify's bytes, without its provider (issue 19)
    if eta is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(eta)))
    return response


def _start_script(book: ScriptBook, raw: bytes) -> Script | None:
    """The start's script (its body's ``script``, else one set by ``POST /_admin/scripts``)."""
    try:
        return book.script_for(raw)
    except ScriptError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None


def _read_body() -> bytes:
    """The request body, at most MAX_CONTENT_LENGTH bytes, else a 413 (chunked bodies too).

    werkzeug checks a Content-Length against the limit, but cuts a chunked body at the limit
    without a word, and a cut body may still parse; so a chunked body is read here, up to one
    byte past the limit.
    """
    if not request.environ.get("wsgi.input_terminated"):
        return request.get_data(cache=False)  # werkzeug answers 413 to a long Content-Length
    body = read_chunked_body(MAX_CONTENT_LENGTH)
    if body is None:
        raise RequestEntityTooLarge()
    return body


def read_chunked_body(limit: int) -> bytes | None:
    """A chunked request body of at most ``limit`` bytes; None when it is longer (read one byte
    past the limit, no further). Raises ApiError 400 for a malformed chunk."""
    stream = request.environ["wsgi.input"]
    body = bytearray()
    while len(body) <= limit:
        try:
            chunk = stream.read(limit + 1 - len(body))
        except Exception:  # a malformed chunk (each server raises its own), or the client left
            raise ApiError(400, "bad_request", "malformed chunked body") from None
        if not chunk:
            return bytes(body)
        body += chunk
    return None


def _parse_start_body(
    raw: bytes, allowed_hosts: frozenset[str]
) -> tuple[float | None, JobResult | None, str | None, str | None]:
    """Reads ``{"delay": s, "outcome": ..., "callback_url": ..., "callback_id": ...}``; an empty
    body fixes none of them."""
    if not raw.strip():
        return None, None, None, None
    try:
        body = json.loads(raw)
    except ValueError:  # also UnicodeDecodeError, and ints longer than Python parses
        raise ApiError(400, "bad_request", "body is not valid JSON") from None
    except RecursionError:  # "[[[[...": deeper than the parser goes
        raise ApiError(400, "bad_request", "body is not valid JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "body must be a JSON object")
    check_unknown_keys(body, _START_KEYS)  # ignored and logged once, or a 400 with STRICT_BODY
    delay = body.get("delay")
    if delay is not None:
        if isinstance(delay, bool) or not isinstance(delay, (int, float)):
            raise ApiError(400, "bad_request", "delay must be a number")
        # Not math.isfinite(): it overflows on ints past 1e308. The comparisons are exact for
        # ints of any size and false for NaN and infinities.
        if not 0 <= delay <= MAX_START_DELAY:
            raise ApiError(400, "bad_request", f"delay must be in [0, {MAX_START_DELAY:g}]")
        delay = float(delay)
    outcome = body.get("outcome")
    if outcome is not None:
        if outcome not in ("completed", "error"):
            raise ApiError(400, "bad_request", 'outcome must be "completed" or "error"')
        outcome = JobResult(outcome)
    try:
        url, callback_id = body.get("callback_url"), body.get("callback_id")
        url = None if url is None else webhooks.validate_callback_url(url, allowed_hosts)
        callback_id = None if callback_id is None else webhooks.validate_callback_id(callback_id)
    except webhooks.CallbackError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    return delay, outcome, url, callback_id


def _requested_wait() -> float | None:
    """The long-poll wait asked by ``?wait=N`` and ``Prefer: wait=N`` (the smaller), or None."""
    waits = []
    # From the WSGI environ (issue 19's lean path): request.args parses the whole query and
    # request.headers walks every header, on each status request, though most ask neither. The
    # server joins repeated Prefer headers into one HTTP_PREFER, as getlist() saw them.
    environ = request.environ
    query = request.args.get("wait") if environ.get("QUERY_STRING") else None
    if query is not None:
        waits.append(_parse_wait(query, "wait"))
    raw_prefer = environ.get("HTTP_PREFER")
    prefer = None if raw_prefer is None else _prefer_wait([raw_prefer])
    if prefer is not None:
        waits.append(_parse_wait(prefer, "Prefer: wait"))
    return min(waits, default=None)


def _prefer_wait(headers: list[str]) -> str | None:
    """The raw value of the first ``wait`` preference (RFC 7240: later ones do not count)."""
    for header in headers:
        for preference in header.split(","):
            token, _, value = preference.split(";", 1)[0].partition("=")
            if token.strip().lower() == "wait":
                return value.strip().strip('"')
    return None


def _parse_wait(raw: str, where: str) -> float:
    seconds = float(raw) if _WAIT_RE.fullmatch(raw) else math.nan
    if not math.isfinite(seconds):
        raise ApiError(400, "bad_request", f"{where} must be a non-negative number of seconds")
    return seconds


def _format_seconds(seconds: float) -> str:
    """``5.0`` as ``5``, ``0.25`` as ``0.25``: how Preference-Applied echoes a wait."""
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


@functools.cache
def _openapi_text() -> str | None:
    """The API description's YAML source, read once; None if the file is missing."""
    try:
        return (importlib.resources.files("vtwait.server") / OPENAPI_RESOURCE).read_text(
            encoding="utf-8")
    except OSError:
        return None


@functools.cache
def _openapi_document() -> dict[str, Any] | None:
    """The API description parsed once (needs PyYAML); None if the file is missing."""
    text = _openapi_text()
    return None if text is None else yaml.safe_load(text)
