"""``RedisServer``: a private ``redis-server`` on a free loopback port (needs the ``redis`` extra)."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from vtwait.testing._process import stop_process

__all__ = ["RedisServer"]


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
