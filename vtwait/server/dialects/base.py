"""What a dialect is, and the native views it answers through.

A dialect does not run jobs of its own: each of its views calls the native view (``routes.py``)
that does the work (the same store, queue, idempotency, faults, hints, webhooks and error
checks), then reshapes the native answer into its service's document. So the native API stays the
one place where jobs are handled, and whatever it learns reaches every dialect. What a dialect
lacks is not offered: the native long-poll parameters (``?wait=``, ``Prefer: wait``) are removed
from the request before the native view sees it, unless the dialect has its own (Replicate's
``Prefer: wait`` on create, implemented by that dialect with :func:`hold`).

Errors are reshaped at the edge: an after-request hook (:meth:`Dialect.install`) rewrites every
native error body (``{"error": {"code", "message"}}``) of the dialect's routes, and of requests
that matched no route, into the service's error envelope.
"""

from __future__ import annotations

import datetime
import io
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from flask import Blueprint, Flask, Response, jsonify, request

from vtwait.server.errors import ApiError
from vtwait.server.routenames import endpoint_routes
from vtwait.server.state import current_state
from vtwait.server.stores.base import JobPhase

__all__ = [
    "Dialect",
    "call_native",
    "hold",
    "iso_time",
    "job_document",
    "json_answer",
    "percent",
    "read_object",
]

#: The native job document: ``job_id``, ``result``, ``phase``, ``progress``, times, ``error``...
JobDocument = dict[str, Any]


class Dialect:
    """One service's API shape over the native jobs. Subclasses set the class attributes and
    override :meth:`error_body`; their module defines the routes on :attr:`blueprint`.

    Attributes:
        name: the ``DIALECT`` value.
        blueprint: the service's routes, or None (``native``: the native routes are all).
        api_key_headers: headers that carry ``API_KEY`` in this service, beside the
            ``Authorization: Bearer`` and ``X-Api-Key`` accepted in every dialect.
        challenge: the ``WWW-Authenticate`` scheme this service names on a 401, or None to keep
            the native one.
        error_mimetype: the content type of an error body.
    """

    name: ClassVar[str] = "native"
    blueprint: ClassVar[Blueprint | None] = None
    #: The control API's route name of each view (fault rules and the journal name requests by
    #: route, and a dialect's paths are not the native ones).
    route_names: ClassVar[Mapping[str, str]] = {}
    api_key_headers: ClassVar[tuple[str, ...]] = ()
    challenge: ClassVar[str | None] = None
    error_mimetype: ClassVar[str] = "application/json"

    def error_body(self, status: int, code: str, message: str) -> Any:
        """The service's error document for a native error (``code`` is the native code)."""
        return {"error": {"code": code, "message": message}}

    def error_headers(self, status: int, code: str) -> dict[str, str]:
        """Headers the service adds to an error answer."""
        return {}

    def install(self, app: Flask) -> None:
        """Registers the routes and the error reshaping on ``app``."""
        if self.blueprint is None:
            return
        app.register_blueprint(self.blueprint)
        bp_name = self.blueprint.name
        endpoint_routes(app).update({f"{bp_name}.{view}": route
                                     for view, route in self.route_names.items()})

        @app.after_request
        def _reshape_error(response: Response) -> Response:
            ours = request.blueprint == bp_name or request.url_rule is None
            if not ours or response.status_code < 400 or response.mimetype != "application/json":
                return response
            error = (response.get_json(silent=True) or {}).get("error")
            if not (isinstance(error, dict) and set(error) == {"code", "message"}
                    and isinstance(error["code"], str)):
                return response  # not a native error body (the view answered its own)
            body = self.error_body(response.status_code, error["code"], error["message"])
            response.set_data(json.dumps(body, separators=(",", ":")))
            response.mimetype = self.error_mimetype
            response.headers.update(self.error_headers(response.status_code, error["code"]))
            if response.status_code == 401 and self.challenge is not None:
                response.headers["WWW-Authenticate"] = self.challenge
            return response


def read_object() -> dict[str, Any]:
    """The request's JSON body as an object (an empty body is ``{}``).

    Raises:
        ApiError: 400 for a body that is not a JSON object, 413 past the size limit.
    """
    from vtwait.server.routes import _read_body  # the native reader: size limit, chunked bodies

    raw = _read_body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "bad_request", "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "body must be a JSON object")
    return body


def call_native(view: Callable[..., Response], *args: Any,
                body: Mapping[str, Any] | None = None) -> Response:
    """Calls a native view in this request, with ``body`` as its JSON body (None: no body), and
    without the native long-poll parameters (the dialects do not offer them)."""
    environ = request.environ
    data = b"" if body is None else json.dumps(dict(body)).encode()
    environ["wsgi.input"] = io.BytesIO(data)
    environ["CONTENT_LENGTH"] = str(len(data))
    environ["CONTENT_TYPE"] = "application/json"
    # The new body ends where the stream ends, chunked or not (werkzeug reads none of a chunked
    # body without this flag).
    environ["wsgi.input_terminated"] = True
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ.pop("HTTP_PREFER", None)
    current = request._get_current_object()  # type: ignore[attr-defined]
    sent = current.query_string
    current.query_string = b"&".join(part for part in sent.split(b"&")
                                     if part and part.split(b"=", 1)[0] != b"wait")
    # werkzeug caches the stream, the data and the query arguments on first use.
    for cached in ("stream", "_cached_data", "args", "form", "files"):
        current.__dict__.pop(cached, None)
    try:
        return view(*args)
    finally:
        current.query_string = sent  # the request log shows what the client sent
        current.__dict__.pop("args", None)


def job_document(response: Response) -> JobDocument | None:
    """The native job document of a native view's answer, or None (a fault's garbage or drop)."""
    if response.mimetype != "application/json":
        return None
    doc = response.get_json(silent=True)
    return doc if isinstance(doc, dict) and "job_id" in doc else None


def hold(doc: JobDocument, seconds: float) -> JobDocument:
    """Holds until the job is final or ``seconds`` pass (at most MAX_WAIT; counted against
    MAX_WAITERS like any long-poll); returns the job's document then."""
    state = current_state()
    wait = min(seconds, state.settings.max_wait)
    if wait <= 0 or state.settings.plain or doc.get("result") != "pending":
        return doc
    with state.metrics.holding():
        held, _ = state.store.wait(doc["job_id"], wait)
    return held or doc


def json_answer(body: Any, status: int = 200, headers: Mapping[str, str] | None = None,
                native: Response | None = None, hints: bool = False) -> Response:
    """A JSON answer; with ``hints``, the native answer's ``Retry-After`` is kept."""
    response = jsonify(body)
    response.status_code = status
    if hints and native is not None and "Retry-After" in native.headers:
        response.headers["Retry-After"] = native.headers["Retry-After"]
    response.headers.update(headers or {})
    return response


def iso_time(seconds: float | None) -> str | None:
    """Unix seconds as RFC 3339 UTC with microseconds (``2026-12-03T19:10:40.123456Z``)."""
    if seconds is None:
        return None
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def percent(doc: JobDocument) -> int:
    """The job's progress as a whole percentage (0-100)."""
    return max(0, min(100, math.floor(float(doc.get("progress") or 0.0) * 100)))


def output_url(doc: JobDocument) -> str | None:
    """Where the job's output is (the native ``output.url``), once it exists."""
    output = doc.get("output")
    return output.get("url") if isinstance(output, dict) else None


def phase(doc: JobDocument) -> JobPhase:
    return JobPhase(doc["phase"])
