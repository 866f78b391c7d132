"""A WSGI app with one streaming answer, served by gunicorn with this project's worker in
``tests/server/test_serving.py``: it proves that a graceful stop ends a long-lived stream cleanly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from vtwait.server.serving import STOPPING_ENVIRON_KEY


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
    """``/stream``: one line at once, then a line a second until the worker stops, then "bye"."""
    stopping = environ[STOPPING_ENVIRON_KEY]
    start_response("200 OK", [("Content-Type", "text/event-stream")])

    def lines() -> Iterator[bytes]:
        yield b": open\n\n"
        while not stopping.wait(1.0):
            yield b": ping\n\n"
        yield b"event: bye\ndata: {}\n\n"

    return lines()
