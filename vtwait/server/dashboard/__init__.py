"""The live dashboard: one page at ``GET /``, fed by ``GET /events`` and a small summary.

Usage::

    python server.py                      # then open http://127.0.0.1:8000/ in a browser
    curl -u admin:secret http://127.0.0.1:8000/dashboard/summary

The page (``index.html``, ``app.js``, ``style.css`` beside this module, package data read with
importlib.resources) is plain HTML, CSS and JavaScript: no build step, nothing fetched from
another host (its ``Content-Security-Policy`` allows this origin only). It is behind the same
HTTP Basic auth as the API. It learns the jobs from the event stream (``EventSource('/events')``,
which resumes with ``Last-Event-ID`` after a drop) and polls ``GET /dashboard/summary`` every
couple of seconds for the counters; it never polls once per job.

``GET /dashboard/summary`` answers::

    {"time": 1700000000.5,            the server's Unix time (the page's ages use it)
     "last_event_id": 1700000000000042,   the event log's last id: the page streams after it
     "replay_from": 1700000000000000,     resuming after this id replays the whole retained log
     "jobs": {"queued": 0, "running": 2, "completed": 5, "error": 1, "canceled": 0},
     "live_jobs": 8,                  jobs not yet forgotten (the default job included)
     "long_polls_held": 3, "streams_open": 1,
     "requests_total": 1234,          answers given by this process (the page derives req/s)
     "events": true,                  GET /events is served
     "control_api": false}            the /_admin/ control API is on (ADMIN_TOKEN set)

The counts are kept by a store listener in this process, so they are exact for the memory store
(one process); with the Redis store and several workers each worker counts the changes it made.
"""

from __future__ import annotations

import functools
import importlib.resources
import threading
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

from vtwait.server.errors import error_response
from vtwait.server.events import open_streams
from vtwait.server.settings import Settings
from vtwait.server.stores.base import EventIdExpiredError, JobEvent, JobStore

__all__ = ["ASSETS", "CONTENT_SECURITY_POLICY", "EXTENSION_KEY", "Dashboard", "register_dashboard"]

#: The page's files (package data beside this module) and their content types.
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
#: This origin only: the page works offline and nothing is loaded from another host.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                           "base-uri 'none'; frame-ancestors 'none'")
#: The ``app.extensions`` key of the app's :class:`Dashboard`.
EXTENSION_KEY = "vtwait.dashboard"
#: The phases a job can be in (``JobPhase``), counted by the summary.
PHASES = ("queued", "running", "completed", "error", "canceled")

dashboard = Blueprint("dashboard", __name__)


class Dashboard:
    """The summary's counters: jobs by phase (from the store's events) and answers given.

    Args:
        store: whose events are counted.
        settings: ``EVENTS`` and ``ADMIN_TOKEN`` (the control API) for the summary.
        wall_clock: Unix seconds, the app's injected wall clock.
    """

    def __init__(self, store: JobStore, settings: Settings, wall_clock: Callable[[], float]) -> None:
        self.store = store
        self.settings = settings
        self.wall_clock = wall_clock
        self._lock = threading.Lock()
        self._phases = dict.fromkeys(PHASES, 0)
        self._phase_of: dict[str, str] = {}  # live job -> its phase, to move it on each change
        self._requests = 0

    def on_job_event(self, event: JobEvent) -> None:
        """Store listener: moves the job from its old phase's count to its new one."""
        with self._lock:
            old = self._phase_of.pop(event.job_id, None)
            if old is not None:
                self._phases[old] -= 1
            if event.kind != "evicted":
                phase = str(event.doc.get("phase", ""))
                if phase in self._phases:
                    self._phase_of[event.job_id] = phase
                    self._phases[phase] += 1

    def count_request(self, response: Response) -> Response:
        """``after_request`` hook: one more answer given."""
        with self._lock:
            self._requests += 1
        return response

    def summary(self, streams_open: int) -> dict[str, Any]:
        """The document of ``GET /dashboard/summary``."""
        _, last_event_id = self.store.event_snapshot([])
        try:  # the retained log's start: the page replays it when the server has no GET /jobs
            self.store.events_after(0, 1)
            replay_from = 0
        except EventIdExpiredError as exc:
            replay_from = min(exc.oldest - 1, last_event_id)
        with self._lock:
            phases, requests = dict(self._phases), self._requests
        return {
            "time": self.wall_clock(),
            "last_event_id": last_event_id,
            "replay_from": replay_from,
            "jobs": phases,
            "live_jobs": len(self.store),
            "long_polls_held": self.store.waiters,
            "streams_open": streams_open,
            "requests_total": requests,
            "events": self.settings.events and not self.settings.plain,
            # ADMIN_TOKEN comes with the control API (issue 17); absent, the API is off.
            "control_api": bool(getattr(self.settings, "admin_token", None)),
        }


def register_dashboard(app: Flask, store: JobStore, settings: Settings, *,
                       wall_clock: Callable[[], float]) -> Dashboard:
    """Adds ``GET /``, ``GET /dashboard/<asset>`` and ``GET /dashboard/summary`` to ``app``.

    Call it before the store starts jobs, so that every job is counted.
    """
    board = Dashboard(store, settings, wall_clock)
    store.add_listener(board.on_job_event)
    app.after_request(board.count_request)
    app.extensions[EXTENSION_KEY] = board
    app.register_blueprint(dashboard)
    return board


@dashboard.get("/")
def index() -> Response:
    return _asset("index.html")


@dashboard.get("/dashboard/summary")
def summary() -> Response:
    board: Dashboard = current_app.extensions[EXTENSION_KEY]
    return jsonify(board.summary(open_streams(current_app)))


@dashboard.get("/dashboard/<name>")
def asset(name: str) -> Response:
    if name not in ASSETS or name == "index.html":  # the page itself is served at / only
        return error_response(404, "not_found", f"no dashboard file {name}"[:200])
    return _asset(name)


def _asset(name: str) -> Response:
    response = Response(_read(name), 200, content_type=ASSETS[name])
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"  # revalidate: a new release shows at once
    return response


@functools.cache
def _read(name: str) -> bytes:
    """A page file's bytes, read once from the package."""
    return (importlib.resources.files(__name__) / name).read_bytes()
