"""One id per request, for log lines that must be traced back to the answer a client saw.

The id is the client's ``X-Request-Id`` when it is a sane token, else a random one; every answer
carries it back in ``X-Request-Id``::

    logger.warning("request %s: ...", request_id())
"""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, has_request_context, request

__all__ = ["REQUEST_ID_HEADER", "install", "request_id"]

#: The header a client may send its own id in, and that every answer carries.
REQUEST_ID_HEADER = "X-Request-Id"
# A client's id is taken only when it cannot forge a log line (no spaces, no control characters).
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def request_id() -> str:
    """The current request's id (made on first use); ``"-"`` outside a request."""
    if not has_request_context():
        return "-"
    rid: str | None = g.get("request_id")
    if rid is None:
        sent = request.headers.get(REQUEST_ID_HEADER, "")
        rid = sent if _REQUEST_ID_RE.fullmatch(sent) else uuid.uuid4().hex
        g.request_id = rid
    return rid


def install(app: Flask) -> None:
    """Echoes the request id in every answer of ``app``."""

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        response.headers.setdefault(REQUEST_ID_HEADER, request_id())
        return response
