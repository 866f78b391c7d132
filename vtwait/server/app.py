"""A mock video-translation backend: jobs that take a while, and a status API to poll them.

Usage::

    python server.py --port 8000                      # serve on http://127.0.0.1:8000
    curl -X POST http://127.0.0.1:8000/start          # 201 {"job_id": ..., "result": "pending"}
    curl "http://127.0.0.1:8000/status/<job_id>?wait=10"  # long-poll until the job is final

Routes:

* ``POST /start`` starts a job and answers 201 with its status document. Optional: a JSON body
  ``{"delay": s, "outcome": "completed" | "error"}``, an ``Idempotency-Key`` header.
* ``GET /status/<job_id>`` (or ``GET /status?job_id=<id>``) answers the job's status document;
  ``GET /status`` answers the server's default job, started with the server and never evicted.
* ``POST /status/<job_id>/cancel`` cancels a queued or running job (200 with the final document;
  409 with the document of a job that had already ended); ``DELETE /status/<id>`` is a 405.
* ``GET /healthz`` answers ``{"status": "ok"}``, without authentication.
* ``GET /metrics`` answers Prometheus metrics (``metrics.py``), without authentication.
* ``GET /events`` is the job event stream (Server-Sent Events; ``event_stream.py``).
* ``GET /openapi.yaml`` and ``GET /openapi.json`` answer the API description (``openapi.yaml``
  beside this module), without authentication; the JSON form needs PyYAML, else it is a 404.

A pending answer carries hints: ``Retry-After`` and ``eta_seconds``. ``?wait=N`` or
``Prefer: wait=N`` holds the request until the job is final or N seconds pass (long-poll).
Every error is JSON:
``{"error": {"code": "not_found", "message": "..."}}``. All durations are in seconds.

Settings come from the environment, then a ``.env`` file next to this module, then defaults;
command line flags override all three (``python server.py --help`` lists them).

Exceptions::

    ConfigError(ValueError)      a setting is invalid; the message names it
    StoreFullError(RuntimeError) MAX_JOBS live jobs already; carries retry_after
    ApiError(Exception)          an error answer: HTTP status, code, message, headers
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import functools
import hmac
import json
import logging
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.serving import WSGIRequestHandler, make_server

import vtwait.server.ratelimit as rate_limits
import vtwait.server.webhooks as webhooks
from vtwait.server.events import register_event_stream
from vtwait.server.stores.base import (
    FINAL_RESULTS,
    JOB_ERROR_MESSAGE,
    JobPhase,
    JobResult,
    JobStore,
    StoreFullError,
    StoreUnavailableError,
    check_store,
    open_store,
)
import vtwait.server.metrics as metrics
import vtwait.server.serving as serving
from vtwait.server.settings import DEFAULT_ENV_FILE, OPTIONS, ConfigError, Settings, mask_url

try:  # optional: without PyYAML, /openapi.json is a 404 and /openapi.yaml still answers
    import yaml
except ImportError:  # pragma: no cover - PyYAML is installed wherever the tests run
    yaml = None  # type: ignore[assignment]

__all__ = [
    "ApiError",
    "ConfigError",
    "FINAL_RESULTS",
    "JOB_ERROR_MESSAGE",
    "JobResult",
    "JobStore",
    "Settings",
    "StoreFullError",
    "create_app",
    "main",
]

logger = logging.getLogger(__name__)

PROG = "server.py"
#: The API description served at ``/openapi.yaml`` and ``/openapi.json``.
OPENAPI_FILE = Path(__file__).resolve().with_name("openapi.yaml")
#: Largest accepted request body.
MAX_CONTENT_LENGTH = 64 * 1024
#: Largest ``delay`` accepted by ``POST /start``: one day.
MAX_START_DELAY = 86400.0
#: Longest silence of a connection (no request, or a request that stops mid-way) before it is
#: closed; a held long-poll is not silence, the server is the one waiting then.
REQUEST_TIMEOUT = 30.0
#: What ``python server.py`` prints once it listens (ServerProcess reads it back).
LISTENING_LINE = "Listening on {url} (Ctrl+C to stop)"
#: What ``python server.py`` prints once, before it listens, when WEBHOOK_SECRET is unset.
WEBHOOK_SECRET_LINE = "Webhook signing secret for this run (set WEBHOOK_SECRET to fix it): "
#: Realm named in ``WWW-Authenticate``.
REALM = "video-translation"
#: Body of a ``FAULT_GARBAGE`` answer: what a misbehaving proxy might send.
GARBAGE_BODY = "<html>upstream garbage</html>"

_JOB_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_IDEMPOTENCY_KEY_RE = re.compile(r"[A-Za-z0-9_:.-]{1,255}")
# A wait is plain decimal digits: no sign, exponent, "_", "inf" or "nan" (float() takes them all).
_WAIT_RE = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_DIGITS_RE = re.compile(r"[0-9]+")
_LISTENING_RE = re.compile(re.escape(LISTENING_LINE).replace(r"\{url\}", r"(https?://\S+)"))
_START_KEYS = frozenset({"delay", "outcome", "callback_url", "callback_id"})
# Endpoints that answer without credentials (readiness checks, the API description).
_OPEN_ENDPOINTS = frozenset({"healthz", "metrics", "openapi", "openapi_yaml"})
_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    414: "uri_too_long",
    429: "too_many_requests",
    431: "request_header_fields_too_large",
    500: "internal_error",
    503: "service_unavailable",
    505: "http_version_not_supported",
}
# Messages of the errors answered by the HTTP layer, before the app sees a request.
_RAW_ERROR_MESSAGES = {
    400: "malformed HTTP request",
    414: "request line longer than 65536 bytes",
    431: "too many header fields, or one longer than 65536 bytes",
    505: "only HTTP/1.0 and HTTP/1.1 are served",
}


# --- exceptions -------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answered as ``{"error": {"code": ..., "message": ...}}`` with an HTTP status."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


# --- HTTP -------------------------------------------------------------------------------------


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    start_worker: bool = True,
) -> Flask:
    """Builds the Flask app with its own job store and starts the default job.

    Args:
        settings: the behaviour; ``None`` reads ``Settings.from_env()``.
        clock: monotonic seconds for the memory store (tests pass a fake one).
        wall_clock: Unix seconds for ``created_at`` / ``finished_at``; the Redis store's only clock.
        start_worker: start the timer thread; tests with a fake clock pass ``False`` and call
            ``app.extensions["job_store"].process_due()`` instead.

    Returns:
        The app. Its store is ``app.extensions["job_store"]``; call its ``shutdown()`` when done.

    Raises:
        StoreUnavailableError: ``JOB_STORE`` names a Redis that cannot be reached.
    """
    settings = Settings.from_env() if settings is None else settings
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    app.json.sort_keys = False  # type: ignore[attr-defined]
    store = open_store(settings, clock=clock, wall_clock=wall_clock)
    app.extensions["job_store"] = store
    app.extensions["video_translation"] = store
    found = metrics.install(app, store)  # before the default job, so that it is counted
    # Seeded like the job store but a separate stream, so faults do not shift job outcomes.
    fault_rng = random.Random(None if settings.seed is None else f"faults:{settings.seed}")
    if (settings.api_username is None) != (settings.api_password is None):
        logger.warning("only one of API_USERNAME / API_PASSWORD is set: authentication is OFF")
    store.start(default=True)
    if start_worker:
        store.start_worker()
    secret = settings.webhook_secret
    if secret is None:  # main() passes the one it printed; an app built otherwise makes its own
        secret = webhooks.generate_secret()
        logger.info("WEBHOOK_SECRET is unset: this app signs webhooks with a generated secret, "
                    "app.extensions['webhook_secret'] (python server.py prints it)")
    sender = webhooks.WebhookSender(
        secret, max_attempts=settings.webhook_max_attempts, timeout=settings.webhook_timeout,
        retry_delay=settings.webhook_retry_delay)
    store.add_listener(sender.on_event)
    app.extensions["webhooks"] = sender
    app.extensions["webhook_secret"] = secret
    limiter = None
    if settings.rate_limit:
        limiter = rate_limits.install(app, settings.rate_limit, settings.rate_capacity, clock=clock)
    register_event_stream(app, store, settings)

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.before_request
    def _authenticate() -> None:
        needs_auth = settings.auth_enabled and request.endpoint not in _OPEN_ENDPOINTS
        authenticated = settings.auth_enabled and _credentials_ok(
            request.headers.get("Authorization"), settings)
        if limiter is not None:  # charged before a 401, so guessing passwords is rate-limited too
            limiter.admit(f"user:{settings.api_username}" if authenticated
                          else f"addr:{request.remote_addr}")
        if needs_auth and not authenticated:
            logger.warning("authentication failed for %s %s", request.method, request.path)
            raise ApiError(
                401,
                "unauthorized",
                "valid HTTP Basic credentials required",
                headers={"WWW-Authenticate": f'Basic realm="{REALM}"'},
            )

    @app.after_request
    def _log_request(response: Response) -> Response:
        path = request.path
        if request.query_string:
            path += "?" + request.query_string.decode("latin-1")
        status = "dropped" if g.get("dropped") else response.status_code
        elapsed_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        logger.info("%s %s %s %.1fms", request.method, path, status, elapsed_ms)
        if request.endpoint != "healthz" and response.mimetype == "application/json":
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return _error_response(error.status, error.code, error.message, error.headers)

    @app.errorhandler(StoreUnavailableError)
    def _store_unavailable(error: StoreUnavailableError) -> Response:
        logger.warning("%s %s: %s", request.method, request.path, error)
        headers = {"Retry-After": str(error.retry_after)}
        return _error_response(503, "service_unavailable", "job store unavailable; retry later", headers)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        response = cast(Response, error.get_response())  # keeps headers such as Allow on a 405
        code = error.code or 500
        messages = {
            404: "no such route",
            405: f"method {request.method} not allowed here" + (
                "; cancel a job with POST /status/<job_id>/cancel"
                if request.method == "DELETE" and request.path.startswith("/status") else ""),
            413: f"request body larger than {MAX_CONTENT_LENGTH} bytes",
        }
        message = messages.get(code, error.description or error.name)
        body = _error_body(_error_code(error), message)
        response.set_data(json.dumps(body, separators=(",", ":")))
        response.mimetype = "application/json"
        return response

    @app.errorhandler(Exception)
    def _unexpected_error(error: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return _error_response(500, "internal_error", "internal server error")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/openapi.yaml")
    def openapi_yaml() -> Response:
        text = _openapi_text(OPENAPI_FILE)
        if text is None:
            raise ApiError(404, "not_found", f"no {OPENAPI_FILE.name} beside the server")
        return Response(text, 200, mimetype="application/yaml")

    @app.get("/openapi.json")
    def openapi() -> Response:
        if yaml is None:
            raise ApiError(404, "not_found", "/openapi.json needs PyYAML; see /openapi.yaml")
        document = _openapi_document(OPENAPI_FILE)
        if document is None:
            raise ApiError(404, "not_found", f"no {OPENAPI_FILE.name} beside the server")
        return jsonify(document)

    @app.post("/start")
    def start() -> Response:
        key = request.headers.get("Idempotency-Key")
        if key is not None and not _IDEMPOTENCY_KEY_RE.fullmatch(key):
            raise ApiError(
                400, "bad_request", "Idempotency-Key must be 1 to 255 characters of [A-Za-z0-9_:.-]"
            )
        delay, outcome, callback_url, callback_id = _parse_start_body(
            _read_body(), settings.webhook_hosts)
        try:
            doc, created = store.start(delay=delay, outcome=outcome, idempotency_key=key,
                                       callback_url=callback_url, callback_id=callback_id)
        except StoreFullError as exc:
            raise ApiError(
                429,
                "too_many_jobs",
                f"{settings.max_jobs} live jobs already; retry later",
                headers={"Retry-After": str(exc.retry_after)},
            ) from exc
        response = _status_answer(doc, settings, 201 if created else 200)
        response.headers["Location"] = f"/status/{doc['job_id']}"
        if not created:
            response.headers["Idempotent-Replayed"] = "true"
        return response

    @app.get("/status")
    def status_default() -> Response:
        job_id = request.args.get("job_id")
        return _status((store.default_job_id or "") if job_id is None else job_id)

    @app.get("/status/<job_id>")
    def status_job(job_id: str) -> Response:
        return _status(job_id)

    @app.post("/status/<job_id>/cancel")
    def cancel_job(job_id: str) -> Response:
        doc = store.cancel(job_id) if _JOB_ID_RE.fullmatch(job_id) else None
        if doc is None:
            raise ApiError(404, "not_found", f"no job {job_id}"[:200])
        return _status_answer(doc, settings, 200 if doc["phase"] == JobPhase.CANCELED else 409)

    def _status(job_id: str) -> Response:
        fault = _inject_fault(settings, fault_rng)
        if fault is not None:
            return fault
        wait = None if settings.plain else _requested_wait()
        if not _JOB_ID_RE.fullmatch(job_id):
            raise ApiError(404, "not_found", "no such job")
        held = False
        if wait is not None and wait > 0:
            wait = min(wait, settings.max_wait)
            with found.holding():
                doc, held = store.wait(job_id, wait)
        else:
            doc = store.status(job_id)
        if doc is None:
            raise ApiError(404, "not_found", f"no job {job_id}")
        response = _status_answer(doc, settings, 200)
        if held and wait is not None:
            response.headers["Preference-Applied"] = f"wait={_format_seconds(wait)}"
        return response

    return app


def _status_answer(doc: dict[str, Any], settings: Settings, status: int) -> Response:
    """The status document as a response, with hints on a pending job unless PLAIN."""
    if settings.plain:
        doc.pop("eta_seconds", None)
    eta = doc.get("eta_seconds")
    response = jsonify(doc)
    response.status_code = status
    if eta is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(eta)))
    return response


def _credentials_ok(header: str | None, settings: Settings) -> bool:
    """Checks an ``Authorization: Basic`` header in constant time; any malformed header fails."""
    if not header:
        return False
    scheme, _, param = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, sep, password = base64.b64decode(param.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeError):  # binascii.Error is a ValueError
        return False
    # Compare both, always: stopping at a wrong user would tell an attacker it was wrong.
    user_ok = hmac.compare_digest(user.encode(), (settings.api_username or "").encode())
    password_ok = hmac.compare_digest(password.encode(), (settings.api_password or "").encode())
    return bool(sep) & user_ok & password_ok


def _read_body() -> bytes:
    """The request body, at most MAX_CONTENT_LENGTH bytes, else a 413 (chunked bodies too).

    werkzeug checks a Content-Length against the limit, but cuts a chunked body at the limit
    without a word, and a cut body may still parse; so a chunked body is read here, up to one
    byte past the limit.
    """
    if not request.environ.get("wsgi.input_terminated"):
        return request.get_data(cache=False)  # werkzeug answers 413 to a long Content-Length
    stream = request.environ["wsgi.input"]
    body = bytearray()
    while len(body) <= MAX_CONTENT_LENGTH:
        try:
            chunk = stream.read(MAX_CONTENT_LENGTH + 1 - len(body))
        except Exception:  # a malformed chunk (each server raises its own), or the client left
            raise ApiError(400, "bad_request", "malformed chunked body") from None
        if not chunk:
            return bytes(body)
        body += chunk
    raise RequestEntityTooLarge()


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
    unknown = sorted(set(body) - _START_KEYS)
    if unknown:
        raise ApiError(400, "bad_request", f"unknown keys in body: {', '.join(unknown)}")
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
    query = request.args.get("wait")
    if query is not None:
        waits.append(_parse_wait(query, "wait"))
    prefer = _prefer_wait(request.headers.getlist("Prefer"))
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


def _inject_fault(settings: Settings, rng: random.Random) -> Response | None:
    """Plays the faults configured for status requests; returns the faulty answer, if any.

    Raises:
        ApiError: an injected 503 or 429.
    """
    if not (settings.fault_latency or settings.fault_drop or settings.fault_503
            or settings.fault_429 or settings.fault_garbage):
        return None  # the usual case: nothing to format or draw on the hot path
    where = f"{request.method} {request.path}"
    if settings.fault_latency > 0:
        logger.warning("fault: %.3f s of extra latency on %s", settings.fault_latency, where)
        time.sleep(settings.fault_latency)
    retry_soon = {"Retry-After": "1"}
    if settings.fault_drop and rng.random() < settings.fault_drop:
        sock = request.environ.get("werkzeug.socket") or request.environ.get("gunicorn.socket")
        if sock is None:  # not served over a socket (e.g. app.test_client()): nothing to drop
            logger.warning("fault: no socket to drop on %s; answering 503 instead", where)
            raise ApiError(503, "service_unavailable", "injected fault: drop", headers=retry_soon)
        logger.warning("fault: dropping the connection of %s", where)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        # The server's write of this answer now fails with BrokenPipeError, which werkzeug and
        # gunicorn treat as a client that went away: no traceback, and the server keeps serving.
        g.dropped = True
        return Response(status=500)
    if settings.fault_503 and rng.random() < settings.fault_503:
        logger.warning("fault: 503 on %s", where)
        raise ApiError(
            503, "service_unavailable", "injected fault: unavailable", headers=retry_soon
        )
    if settings.fault_429 and rng.random() < settings.fault_429:
        logger.warning("fault: 429 on %s", where)
        raise ApiError(429, "too_many_requests", "injected fault: rate limited", headers=retry_soon)
    if settings.fault_garbage and rng.random() < settings.fault_garbage:
        logger.warning("fault: garbage body on %s", where)
        return Response(GARBAGE_BODY, 200, mimetype="text/html")
    return None


@functools.cache
def _openapi_text(path: Path) -> str | None:
    """The API description's YAML source, read once; None if the file is missing."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


@functools.cache
def _openapi_document(path: Path) -> dict[str, Any] | None:
    """The API description parsed once (needs PyYAML); None if the file is missing."""
    text = _openapi_text(path)
    return None if text is None else yaml.safe_load(text)


class _RequestHandler(WSGIRequestHandler):
    """werkzeug's request handler, with JSON error bodies from the HTTP layer and an idle timeout.

    Requests that never reach the app (a request line that is not HTTP, one over 64 KiB, too many
    or too long header fields, HTTP/2) are answered by ``http.server``'s ``send_error``, which
    writes an HTML page, and no status line at all when the request line had no version. Here they
    get a status line and the API's JSON error body. ``timeout`` closes a connection that stays
    silent for REQUEST_TIMEOUT seconds, so one that connects and sends nothing does not hold a
    thread forever.
    """

    timeout = REQUEST_TIMEOUT

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Nothing: the app logs one line per request itself, and werkzeug's line (formatted even
        when its logger drops it) would cost each request a date format and a URL decode."""

    def parse_request(self) -> bool:
        """http.server's parsing, minus HTTP/0.9, with the body's framing checked (RFC 9112 6)."""
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":  # "GET /path" with no version: an answer would
            self.send_error(400, "HTTP/0.9 request")  # have no status line, so refuse it
            return False
        # werkzeug would read an invalid length, or a coding other than chunked, as "no body"
        # and act on a request it misread.
        lengths = self.headers.get_all("Content-Length") or []
        if len(set(lengths)) > 1 or not all(_DIGITS_RE.fullmatch(v.strip()) for v in lengths):
            self.send_error(400, f"bad Content-Length {lengths!r}")
            return False
        codings = [coding.strip().lower() for value in self.headers.get_all("Transfer-Encoding", [])
                   for coding in value.split(",")]
        if codings and codings[-1] != "chunked":
            self.send_error(400, f"Transfer-Encoding {codings!r} does not end in chunked")
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The message may quote the client's bytes; logged cut short, never echoed back.
        logger.warning("malformed request from %s: %d %.200s", self.client_address[0], code,
                       message or "")
        if self.request_version == "HTTP/0.9":  # http.server's default before it read a version
            self.request_version = "HTTP/1.0"
        error = _error_body(_ERROR_CODES.get(code, "bad_request"),
                            _RAW_ERROR_MESSAGES.get(code, "malformed HTTP request"))
        body = json.dumps(error, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command != "HEAD":
            self.wfile.write(body)


def _error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    response = jsonify(_error_body(code, message))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _error_code(error: HTTPException) -> str:
    code = error.code or 500
    return _ERROR_CODES.get(code) or re.sub(r"\W+", "_", error.name.lower()).strip("_")


def _format_seconds(seconds: float) -> str:
    """``5.0`` as ``5``, ``0.25`` as ``0.25``: how Preference-Applied echoes a wait."""
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


# --- command line -----------------------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Mock video-translation server: POST /start, GET /status[/<id>], GET /healthz.",
        epilog=(
            "Each setting is also read from the environment and from a .env file next to the "
            "server (the environment wins; flags win over both). Credentials come only from "
            "the environment or .env, never from flags (they would show in `ps`): "
            "API_USERNAME, API_PASSWORD, and JOB_STORE (memory, or a redis:// URL that may carry "
            "a password). A bad setting exits with status 2."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port, 0 for any (default 8000)")
    parser.add_argument("--env-file", help="read settings from this file (default: .env beside it)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="worker processes (default 1; more needs a shared job store)")
    parser.add_argument("--dev-server", action="store_true",
                        help="serve with werkzeug's threaded development server instead of "
                             "gunicorn + gevent (a thread per connection; for comparison)")
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    for option in OPTIONS:
        if not option.flag:
            continue
        flag = "--" + option.env.lower().replace("_", "-")
        default = defaults[option.env.lower()]
        shown = "unset" if default is None else ("off" if default is False else (
            default if isinstance(default, str) else f"{default:g}"))
        help_text = f"{option.help} (env {option.env}; default {shown})"
        kind: dict[str, Any]
        if option.kind == "bool":
            kind = {"action": argparse.BooleanOptionalAction}
        else:
            text = "PATH" if option.env.endswith("_FILE") else "TEXT"
            kind = {"metavar": {"float": "NUMBER", "int": "INT", "str": text}[option.kind]}
        parser.add_argument(flag, dest=option.env, default=None, help=help_text, **kind)
    return parser


def _configure_logging(log_file: str | None) -> None:
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    package_logger = logging.getLogger("vtwait.server")
    for handler in handlers:
        handler.setFormatter(formatter)
        package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO)
    package_logger.propagate = False
    # We log every request ourselves; werkzeug's own lines would double them.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def _with_run_secret(settings: Settings) -> tuple[Settings, str]:
    """The settings with a WEBHOOK_SECRET for this run, and what to print after the listening line.

    Unset, a secret is generated here, before the app (or any worker) exists, so that all sign
    alike; like `stripe listen`, it is shown once to the operator on stdout, never through the log
    (whose lines may be shipped elsewhere). Set, nothing is printed.
    """
    if settings.webhook_secret is not None:
        return settings, ""
    settings = dataclasses.replace(settings, webhook_secret=webhooks.generate_secret())
    logger.warning("WEBHOOK_SECRET is unset: webhooks are signed with a secret generated for this "
                   "run, printed once on stdout; set WEBHOOK_SECRET to keep one")
    return settings, f"\n{WEBHOOK_SECRET_LINE}{settings.webhook_secret}"


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the server until Ctrl+C or SIGTERM; returns the exit status."""
    args = _build_parser().parse_args(argv)
    environ = dict(os.environ)
    for option in OPTIONS:
        value = getattr(args, option.env, None)
        if value is not None:
            environ[option.env] = ("1" if value else "0") if option.kind == "bool" else value
    try:
        env_file = DEFAULT_ENV_FILE if args.env_file is None else Path(args.env_file)
        if args.env_file is not None and not env_file.exists():
            raise ConfigError(f"--env-file: no such file {args.env_file!r}")
        settings = Settings.from_env(environ, env_file=env_file)
        if args.dev_server and args.workers != 1:
            raise ConfigError("--dev-server serves from one process; drop --workers")
        serving.check_workers(settings, args.workers)
        check_store(settings)  # Redis answers, before any worker starts
        _configure_logging(settings.log_file)
    except (ConfigError, StoreUnavailableError, OSError) as exc:  # messages mask passwords
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    settings, secret_line = _with_run_secret(settings)
    auth = f"user {settings.api_username!r}" if settings.auth_enabled else "off"
    logger.info("settings: %r; auth %s; store %s", settings, auth, mask_url(settings.job_store))
    if not args.dev_server:
        listening = LISTENING_LINE + secret_line.replace("{", "{{").replace("}", "}}")
        return serving.serve(settings, args.host, args.port, workers=args.workers,
                             listening_line=listening)
    return _serve_dev(settings, args.host, args.port, secret_line)


def _serve_dev(settings: Settings, host: str, port: int, secret_line: str) -> int:
    """Serves with werkzeug's threaded development server until Ctrl+C or SIGTERM."""
    serving.check_fd_limit(settings.max_waiters)
    app = create_app(settings)
    store: JobStore = app.extensions["job_store"]
    # Exits 1 if it cannot bind.
    handler = type("_IdleTimeoutHandler", (_RequestHandler,), {"timeout": settings.idle_timeout})
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    print(LISTENING_LINE.format(url=f"http://{host}:{server.port}") + secret_line, flush=True)
    try:
        server.serve_forever()  # returns on Ctrl+C
    finally:
        server.server_close()
        store.shutdown()
        app.extensions["webhooks"].close()
    return 0

