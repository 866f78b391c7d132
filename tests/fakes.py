"""Test doubles for the client: a fake clock and a scripted stand-in for requests.Session."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests
from werkzeug.serving import make_server


class FakeClock:
    """A monotonic clock that only moves when told; ``sleep`` advances it and records the delay."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"negative sleep {seconds}"
        self.sleeps.append(seconds)
        self.now += seconds


def response(status: int = 200, body: Any = None, headers: dict[str, str] | None = None,
             text: str | None = None) -> requests.Response:
    """A real ``requests.Response`` with the given status, JSON body (or raw text) and headers."""
    reply = requests.Response()
    reply.status_code = status
    reply._content = (text if text is not None else json.dumps(body)).encode()
    reply.headers.update({"Content-Type": "text/html" if text is not None
                          else "application/json", **(headers or {})})
    reply.encoding = "utf-8"
    return reply


@dataclass
class Call:
    method: str
    url: str
    kwargs: dict[str, Any]


@dataclass
class FakeSession:
    """Answers each request with ``handler(call)``; a handler may advance the clock (a hold).

    The handler returns a Response, or raises (e.g. requests.ConnectionError).
    """

    handler: Callable[[Call], requests.Response]
    calls: list[Call] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    auth: Any = None

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        call = Call(method, url, kwargs)
        self.calls.append(call)
        return self.handler(call)

    def close(self) -> None:
        pass


def pending(progress: float = 0.0, **extra: Any) -> dict[str, Any]:
    return {"job_id": "j1", "result": "pending", "progress": progress, **extra}


def final(result: str = "completed", **extra: Any) -> dict[str, Any]:
    return {"job_id": "j1", "result": result, "progress": 1.0, "finished_at": 1.0, **extra}


@contextlib.contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """Serve any WSGI app on 127.0.0.1 and a free port in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
