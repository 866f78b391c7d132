"""Helpers shared by the test files: fast settings, a fake clock, live servers on free ports.

``server.py`` as a subprocess is ``testing.ServerProcess``; the client's test doubles are in
``fakes.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

import vtwait.server.app as server
import vtwait.testing as testing
from vtwait.server.devserver import RequestHandler
from vtwait.server.settings import OPTIONS
from vtwait.server.state import app_state

#: The checkout's root (server.py, gunicorn.conf.py).
ROOT = Path(__file__).resolve().parents[1]

#: Job duration used by fast_settings(): short enough to wait for, long enough to see pending.
FAST_DELAY = 0.05


def fast_settings(**overrides: Any) -> server.Settings:
    """Settings for tests: jobs of FAST_DELAY seconds that all complete, no auth, seed 1, exact ETA.

    Any ``Settings`` field can be overridden, e.g. ``fast_settings(error_probability=1.0)``.
    """
    values: dict[str, Any] = {
        "min_delay": FAST_DELAY,
        "max_delay": FAST_DELAY,
        "error_probability": 0.0,
        "seed": 1,
        "eta_noise": 0.0,
        "api_username": None,
        "api_password": None,
    }
    values.update(overrides)
    return server.Settings(**values)


class FakeClock:
    """A monotonic clock and a wall clock that move only when told, together.

    Server: pass ``clock=fake.monotonic, wall_clock=fake.wall, start_worker=False`` to
    ``create_app`` and call ``store.process_due()`` after ``advance()``. Client: pass
    ``clock=fake, sleep=fake.sleep``; every sleep is recorded in ``sleeps`` and moves the clock.
    """

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.wall_offset = wall_start - start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """The fake monotonic time, in seconds."""
        return self.now

    __call__ = monotonic

    def sleep(self, seconds: float) -> None:
        """Records the sleep and moves both clocks forward by it, at once."""
        assert seconds >= 0, f"negative sleep {seconds}"
        self.sleeps.append(seconds)
        self.now += seconds

    def wall(self) -> float:
        """The fake Unix time, in seconds; it moves with the monotonic one."""
        return self.now + self.wall_offset

    def advance(self, seconds: float) -> None:
        """Moves both clocks forward."""
        self.now += seconds


@dataclasses.dataclass
class LiveServer:
    """A real threaded HTTP server on 127.0.0.1 and a free port, serving one app in a thread."""

    url: str
    app: Flask
    store: server.JobStore
    _server: BaseWSGIServer
    _thread: threading.Thread
    _stopped: bool = False

    def stop(self) -> None:
        """Stops serving, joins the serving thread and the job timer; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self.store.shutdown()  # releases held long-polls first, so their threads end
        app_state(self.app).webhooks.close()
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


def _serve(app: Any) -> tuple[BaseWSGIServer, threading.Thread]:
    """Any WSGI app on 127.0.0.1 and a port the OS chooses (read back, so runs never race)."""
    wsgi_server = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=RequestHandler
    )
    # A short poll interval keeps shutdown() (which waits for the next poll) fast in teardown.
    thread = threading.Thread(
        target=wsgi_server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return wsgi_server, thread


@contextlib.contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    """Serves any WSGI app (a plain test backend, say) in a thread; yields its base URL."""
    wsgi_server, thread = _serve(app)
    try:
        yield f"http://127.0.0.1:{wsgi_server.port}"
    finally:
        wsgi_server.shutdown()
        thread.join()
        wsgi_server.server_close()


def start_live_server(settings: server.Settings | None = None, **create_app_kwargs: Any) -> LiveServer:
    """Serves ``create_app(settings or fast_settings(), **create_app_kwargs)`` on a free port."""
    app = server.create_app(settings or fast_settings(), **create_app_kwargs)
    wsgi_server, thread = _serve(app)
    return LiveServer(
        url=f"http://127.0.0.1:{wsgi_server.port}",
        app=app,
        store=app_state(app).store,
        _server=wsgi_server,
        _thread=thread,
    )


def settings_env(settings: server.Settings) -> dict[str, str]:
    """``settings`` as the environment variables ``python server.py`` reads (unset ones left out)."""
    env = {}
    for option in OPTIONS:
        value = getattr(settings, option.env.lower())
        if value is None:
            continue
        env[option.env] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return env


def start_server_process(settings: server.Settings | None = None, *flags: str,
                         **kwargs: Any) -> testing.ServerProcess:
    """``python server.py`` as users run it, with ``settings`` (default fast_settings()) passed
    through its environment; stop it with ``.stop()`` (or use it as a context manager)."""
    return testing.ServerProcess.start(*flags, env=settings_env(settings or fast_settings()),
                                      **kwargs)


def serving_process(srv: testing.ServerProcess, timeout: float = 20.0) -> Any:
    """The ``psutil.Process`` that serves requests: gunicorn's (only) worker, or the server itself
    under ``--dev-server``."""
    import time

    import psutil

    master = psutil.Process(srv.pid)
    deadline = time.monotonic() + timeout
    while not (children := master.children()):
        if "--dev-server" in srv.process.args or time.monotonic() > deadline:  # type: ignore[operator]
            return master
        time.sleep(0.05)
    return children[0]
