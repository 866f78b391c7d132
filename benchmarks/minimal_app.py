"""The calibration of ``bench.py scale``: a minimal Flask route, served as ``python server.py`` is.

    python -m benchmarks.minimal_app --port 0     # prints "Listening on http://127.0.0.1:PORT ..."

Served by the same code as the simulator (``vtwait.server.serving.serve``: gunicorn, its gevent
worker, one worker process, the same limits), with an app of the least a JSON route can be:
``GET /status/<id>`` answers ``{"job_id": id, "result": "pending"}`` from a plain Flask view, with
no hooks, no store, no auth, no log line. The status throughput of ``python server.py`` over this
one's, measured in the same run, is the share of the serving stack's capacity the simulator keeps
(issue 19's goal: >= 0.85); a slow day lowers both, so the ratio tells a slow day from a
regression. ``POST /start`` and ``GET /status`` answer too, so the throughput benchmark's warm-up
runs against it unchanged.

:class:`MinimalServer` starts it as a subprocess the way ``vtwait.testing.ServerProcess`` starts
the simulator (its own process group, ready once it prints where it listens).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["MinimalServer", "create_minimal_app", "main"]

_ROOT = Path(__file__).resolve().parents[1]
_LISTENING_RE = re.compile(r"Listening on (https?://\S+)")


def create_minimal_app(settings: Any = None) -> Any:
    """The calibration app: one JSON route (and a start and a default status for the warm-up)."""
    from flask import Flask

    app = Flask("minimal")

    @app.get("/status/<job_id>")
    def status(job_id: str) -> dict[str, str]:
        return {"job_id": job_id, "result": "pending"}

    @app.get("/status")
    def default_status() -> dict[str, str]:
        return {"job_id": "default", "result": "pending"}

    @app.post("/start")
    def start() -> tuple[dict[str, str], int]:
        return {"job_id": "minimal", "result": "pending"}, 201

    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Serves the minimal app on gunicorn + gevent until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.minimal_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    from gevent import monkey  # before anything else, as python server.py does

    monkey.patch_all()
    from vtwait.server import serving
    from vtwait.server.settings import Settings

    return serving.serve(Settings(), args.host, args.port, app_factory=create_minimal_app,
                         listening_line="Listening on {url}", prog="minimal_app")


class MinimalServer:
    """``python -m benchmarks.minimal_app`` in a subprocess: ``url``, ``port``, ``pid``,
    ``stop()``; its output goes to ``log_path``."""

    def __init__(self, log_path: Path, timeout: float = 30.0) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT),
                                                           os.environ.get("PYTHONPATH")]))}
        self._log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.minimal_app", "--port", "0"], cwd=_ROOT, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log, text=True,
            start_new_session=True)
        found: list[str] = []
        ready = threading.Event()

        def pump() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                match = _LISTENING_RE.search(line)
                if match and not found:
                    found.append(match.group(1))
                    ready.set()
            ready.set()

        self._reader = threading.Thread(target=pump, daemon=True)
        self._reader.start()
        if not ready.wait(timeout) or not found:
            self.stop()
            raise RuntimeError("the minimal app did not start")
        self.url = found[0]
        self.port = int(self.url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        self._log.close()


if __name__ == "__main__":
    sys.exit(main())
