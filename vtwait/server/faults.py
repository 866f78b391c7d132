"""Fault injection on status requests: latency, dropped connections, 503, 429, garbage bodies.

The ``FAULT_*`` settings give each fault's chance (``FAULT_LATENCY``: seconds added to every
status request). Draws come from their own random stream, seeded from ``SEED`` but apart from the
job store's, so turning faults on does not change which jobs fail::

    faults = Faults(settings)
    answer = faults.inject()   # in a status view: a faulty answer to return, or None
"""

from __future__ import annotations

import logging
import random
import socket
import time

from flask import Response, g, request

from vtwait.server.errors import ApiError
from vtwait.server.settings import Settings

__all__ = ["GARBAGE_BODY", "Faults"]

logger = logging.getLogger(__name__)

#: Body of a ``FAULT_GARBAGE`` answer: what a misbehaving proxy might send.
GARBAGE_BODY = "<html>upstream garbage</html>"


class Faults:
    """The faults configured for status requests, and the random stream they are drawn from."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rng = random.Random(None if settings.seed is None else f"faults:{settings.seed}")
        self.enabled = bool(settings.fault_latency or settings.fault_drop or settings.fault_503
                            or settings.fault_429 or settings.fault_garbage)

    def inject(self) -> Response | None:
        """Plays the faults on the current request; returns the faulty answer, if any.

        Raises:
            ApiError: an injected 503 or 429.
        """
        if not self.enabled:
            return None  # the usual case: nothing to format or draw on the hot path
        settings, rng = self.settings, self.rng
        where = f"{request.method} {request.path}"
        if settings.fault_latency > 0:
            logger.warning("fault: %.3f s of extra latency on %s", settings.fault_latency, where)
            time.sleep(settings.fault_latency)
        retry_soon = {"Retry-After": "1"}
        if settings.fault_drop and rng.random() < settings.fault_drop:
            sock = request.environ.get("werkzeug.socket") or request.environ.get("gunicorn.socket")
            if sock is None:  # not served over a socket (e.g. app.test_client()): nothing to drop
                logger.warning("fault: no socket to drop on %s; answering 503 instead", where)
                raise ApiError(503, "service_unavailable", "injected fault: drop",
                               headers=retry_soon)
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
            raise ApiError(429, "too_many_requests", "injected fault: rate limited",
                           headers=retry_soon)
        if settings.fault_garbage and rng.random() < settings.fault_garbage:
            logger.warning("fault: garbage body on %s", where)
            return Response(GARBAGE_BODY, 200, mimetype="text/html")
        return None
