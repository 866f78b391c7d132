"""A mock video-translation backend: jobs that take a while, and a status API to poll them.

Usage::

    python server.py --port 8000                      # serve on http://127.0.0.1:8000
    curl -X POST http://127.0.0.1:8000/start          # 201 {"job_id": ..., "result": "pending"}
    curl "http://127.0.0.1:8000/status/<job_id>?wait=10"  # long-poll until the job is final

Routes (``routes.py``, a Blueprint):

* ``POST /start`` starts a job and answers 201 with its status document. Optional: a JSON body
  ``{"delay": s, "outcome": "completed" | "error"}``, an ``Idempotency-Key`` header.
* ``GET /status/<job_id>`` (or ``GET /status?job_id=<id>``) answers the job's status document;
  ``GET /status`` answers the server's default job, started with the server and never evicted.
* ``POST /status/<job_id>/cancel`` cancels a queued or running job (200 with the final document;
  409 with the document of a job that had already ended); ``DELETE /status/<id>`` is a 405.
* ``GET /healthz`` answers ``{"status": "ok"}``, without authentication.
* ``GET /metrics`` answers Prometheus metrics (``metrics.py``), without authentication.
* ``GET /events`` is the job event stream (Server-Sent Events; ``events.py``).
* ``/_admin/...`` is the control API for tests (``admin/``): on only with ``ADMIN_TOKEN``.
* ``GET /openapi.yaml`` and ``GET /openapi.json`` answer the API description (``openapi.yaml``,
  package data beside this module), without authentication; the JSON form needs PyYAML.

A pending answer carries hints: ``Retry-After`` and ``eta_seconds``. ``?wait=N`` or
``Prefer: wait=N`` holds the request until the job is final or N seconds pass (long-poll).
Every error is JSON (``errors.py``):
``{"error": {"code": "not_found", "message": "..."}}``. All durations are in seconds.

This module is the app factory: it builds the parts (:class:`~vtwait.server.state.AppState`),
registers the routes, and adds the hooks (timing, authentication, rate limit, the request log)
and the error handlers.

Exceptions::

    ConfigError(ValueError)      a setting is invalid; the message names it
    StoreFullError(RuntimeError) MAX_JOBS live jobs already; carries retry_after
    ApiError(Exception)          an error answer: HTTP status, code, message, headers
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Any, cast

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

import vtwait.server.admin as admin
import vtwait.server.cors as cors
import vtwait.server.metrics as metrics
import vtwait.server.ratelimit as rate_limits
import vtwait.server.request_ids as request_ids
import vtwait.server.tracing as tracing
import vtwait.server.webhooks as webhooks
from vtwait.server.auth import api_key_ok, auth_required, challenges, credentials_wanted
from vtwait.server.batch_start import start_batch
from vtwait.server.clock import Clock, SystemClock, VirtualClock
from vtwait.server.dashboard import register_dashboard
from vtwait.server.dialects import current_dialect, install_dialect
from vtwait.server.errors import ApiError, code_for_status, error_body, error_response
from vtwait.server.events import register_event_stream
from vtwait.server.faults import Faults
from vtwait.server.lean import LeanFlask
from vtwait.server.listing import listing_api
from vtwait.server.outputs import Outputs, outputs_api
from vtwait.server.routenames import ADMIN_PREFIX
from vtwait.server.routes import MAX_CONTENT_LENGTH, OPEN_ENDPOINTS, api
from vtwait.server.settings import ConfigError, Settings
from vtwait.server.state import EXTENSION_KEY, AppState, app_state
from vtwait.server.stores import open_store
from vtwait.server.stores.base import JobStore, StoreFullError, StoreUnavailableError

__all__ = [
    "ApiError",
    "AppState",
    "ConfigError",
    "JobStore",
    "Settings",
    "StoreFullError",
    "app_state",
    "create_app",
    "credentials_ok",
]

logger = logging.getLogger(__name__)

#: Realm named in ``WWW-Authenticate``.
REALM = "video-translation"


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    start_worker: bool = True,
    timebase: Clock | None = None,
    tracer_provider: Any = None,
) -> Flask:
    """Builds the Flask app with its own job store and starts the default job.

    Args:
        settings: the behaviour; ``None`` reads ``Settings.from_env()``.
        clock: monotonic seconds for the memory store (tests pass a fake one).
        wall_clock: Unix seconds for ``created_at`` / ``finished_at``; the Redis store's only clock.
        start_worker: start the timer thread; tests with a fake clock pass ``False`` and call
            ``app_state(app).store.process_due()`` instead.
        timebase: the clock everything waits on (``app_state(app).clock``); ``None`` builds one
            from ``CLOCK``. A virtual one replaces ``clock`` and ``wall_clock`` and runs the
            store's due work itself when advanced (no timer thread).
        tracer_provider: an OpenTelemetry tracer provider to trace with (``tracing.py``); None
            reads the ``OTEL_*`` environment variables (unset: no tracing, no cost).

    Returns:
        The app. Its parts are ``app_state(app)``; call ``store.shutdown()`` and
        ``webhooks.close()`` on them when done.

    Raises:
        StoreUnavailableError: ``JOB_STORE`` names a Redis that cannot be reached.
    """
    settings = Settings.from_env() if settings is None else settings
    app = LeanFlask(__name__)  # Flask minus per-request work this API never needs (issue 19)
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if timebase is None:
        timebase = VirtualClock() if settings.clock == "virtual" else SystemClock()
    if timebase.virtual:
        clock, wall_clock = timebase.monotonic, timebase.time
    store = open_store(settings, clock=clock, wall_clock=wall_clock, timebase=timebase)
    measured = metrics.install(app, store)  # before the default job, so that it is counted
    register_dashboard(app, store, settings, wall_clock=wall_clock)  # GET /: the live page
    if (settings.api_username is None) != (settings.api_password is None):
        logger.warning("only one of API_USERNAME / API_PASSWORD is set: authentication is OFF")
    store.start(default=True)
    if timebase.virtual:
        store.follow(timebase)
    elif start_worker:
        store.start_worker()
    secret = settings.webhook_secret
    if secret is None:  # main() passes the one it printed; an app built otherwise makes its own
        secret = webhooks.generate_secret()
        logger.info("WEBHOOK_SECRET is unset: this app signs webhooks with a generated secret, "
                    "app_state(app).webhook_secret (python server.py prints it)")
    sender = webhooks.WebhookSender(
        secret, max_attempts=settings.webhook_max_attempts, timeout=settings.webhook_timeout,
        retry_delay=settings.webhook_retry_delay, clock=timebase.monotonic, timebase=timebase)
    store.add_listener(sender.on_event)
    limiter = None
    if settings.rate_limit:
        limiter = rate_limits.install(app, settings.rate_limit, settings.rate_capacity, clock=clock)
    faults = Faults(settings)
    control = admin.AdminState.build(settings, faults, clock=clock, wall_clock=wall_clock,
                                     secrets=(secret,))
    signing_secret = outputs = None
    if not settings.plain:  # issue 16's lifecycle: outputs, GET /jobs (PLAIN: as before them)
        signing_secret = (store.shared_secret() if settings.output_secret is None
                          else settings.output_secret.encode())
        outputs = Outputs(settings, signing_secret, wall_clock=wall_clock)
    app.extensions[EXTENSION_KEY] = AppState(
        settings=settings, store=store, webhooks=sender, webhook_secret=secret, metrics=measured,
        faults=faults, rate_limiter=limiter,
        streams=register_event_stream(app, store, settings, timebase), admin=control,
        clock=timebase, outputs=outputs, signing_secret=signing_secret)
    tracing.install(app, store, sender, max_jobs=settings.max_jobs,  # first hooks: 401s too
                    provider=tracing.provider_from_env() if tracer_provider is None
                    else tracer_provider)
    app.register_blueprint(api)
    app.register_blueprint(listing_api)
    app.register_blueprint(outputs_api)
    cors.install(app, settings.cors_origin_set)  # before auth: preflights carry no credentials
    install_dialect(app, settings)  # DIALECT's routes and error envelope (dialects/)
    request_ids.install(app)
    # POST /start/batch (issue 19): its own module, added beside the blueprint's routes.
    app.add_url_rule("/start/batch", "start_batch", start_batch, methods=["POST"])
    _add_hooks(app, settings, limiter)
    admin.install(app, control)  # after auth: faults play on authenticated requests only
    _add_error_handlers(app)
    return app


def _add_hooks(app: Flask, settings: Settings, limiter: rate_limits.RequestLimiter | None) -> None:
    """Timing, authentication (and the rate limit charged with it), the one log line a request."""

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.before_request
    def _authenticate() -> None:
        if request.path.startswith(ADMIN_PREFIX):
            return  # the control API has its own credential, and no rate limit
        needs_auth = auth_required(settings) and request.endpoint not in OPEN_ENDPOINTS
        authenticated = settings.auth_enabled and credentials_ok(
            request.headers.get("Authorization"), settings)
        # API_KEY (issue 20): a bearer token or an API-key header, the dialect's own included.
        by_key = not authenticated and api_key_ok(
            request.headers, settings, current_dialect().api_key_headers)
        if limiter is not None:  # charged before a 401, so guessing passwords is rate-limited too
            limiter.admit(f"user:{settings.api_username}" if authenticated
                          else "key:API_KEY" if by_key else f"addr:{request.remote_addr}")
        if needs_auth and not (authenticated or by_key):
            logger.warning("authentication failed for %s %s", request.method, request.path)
            raise ApiError(
                401,
                "unauthorized",
                credentials_wanted(settings),
                headers={"WWW-Authenticate": challenges(settings, REALM)},
            )

    @app.after_request
    def _log_request(response: Response) -> Response:
        # The request and g looked up once (each proxy access is a context-var lookup), and the
        # Content-Type compared, not parsed: issue 19's lean path, same line and headers.
        req, ctx_g = request._get_current_object(), g._get_current_object()  # type: ignore[attr-defined]
        path = req.path
        if req.query_string:
            path += "?" + req.query_string.decode("latin-1")
        status = "dropped" if ctx_g.get("dropped") else response.status_code
        elapsed_ms = (time.perf_counter() - ctx_g.get("started", time.perf_counter())) * 1000
        logger.info("%s %s %s %.1fms", req.method, path, status, elapsed_ms)
        content_type = response.headers.get("Content-Type", "")
        if req.endpoint != "api.healthz" and content_type.partition(";")[0] == "application/json":
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def _add_error_handlers(app: Flask) -> None:
    """Every error, werkzeug's 404 and 405 included, as the API's JSON error body."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return error_response(error.status, error.code, error.message, error.headers)

    @app.errorhandler(StoreUnavailableError)
    def _store_unavailable(error: StoreUnavailableError) -> Response:
        logger.warning("%s %s: %s", request.method, request.path, error)
        headers = {"Retry-After": str(error.retry_after)}
        return error_response(503, "service_unavailable", "job store unavailable; retry later",
                              headers)

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
        body = error_body(code_for_status(code, error.name), message)
        response.set_data(json.dumps(body, separators=(",", ":")))
        response.mimetype = "application/json"
        return response

    @app.errorhandler(Exception)
    def _unexpected_error(error: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal server error")


def credentials_ok(header: str | None, settings: Settings) -> bool:
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
