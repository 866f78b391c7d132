"""``GET /events``: the job event stream (Server-Sent Events) over the store's event log.

Usage::

    curl -N "http://127.0.0.1:8000/events?job_id=<id>&job_id=<id2>"   # snapshot, then live changes
    curl -N -H "Last-Event-ID: 1700000000000042" http://127.0.0.1:8000/events   # resume after 42

Wire format (``text/event-stream``)::

    retry: 1000                                   first, once: reconnect after 1 s

    event: status                                 snapshot of a listed job: no id (ids are changes)
    data: {"job_id": "...", "result": "pending", ...}

    event: not_found                              a listed job the server does not know
    data: {"job_id": "...", "error": {"code": "not_found", "message": "..."}}

    id: 1700000000000043                          a change: ids strictly increase, server-wide
    event: status
    data: {"job_id": "...", "result": "completed", ...}

    : ping                                        after EVENT_HEARTBEAT s without a write

With ``?batch=1`` (opt-in, issue 19: a plain ``EventSource`` never asks it), the changes found in
one read of the log go as one event, their documents as a JSON array in the order of their ids,
the event's id the last of them (a resume after it misses none)::

    id: 1700000000000045
    event: statuses
    data: [{"job_id": "...", "result": "completed", ...}, {"job_id": "...", ...}]

The snapshot stays one ``status`` (or ``not_found``) event per listed job. 10,000 changes at once
are then some 20 events, not 10,000: a client parses one line per batch instead of four per
change (``docs/server.md``).

How a stream works: every change is written once into the store's event log (ids assigned in the
same atomic step as the change). A stream is a generator that *pulls* from that shared log at its
own pace: it holds no queue of its own, so a slow reader costs one batch of memory, not a backlog.
The job timer never writes to a socket; it only appends to the log and wakes the readers. A reader
that falls more than ``EVENT_RETENTION`` events behind is ended (its resume then gets a 410); one
whose write stalls for ``EVENT_SEND_TIMEOUT`` s (it stopped reading) is dropped by a send timeout
on its socket; one that went away is found out by its next write, a heartbeat at the latest.
``store.shutdown()`` ends every stream cleanly, and so does ``EVENT_MAX_AGE`` (when set) after
that long: the client reconnects and resumes after its last event id. All durations are in
seconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, request

from vtwait.server.clock import Clock, SystemClock
from vtwait.server.errors import error_body, error_response
from vtwait.server.settings import Settings
from vtwait.server.state import state_of
from vtwait.server.stores.base import (
    JOB_ID_RE,
    EventIdExpiredError,
    JobStore,
    LoggedEvent,
    StoreClosedError,
    StoreUnavailableError,
)
from vtwait.server.stream_router import StreamRouter

__all__ = ["RECONNECT_MS", "EventStreams", "open_streams", "register_event_stream"]

logger = logging.getLogger(__name__)

#: The ``retry:`` line: how long a client waits before reconnecting, in milliseconds.
RECONNECT_MS = 1000
#: Events read from the log per step (bounds one write and one stream's memory).
BATCH_EVENTS = 500
#: ``Retry-After`` of a 429 past ``MAX_STREAMS``: streams are long, a slot frees at no known time.
STREAMS_RETRY_AFTER = 5

# An event id is an unsigned integer; 20 digits hold any 64-bit id. Empty means "no id" (SSE).
_EVENT_ID_RE = re.compile(r"[0-9]{0,20}")


def register_event_stream(
    app: Flask, store: JobStore, settings: Settings, clock: Clock | None = None
) -> EventStreams | None:
    """Adds ``GET /events`` to ``app``, unless ``EVENTS`` is off or the server is ``PLAIN``.
    Heartbeats follow ``clock`` (real time by default).

    Returns:
        The route's state (the app keeps it as ``app_state(app).streams``), or None: no route.
    """
    if not settings.events or settings.plain:
        return None  # no route at all: a 404 like a server that never had one
    streams = EventStreams(store, settings, clock)
    app.add_url_rule("/events", "events", streams.view, methods=["GET"])
    return streams


class EventStreams:
    """The ``GET /events`` view and the count of open streams in this process.

    Args:
        store: where the events come from.
        settings: ``MAX_STREAMS``, ``MAX_STREAM_JOBS``, ``EVENT_HEARTBEAT``, ``EVENT_SEND_TIMEOUT``.
        clock: what the heartbeat's silence is measured on (real time by default).
    """

    def __init__(self, store: JobStore, settings: Settings, clock: Clock | None = None) -> None:
        self.store = store
        self.settings = settings
        self.clock = SystemClock() if clock is None else clock
        self._lock = threading.Lock()
        self._open = 0
        #: Hands each change to the filtered streams of its job only (issue 19).
        self.router = StreamRouter(store)

    @property
    def open(self) -> int:
        """How many streams this process serves right now."""
        with self._lock:
            return self._open

    def view(self) -> Response:
        """``GET /events``: checks the request, takes a slot, then answers the stream.

        Every refusal comes before the first byte of the stream: 400 (bad ``job_id`` count or
        event id), 429 (``MAX_STREAMS`` open), 410 (the resume id is not retained).
        """
        settings = self.settings
        values = request.args.getlist("job_id")
        if len(values) > settings.max_stream_jobs:
            return error_response(400, "bad_request",
                          f"at most {settings.max_stream_jobs} job_id values per stream, got "
                          f"{len(values)}; open one stream per {settings.max_stream_jobs} jobs")
        job_ids = list(dict.fromkeys(values))  # duplicates once, in order
        header = request.headers.get("Last-Event-ID")
        query = request.args.get("last_event_id")
        for where, raw in (("Last-Event-ID", header), ("last_event_id", query)):
            if raw is not None and not _EVENT_ID_RE.fullmatch(raw):
                return error_response(400, "bad_request", f"{where} must be an event id (decimal digits)")
        raw = header if header is not None else query  # what EventSource sends on reconnect wins
        resume = int(raw) if raw else None
        batched = request.args.get("batch", "") in ("1", "true")  # several changes an event
        slot = self._take_slot()
        if slot is None:
            return error_response(429, "too_many_streams",
                          f"{settings.max_streams} event streams open already; retry later",
                          {"Retry-After": str(STREAMS_RETRY_AFTER)})
        try:
            first: list[LoggedEvent] = []
            if resume is not None:
                first = self.store.events_after(resume, BATCH_EVENTS)
            docs, last = self.store.event_snapshot(
                [j if JOB_ID_RE.fullmatch(j) else "" for j in job_ids])
        except EventIdExpiredError as exc:
            slot.release()
            return error_response(410, "event_id_expired",
                          f"{exc}; read the jobs' status, then open a stream without it")
        except BaseException:
            slot.release()
            raise
        opening = f"retry: {RECONNECT_MS}\n\n" + "".join(
            _snapshot(job_id, doc) for job_id, doc in zip(job_ids, docs, strict=True))
        environ = request.environ
        sock = environ.get("werkzeug.socket") or environ.get("gunicorn.socket")
        body = self._stream(opening, set(job_ids), resume if resume is not None else last,
                            first, sock, slot, batched)
        response = Response(body, 200, mimetype="text/event-stream")
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Accel-Buffering"] = "no"  # tell a proxy not to buffer the stream
        response.call_on_close(slot.release)  # also when the body is never started (HEAD)
        return response

    def _take_slot(self) -> _Slot | None:
        with self._lock:
            if self._open >= self.settings.max_streams:
                return None
            self._open += 1
        return _Slot(self)

    def _release(self) -> None:
        with self._lock:
            self._open -= 1

    def _stream(
        self,
        opening: str,
        wanted: set[str],
        position: int,
        batch: list[LoggedEvent],
        sock: socket.socket | None,
        slot: _Slot,
        batched: bool = False,
    ) -> Iterator[bytes]:
        """The body: the opening, then each logged event after ``position`` (of ``wanted`` jobs,
        all if empty), pings in the silences, until the store closes or the client goes."""
        store, settings, now = self.store, self.settings, self.clock.monotonic
        heartbeat = settings.event_heartbeat
        old_timeout = sock.gettimeout() if sock is not None else None
        written, ended = 0, "client gone"
        # A filtered stream is woken by the router with its jobs' changes only; it reads the
        # log itself up to feed.log_until, and for good once its inbox overflowed.
        # The router's inboxes wait in real time: on a virtual clock a stream waits on the store,
        # which follows that clock.
        feed = (self.router.subscribe(frozenset(wanted), position)
                if wanted and not self.clock.virtual else None)
        try:
            if sock is not None:  # a write that stalls this long raises, and the server drops us
                sock.settimeout(settings.event_send_timeout)
            yield opening.encode()
            last_write = now()
            # EVENT_MAX_AGE: a stream ends after that long, as behind a proxy that rotates
            # connections, and its client resumes with Last-Event-ID. On the stream's clock, as
            # the heartbeat.
            ends_at = last_write + settings.event_max_age if settings.event_max_age else math.inf
            while True:
                if batch:
                    position = batch[-1].event_id
                    chosen = [e for e in batch if e.job_id in wanted] if wanted else batch
                    if chosen:
                        yield (_changes(chosen) if batched else
                               "".join([_change(e) for e in chosen])).encode()
                        written += len(chosen)
                        last_write = now()
                elif now() - last_write >= heartbeat:
                    yield b": ping\n\n"
                    last_write = now()
                moment = now()
                if moment >= ends_at:
                    ended = f"EVENT_MAX_AGE of {settings.event_max_age:g} s reached"
                    break
                silence = min(max(heartbeat - (moment - last_write), 0.0), ends_at - moment)
                if feed is not None and feed.overflowed:
                    self.router.unsubscribe(feed)
                    feed = None
                if feed is None:
                    batch = store.wait_events(position, BATCH_EVENTS, silence)
                elif position < feed.log_until:  # the changes before the router had us
                    batch = [e for e in store.events_after(position, BATCH_EVENTS)
                             if e.event_id <= feed.log_until]
                    if not batch:
                        position = feed.log_until
                else:
                    batch = [e for e in feed.take(silence) if e.event_id > position]
        except StoreClosedError:
            ended = "server stopping"
        except EventIdExpiredError:
            ended = f"reader fell more than {settings.event_retention} events behind"
            logger.warning("event stream ended: %s", ended)
        except StoreUnavailableError as exc:  # Redis lost: end cleanly; the client resumes
            ended = "job store unavailable"
            logger.warning("event stream ended: %s", exc)
        except GeneratorExit:  # the server gave up on the client (broken pipe, send timeout)
            if sock is not None:
                with contextlib.suppress(OSError):  # so the connection ends now, not at a read
                    sock.shutdown(socket.SHUT_RDWR)
            raise
        finally:
            if feed is not None:
                self.router.unsubscribe(feed)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.settimeout(old_timeout)
            slot.release()
            logger.info("event stream closed after %d events (%s)", written, ended)


class _Slot:
    """One open stream's place in the ``MAX_STREAMS`` count; releasing twice is harmless."""

    def __init__(self, owner: EventStreams) -> None:
        self._owner: EventStreams | None = owner

    def release(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._release()


def _change(event: LoggedEvent) -> str:
    return f"id: {event.event_id}\nevent: status\ndata: {event.data}\n\n"


def _changes(events: list[LoggedEvent]) -> str:
    """Several changes as one ``statuses`` event (``?batch=1``): their documents as a JSON array,
    each already compact one-line JSON in the log, so joined without decoding."""
    return (f"id: {events[-1].event_id}\nevent: statuses\n"
            f"data: [{','.join([e.data for e in events])}]\n\n")


def _snapshot(job_id: str, doc: dict[str, Any] | None) -> str:
    if doc is None:
        error = error_body("not_found", f"no job {job_id}")
        data = json.dumps({"job_id": job_id, **error}, separators=(",", ":"))
        return f"event: not_found\ndata: {data}\n\n"
    return f"event: status\ndata: {json.dumps(doc, separators=(',', ':'))}\n\n"


def open_streams(app: Flask) -> int:
    """How many event streams ``app`` serves right now (0 when the route is off)."""
    state = state_of(app)
    streams = None if state is None else state.streams
    return 0 if streams is None else streams.open

