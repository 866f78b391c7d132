"""A scripted backend with ``GET /events`` for the many-jobs drivers: each stream connection follows a script.

It is served over real HTTP on 127.0.0.1 (``helpers.serve_wsgi``), so the sync and the asyncio
clients run the same scenarios against it (dropped streams, 410, no ``/events``, unknown jobs, a
stream that goes quiet). It records every request it answers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs


def status_doc(job_id: str, result: str = "completed") -> dict[str, Any]:
    doc: dict[str, Any] = {"job_id": job_id, "result": result,
                           "progress": 1.0 if result != "pending" else 0.5}
    if result == "error":
        doc["error"] = "translation failed"
    return doc


def event(doc: dict[str, Any], event_id: int | None = None, kind: str = "status") -> bytes:
    """One SSE event (no ``id:`` line when ``event_id`` is None: a snapshot)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(doc)}\n\n".encode()


def not_found(job_id: str) -> bytes:
    return event({"job_id": job_id, "error": {"code": "not_found", "message": "unknown job"}},
                 kind="not_found")


@dataclass
class Stream:
    """A stream answer: these chunks (a float in the list is a pause), then the stream ends."""

    chunks: list[bytes | float]


@dataclass
class Refuse:
    """A non-stream answer to GET /events."""

    status: int
    body: dict[str, Any] = field(default_factory=lambda: {"error": {"code": "x", "message": "no"}})
    content_type: str = "application/json"


@dataclass
class Seen:
    path: str
    job_ids: list[str]
    last_event_id: str | None


class ScriptedEvents:
    """WSGI app: ``/events`` answers from ``script`` in order; ``/status/<id>`` from ``statuses``
    (a document, answered 200, or a :class:`Refuse`)."""

    def __init__(self, script: list[Stream | Refuse],
                 statuses: dict[str, dict[str, Any] | Refuse]):
        self.script = list(script)
        self.statuses = statuses
        self.seen: list[Seen] = []
        self._lock = threading.Lock()

    def streams(self) -> list[Seen]:
        return [s for s in self.seen if s.path == "/events"]

    def status_reads(self) -> list[Seen]:
        return [s for s in self.seen if s.path.startswith("/status/")]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        query = parse_qs(environ.get("QUERY_STRING", ""))
        with self._lock:
            self.seen.append(Seen(path, query.get("job_id", []),
                                  environ.get("HTTP_LAST_EVENT_ID")))
            answer = self.script.pop(0) if path == "/events" and self.script else None
        if path.startswith("/status/"):
            doc = self.statuses.get(path.rsplit("/", 1)[1])
            if doc is None:
                return self._json(start_response, 404, {"error": {"code": "not_found",
                                                                  "message": "unknown job"}})
            if isinstance(doc, Refuse):
                return self._json(start_response, doc.status, doc.body, doc.content_type)
            return self._json(start_response, 200, doc)
        if isinstance(answer, Stream):
            start_response("200 OK", [("Content-Type", "text/event-stream"),
                                      ("Cache-Control", "no-cache")])
            return self._stream(answer)
        if isinstance(answer, Refuse):
            return self._json(start_response, answer.status, answer.body, answer.content_type)
        return self._json(start_response, 404, {"error": {"code": "not_found", "message": "x"}})

    @staticmethod
    def _stream(answer: Stream) -> Iterator[bytes]:
        yield b"retry: 10\n\n"
        for chunk in answer.chunks:
            if isinstance(chunk, float):
                time.sleep(chunk)
                yield b": ping\n\n"
            else:
                yield chunk

    @staticmethod
    def _json(start_response: Any, status: int, body: Any,
              content_type: str = "application/json") -> list[bytes]:
        data = json.dumps(body).encode()
        start_response(f"{status} X", [("Content-Type", content_type),
                                       ("Content-Length", str(len(data)))])
        return [data]
