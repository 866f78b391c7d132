"""Test doubles for the client: a scripted stand-in for requests.Session, and canned answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests


def response(status: int = 200, body: Any = None, headers: dict[str, str] | None = None,
             text: str | None = None) -> requests.Response:
    """A real ``requests.Response`` with the given status, JSON body (or raw text) and headers."""
    reply = requests.Response()
    reply.status_code = status
    reply._content = (text if text is not None else json.dumps(body)).encode()
    reply._content_consumed = True  # type: ignore[attr-defined]  # as requests leaves a response it did not stream
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

