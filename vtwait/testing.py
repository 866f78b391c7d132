"""Real servers in subprocesses, for demos, tests and benchmarks (yours too).

    from vtwait.testing import ServerProcess
    with ServerProcess.start("--min-delay", "1", "--max-delay", "2") as server:
        ...  # server.url is the simulator's base URL, on a free loopback port

:class:`ServerProcess` runs ``python -m vtwait.server`` (the same code as ``python server.py``);
:class:`RedisServer` runs a private ``redis-server`` on a free loopback port in a temporary folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import redis

from vtwait.server.cli import LISTENING_LINE
from vtwait.server.settings import OPTIONS

__all__ = ["RedisServer", "ServerProcess", "stop_process"]

#: The folder that holds the ``vtwait`` package (a checkout's root, or site-packages).
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]
_LISTENING_RE = re.compile(re.escape(LISTENING_LINE).replace(r"\{url\}", r"(https?://\S+)"))


def stop_process(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """Stops a child process politely (SIGTERM), killing it if it has not exited in ``timeout`` s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


@dataclasses.dataclass
class ServerProcess:
    """``python server.py`` in a subprocess, for demos, tests and benchmarks.

    :meth:`start` returns once the server listens. Its settings come only from the flags and
    ``env``: the caller's own server settings are cleared from the environment and no ``.env`` is
    read. Every line the server prints (stdout and stderr) is kept in ``output`` and handed to
    ``echo``, if given.
    """

    process: subprocess.Popen
    url: str
    output: list[str]
    _reader: threading.Thread

    @classmethod
    def start(
        cls,
        *flags: str,
        port: int = 0,
        host: str | None = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        echo: Callable[[str], None] | None = None,
        log_path: str | os.PathLike | None = None,
        timeout: float = 20.0,
    ) -> ServerProcess:
        """Starts ``python -m vtwait.server --host HOST --port PORT FLAGS...``; returns once it listens.

        ``port=0`` lets the OS choose (restart a killed server on its old port with
        ``port=old.port``); ``host=None`` passes no ``--host``, leaving the server's default.
        ``log_path`` sends the server's stderr, its log, straight to that file, so that a
        benchmark does not spend its own CPU reading it.

        Raises:
            RuntimeError: the server exited, or did not say where it listens within ``timeout``.
        """
        names = {option.env for option in OPTIONS}
        environment = {k: v for k, v in os.environ.items() if k not in names}
        environment.update(env or {}, PYTHONUNBUFFERED="1")
        # The package's folder first, so a checkout that is not installed serves its own code.
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(_PACKAGE_ROOT), environment.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "vtwait.server", *(["--host", host] if host else []),
                   "--port", str(port), "--env-file", os.devnull, *flags]
        with open(log_path, "w", encoding="utf-8") if log_path else contextlib.nullcontext() as log:
            process = subprocess.Popen(
                command, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=log or subprocess.STDOUT, text=True,
                start_new_session=True)  # its own process group: kill() reaches the workers too
        output: list[str] = []
        urls: list[str] = []
        ready = threading.Event()

        def pump() -> None:  # drains the pipe for the server's whole life, so it never blocks
            assert process.stdout is not None
            for line in process.stdout:
                output.append(line.rstrip("\n"))
                if echo is not None:
                    echo(output[-1])
                found = _LISTENING_RE.search(line)
                if found and not urls:
                    urls.append(found.group(1))
                    ready.set()
            ready.set()

        reader = threading.Thread(target=pump, name="server-output", daemon=True)
        reader.start()
        if not ready.wait(timeout) or not urls:
            process.kill()
            process.wait(timeout=10)
            raise RuntimeError(f"the simulator did not start: {output[-20:]}")
        return cls(process, urls[0], output, reader)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid

    def kill(self) -> None:
        """Kills the server and its worker processes at once (SIGKILL), like a crash."""
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._reader.join(timeout=5)

    def stop(self) -> None:
        """Stops the server politely (SIGTERM), killing it if it does not exit within 10 s."""
        stop_process(self.process)
        self._reader.join(timeout=5)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()




#: Databases of the test server: one per app a test run builds (recycled after that many).
DATABASES = 1000


def _free_port() -> int:
    """A port free right now (redis-server has no ``--port 0``); start() retries on a clash."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclasses.dataclass
class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, its data in ``folder``."""

    folder: Path
    port: int
    appendonly: bool
    process: subprocess.Popen | None = None
    _next_db: int = 0

    @classmethod
    def start(cls, folder: Path, *, appendonly: bool = False) -> RedisServer:
        """Starts a server on a free port (retrying if another process takes it first).

        Raises:
            RuntimeError: ``redis-server`` is not installed, or would not start.
        """
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (.ci/run installs it)")
        folder.mkdir(parents=True, exist_ok=True)
        error = ""
        for _ in range(5):
            server = cls(folder, _free_port(), appendonly)
            try:
                server._launch()
                return server
            except RuntimeError as exc:  # most likely the port was taken in between
                error = str(exc)
        raise RuntimeError(f"redis-server would not start: {error}")

    def _launch(self) -> None:
        command = [
            "redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
            "--dir", str(self.folder), "--save", "", "--databases", str(DATABASES),
            "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
            "--logfile", str(self.folder / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + 15
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"exited with {self.process.returncode}: {self._log_tail()}")
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    time.sleep(0.02)
        finally:
            client.close()
        self.kill()
        raise RuntimeError(f"no answer within 15 s: {self._log_tail()}")

    def _log_tail(self) -> str:
        log = self.folder / "redis.log"
        return log.read_text(errors="replace")[-500:] if log.exists() else ""

    def url(self, db: int = 0) -> str:
        """The ``JOB_STORE`` URL of database ``db``."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def fresh_url(self) -> str:
        """The URL of a database no other app of this run uses now, emptied first."""
        self._next_db = self._next_db % (DATABASES - 1) + 1  # 0 is left to tests that ask for it
        with redis.Redis(port=self.port, db=self._next_db) as client:
            client.flushdb()
        return self.url(self._next_db)

    def client(self, db: int = 0) -> redis.Redis:
        """A plain client of database ``db`` (strings decoded)."""
        return redis.Redis(port=self.port, db=db, decode_responses=True)

    def stop(self) -> None:
        """Stops the server politely (SIGTERM)."""
        if self.process is not None:
            stop_process(self.process)

    def kill(self) -> None:
        """Kills the server at once (SIGKILL), like a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        """Starts it again on the same port and folder (with AOF on, the data comes back)."""
        self.kill()
        for _ in range(50):  # the old socket may linger a moment
            try:
                self._launch()
                return
            except RuntimeError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server would not restart on port {self.port}")
