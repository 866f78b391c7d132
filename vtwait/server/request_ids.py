"""One id per request, for log lines that must be traced back to the answer a client saw.

The id is the client's ``X-Request-Id`` when it is a sane token, else this process's random prefix
and a counter; every answer carries it back in ``X-Request-Id``::

    logger.warning("request %s: ...", request_id())
"""

from __future__ import annotations

import itertools
import re
import uuid

from flask import Flask, Response, has_request_context, request

__all__ = ["REQUEST_ID_HEADER", "install", "request_id"]

#: The header a client may send its own id in, and that every answer carries.
REQUEST_ID_HEADER = "X-Request-Id"
# A client's id is taken only when it cannot forge a log line (no spaces, no control characters).
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
_ENVIRON_KEY = "vtwait.request_id"
_PREFIX = uuid.uuid4().hex[:12] + "-"
_COUNTER = itertools.count(1)


def request_id() -> str:
    """The current request's id (made on first use); ``"-"`` outside a request."""
    if not has_request_context():
        return "-"
    environ = request.environ
    rid: str | None = environ.get(_ENVIRON_KEY)
    if rid is None:
        sent = environ.get("HTTP_X_REQUEST_ID", "")
        # This process's random prefix and a counter: unique, and cheaper than a uuid4 a request.
        rid = sent if sent and _REQUEST_ID_RE.fullmatch(sent) else f"{_PREFIX}{next(_COUNTER):x}"
        environ[_ENVIRON_KEY] = rid
    return rid


def install(app: Flask) -> None:
    """Echoes the request id in every answer of ``app``."""

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        if REQUEST_ID_HEADER not in response.headers:
            response.headers[REQUEST_ID_HEADER] = request_id()
        return response
