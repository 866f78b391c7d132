"""The API's error vocabulary: every error answer is ``{"error": {"code": ..., "message": ...}}``.

Written once, and used by the app's error handlers, the event stream, the development server's
request handler and the gunicorn worker (for malformed HTTP that never reaches the app)::

    raise ApiError(404, "not_found", "no job abc")             # inside a view
    error_response(503, "service_unavailable", "retry later")  # a Flask answer
    error_body("bad_request", "malformed HTTP request")        # the bare document
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from flask import Response, jsonify

__all__ = [
    "ERROR_CODES",
    "RAW_ERROR_MESSAGES",
    "STATUS_CODES",
    "ApiError",
    "code_for_status",
    "error_body",
    "error_bytes",
    "error_response",
]

#: The code of an error answered by HTTP status alone (by the app for werkzeug's errors, or by
#: the HTTP layer before the app sees a request).
STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    429: "too_many_requests",
    431: "request_header_fields_too_large",
    500: "internal_error",
    503: "service_unavailable",
    505: "http_version_not_supported",
}
#: Every error code the API answers (the ``Error`` schema's enum in ``openapi.yaml``): the codes
#: by status, and those a route chooses itself.
ERROR_CODES: frozenset[str] = frozenset(
    {*STATUS_CODES.values(), "too_many_jobs", "too_many_streams", "event_id_expired",
     "injected_fault", "signature_invalid", "url_expired", "range_not_satisfiable"}
)
#: Messages of the errors answered by the HTTP layer, before the app sees a request.
RAW_ERROR_MESSAGES: dict[int, str] = {
    400: "malformed HTTP request",
    414: "request line longer than 65536 bytes",
    431: "too many header fields, or one longer than 65536 bytes",
    505: "only HTTP/1.0 and HTTP/1.1 are served",
}


class ApiError(Exception):
    """An error answered as ``{"error": {"code": ..., "message": ...}}`` with an HTTP status.

    Raises:
        ValueError: ``code`` is not one of :data:`ERROR_CODES`.
    """

    def __init__(
        self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_body(code: str, message: str) -> dict[str, Any]:
    """The error document."""
    return {"error": {"code": code, "message": message}}


def error_bytes(code: str, message: str) -> bytes:
    """The error document as compact JSON bytes (for answers written without Flask)."""
    return json.dumps(error_body(code, message), separators=(",", ":")).encode()


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """The error document as a Flask answer with ``status`` and ``headers``."""
    response = jsonify(error_body(code, message))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def code_for_status(status: int, name: str = "") -> str:
    """The code of an error known only by its status (and its reason phrase, ``name``)."""
    return STATUS_CODES.get(status) or re.sub(r"\W+", "_", name.lower()).strip("_") or "bad_request"


def raw_error(status: int) -> tuple[str, str]:
    """The code and message of a malformed request answered by the HTTP layer with ``status``."""
    return (STATUS_CODES.get(status, "bad_request"),
            RAW_ERROR_MESSAGES.get(status, "malformed HTTP request"))
