"""Helpers shared by the test files: fast settings, a fake clock, a live server on a free port,
and ``server.py`` run as a subprocess."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the project is a flat set of scripts, not an installed package
    sys.path.insert(0, str(ROOT))

import server  # noqa: E402

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

    Pass ``clock=fake.monotonic, wall_clock=fake.wall, start_worker=False`` to ``create_app`` and
    call ``store.process_due()`` after ``advance()``.
    """

    def __init__(self, start: float = 1000.0, wall_start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.wall_offset = wall_start - start

    def monotonic(self) -> float:
        """The fake monotonic time, in seconds."""
        return self.now

    def wall(self) -> float:
        """The fake Unix time, in seconds; it moves with the monotonic one."""
        return self.now + self.wall_offset

    def advance(self, seconds: float) -> None:
        """Moves both clocks forward."""
        self.now += seconds


class QuietRequestHandler(server._RequestHandler):
    """server.py's request handler without werkzeug's access lines (the app logs its own)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


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
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


def start_live_server(settings: server.Settings | None = None, **create_app_kwargs: Any) -> LiveServer:
    """Serves ``create_app(settings or fast_settings(), **create_app_kwargs)`` on a free port.

    The port is chosen by the OS (port 0) and read back, so parallel runs never race for one.
    """
    app = server.create_app(settings or fast_settings(), **create_app_kwargs)
    wsgi_server = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=QuietRequestHandler
    )
    # A short poll interval keeps shutdown() (which waits for the next poll) fast in teardown.
    thread = threading.Thread(
        target=wsgi_server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return LiveServer(
        url=f"http://127.0.0.1:{wsgi_server.port}",
        app=app,
        store=app.extensions["job_store"],
        _server=wsgi_server,
        _thread=thread,
    )


@dataclasses.dataclass
class ServerProcess:
    """``python server.py`` in a subprocess; its output (stdout and stderr) is kept line by line."""

    process: subprocess.Popen
    url: str
    port: int
    output: list[str]
    _reader: threading.Thread

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid

    def kill(self) -> None:
        """Kills the server at once (SIGKILL): no cleanup, no goodbye, like a crash."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self._reader.join(timeout=5)

    def stop(self) -> None:
        """Stops the server politely (SIGTERM), killing it if it does not exit within 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._reader.join(timeout=5)


def spawn_server(
    tmp_path: Path, *flags: str, port: int = 0, env: dict[str, str] | None = None,
    host: str | None = "127.0.0.1", timeout: float = 20.0,
) -> ServerProcess:
    """Starts ``server.py --host HOST --port PORT FLAGS...`` and waits until it listens.

    The server reads no ``.env`` and none of the caller's server settings (an empty
    ``--env-file`` and a scrubbed environment), only ``env``. ``port=0`` lets the OS choose;
    restart a killed server on its old port with ``port=old.port``. ``host=None`` passes no
    ``--host`` (the server's default, 127.0.0.1).

    Raises:
        RuntimeError: the server exited or did not print its address within ``timeout`` s.
    """
    env_file = tmp_path / "empty.env"
    env_file.touch()
    settings = {option.env for option in server._OPTIONS}
    environment = {k: v for k, v in os.environ.items() if k not in settings}
    environment.update(env or {}, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "server.py"), *(["--host", host] if host else []),
         "--port", str(port), "--env-file", str(env_file), *flags],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output: list[str] = []
    found: list[str] = []
    ready = threading.Event()

    def pump() -> None:  # drains the pipe for the server's whole life, so it never blocks
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            match = re.search(r"Listening on (http://127\.0\.0\.1:(\d+))", line)
            if match and not found:
                found.append(match.group(1))
                ready.set()
        ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    if not ready.wait(timeout) or not found:
        process.kill()
        process.wait(timeout=10)
        raise RuntimeError(f"server.py did not start: {output[-20:]}")
    url = found[0]
    return ServerProcess(process, url, int(url.rsplit(":", 1)[1]), output, reader)
