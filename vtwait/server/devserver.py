"""``python server.py --dev-server``: werkzeug's threaded development server, for comparison.

A thread per connection (gunicorn + gevent, ``serving.py``, is the default). Its request handler,
:class:`RequestHandler`, answers malformed HTTP with the API's JSON error body and closes silent
connections; tests serve apps in a thread with it too. All durations are in seconds.
"""

from __future__ import annotations

import logging
import re
import signal
import sys
from collections.abc import Callable

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from vtwait.server.errors import error_bytes, raw_error
from vtwait.server.settings import DEFAULT_IDLE_TIMEOUT, Settings
from vtwait.server.state import app_state

__all__ = ["RequestHandler", "serve_dev"]

logger = logging.getLogger(__name__)

_DIGITS_RE = re.compile(r"[0-9]+")


class RequestHandler(WSGIRequestHandler):
    """werkzeug's request handler, with JSON error bodies from the HTTP layer and an idle timeout.

    Requests that never reach the app (a request line that is not HTTP, one over 64 KiB, too many
    or too long header fields, HTTP/2) are answered by ``http.server``'s ``send_error``, which
    writes an HTML page, and no status line at all when the request line had no version. Here they
    get a status line and the API's JSON error body. ``timeout`` closes a connection that stays
    silent that many seconds (``IDLE_TIMEOUT``; :func:`serve_dev` sets the configured value), so
    one that connects and sends nothing does not hold a thread forever.
    """

    timeout = DEFAULT_IDLE_TIMEOUT

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
        body = error_bytes(*raw_error(code))
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command != "HEAD":
            self.wfile.write(body)


def serve_dev(settings: Settings, host: str, port: int, *, app_factory: Callable[[Settings], Flask],
              ready: Callable[[str], None]) -> int:
    """Serves ``app_factory(settings)`` with werkzeug's threaded server until Ctrl+C or SIGTERM.

    Args:
        settings: the server's settings (``IDLE_TIMEOUT`` closes silent connections).
        host: interface to bind.
        port: TCP port, 0 for any.
        app_factory: builds the app (``create_app``).
        ready: called with the base URL once the server listens.

    Returns:
        The exit status, 0 (the process exits 1 if it cannot bind).
    """
    app = app_factory(settings)
    state = app_state(app)
    handler = type("_IdleTimeoutHandler", (RequestHandler,), {"timeout": settings.idle_timeout})
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    ready(f"http://{host}:{server.port}")
    try:
        server.serve_forever()  # returns on Ctrl+C
    finally:
        server.server_close()
        state.store.shutdown()
        state.webhooks.close()
    return 0
