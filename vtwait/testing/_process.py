"""``ServerProcess``: the simulator in a subprocess (``python -m vtwait.server``)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vtwait.server.cli import LISTENING_LINE
from vtwait.server.settings import OPTIONS

__all__ = ["ServerProcess", "stop_process"]

#: The folder that holds the ``vtwait`` package (a checkout's root, or site-packages).
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
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
