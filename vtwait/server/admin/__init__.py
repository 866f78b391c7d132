"""The control API (``/_admin/``): fault rules, the request journal, scripted jobs, reset, clock.

On only when ``ADMIN_TOKEN`` is set (else every ``/_admin/...`` path is a 404); see ``auth.py``
for who may call it and ``routes.py`` for the routes. This package also holds the per-request
hooks the control API drives: the fault rules play before each API view (``faults.py``), and each
answered request is written to the journal (``journal.py``). Everything here lives in one process:
with several gunicorn workers each has its own rules, journal and scripts (the docs say so)::

    admin = AdminState.build(settings, faults, clock=time.monotonic, wall_clock=time.time)
    install(app, admin)          # after the app's own hooks: auth plays before faults
"""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Callable

from flask import Flask, Response, g, request

from vtwait.server.admin.journal import Journal
from vtwait.server.admin.routes import ADMIN_BLUEPRINT, admin_api, check_caller
from vtwait.server.admin.scripts import ScriptBook
from vtwait.server.faults import Faults
from vtwait.server.routenames import ADMIN_PREFIX, job_id_of, route_of_request
from vtwait.server.settings import Settings
from vtwait.server.stores.base import JOB_ID_RE

__all__ = ["ADMIN_BLUEPRINT", "AdminState", "install"]


@dataclasses.dataclass(frozen=True, slots=True)
class AdminState:
    """What the control API drives in one app.

    Attributes:
        settings: ``ADMIN_TOKEN``, ``ADMIN_ALLOW_REMOTE``, ``JOURNAL_SIZE``.
        faults: the fault rules (the same object as the app state's ``faults``).
        journal: the request journal.
        scripts: scripted jobs.
        clock: monotonic seconds of the app (``GET /_admin/clock`` without a clock object).
        wall_clock: Unix seconds of the app (journal times, the scripts' elapsed time).
    """

    settings: Settings
    faults: Faults
    journal: Journal
    scripts: ScriptBook
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time

    @classmethod
    def build(cls, settings: Settings, faults: Faults, *, clock: Callable[[], float],
              wall_clock: Callable[[], float], secrets: tuple[str | None, ...] = ()) -> AdminState:
        """The control API's parts; ``secrets`` are redacted from the journal wherever they
        appear (the API and admin credentials are always among them)."""
        known = [settings.admin_token, settings.api_password, settings.api_key, *secrets]
        if settings.auth_enabled:
            pair = f"{settings.api_username}:{settings.api_password}".encode()
            known.append(base64.b64encode(pair).decode())
        journal = Journal(settings.journal_size, [s for s in known if s])
        return cls(settings=settings, faults=faults, journal=journal,
                   scripts=ScriptBook(wall_clock=wall_clock), clock=clock, wall_clock=wall_clock)


def install(app: Flask, admin: AdminState) -> None:
    """Registers the control API and the hooks it drives (faults before views, the journal)."""
    app.register_blueprint(admin_api)
    app.before_request(check_caller)
    faults, journal, wall_clock = admin.faults, admin.journal, admin.wall_clock

    @app.before_request
    def _play_faults() -> Response | None:
        if not faults.enabled:
            return None
        path = request.path
        return faults.inject(route_of_request(app, path, request.endpoint),
                             job_id_of(path, request.args) or _view_job_id())

    if not admin.settings.admin_token:
        # No control API, so no journal to read: only the trickle a FAULT_* rule may ask for
        # (recording each request cost a status request about a fifth of its CPU).
        app.after_request(faults.trickle)
        return

    @app.after_request
    def _journal_and_trickle(response: Response) -> Response:
        path = request.path
        if not path.startswith(ADMIN_PREFIX):
            started = g.get("started")
            elapsed_ms = 0.0 if started is None else (time.perf_counter() - started) * 1000
            route = route_of_request(app, path, request.endpoint)
            job_id = job_id_of(path, request.args) or _view_job_id()
            if job_id is None and route == "start" and response.is_json \
                    and not response.is_streamed:
                doc = response.get_json(silent=True)
                if isinstance(doc, dict) and isinstance(doc.get("job_id"), str):
                    job_id = doc["job_id"]
            journal.record(method=request.method, path=path, route=route, job_id=job_id,
                           status=0 if g.get("dropped") else response.status_code,
                           duration_ms=elapsed_ms, headers=request.headers.items(),
                           at=wall_clock())  # answered: a held long-poll's end, virtual or not
        return faults.trickle(response)


def _view_job_id() -> str | None:
    """The job a dialect's view names in its path (``/v1/operations/<job_id>``), if any."""
    job_id = (request.view_args or {}).get("job_id")
    return job_id if isinstance(job_id, str) and JOB_ID_RE.fullmatch(job_id) else None
