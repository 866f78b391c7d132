"""The lean request path (issue 19): Flask without the per-request work this API never needs.

    app = LeanFlask(__name__)           # what create_app builds
    json_response(doc, 200)             # a status document as Flask's jsonify would answer it

Measured with cProfile on ``GET /status/<id>`` (the app alone, no server), each a few percent of a
status request:

* Flask passes every hook and view through ``ensure_sync`` on every request, which asks
  ``inspect.iscoroutinefunction`` each time (six calls a status request); here the answer is
  remembered per function (Flask documents ``ensure_sync`` as the method to override).
* Flask opens a session on every request; without a ``SECRET_KEY`` it builds a fresh
  ``NullSession`` each time. This API has no sessions: one shared ``NullSession`` (it refuses
  every write, so sharing it changes nothing).
* ``jsonify`` goes through the JSON provider (keyword merging, a ``default=`` hook, an indent
  decision) for what is always a small, plain dict: :func:`json_response` encodes it with one
  compact encoder, byte for byte what ``jsonify`` gives outside debug mode.

Every figure is in ``docs/server.md`` ("The request path").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import NullSession, SecureCookieSessionInterface

__all__ = ["LeanFlask", "json_response"]

#: Flask's compact JSON outside debug mode: ASCII, no spaces, keys in insertion order.
_encode = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), sort_keys=False).encode


class _NoSessions(SecureCookieSessionInterface):
    """Sessions as Flask has them without a ``SECRET_KEY`` (a ``NullSession``), built once."""

    _shared = NullSession()

    def open_session(self, app: Flask, request: Request) -> NullSession:  # type: ignore[override]
        return self._shared


class LeanFlask(Flask):
    """Flask, with ``ensure_sync`` remembered per function and no session built per request."""

    session_interface = _NoSessions()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        sync = self._sync.get(func)
        if sync is None:
            sync = super().ensure_sync(func)
            if len(self._sync) < 1024:  # hooks and views are few; bound it all the same
                self._sync[func] = sync
        return sync


def json_response(document: Any, status: int = 200) -> Response:
    """``document`` as a JSON answer, the same bytes as ``jsonify`` (compact, newline-ended)."""
    return Response(_encode(document) + "\n", status, mimetype="application/json")
