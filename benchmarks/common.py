"""What the benchmark modes share: percentiles, targets, Markdown tables, a measured server.

    from benchmarks.common import ServerProcess, Spread, Target, targets_markdown
    with ServerProcess("scale", ["--seed", 1], workdir=Path("logs")) as server:
        print(server.rss_mb(), server.threads())

Every server is ``python server.py`` on 127.0.0.1 and a free port. Durations are in seconds unless
a name ends in ``_ms``; percentiles are nearest-rank.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import shlex
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

import vtwait.testing as testing

__all__ = [
    "BenchError",
    "HOST",
    "MB",
    "ServerProcess",
    "Spread",
    "Target",
    "bench_workdir",
    "markdown_table",
    "percentile",
    "report_header",
    "save_figure",
    "sleep_until",
    "start_together",
    "targets_markdown",
    "write_json",
]

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
MB = 1024 * 1024


class BenchError(RuntimeError):
    """The benchmark could not measure what it set out to (a crash, a wrong job result)."""


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of a non-empty sample."""
    if not values:
        raise ValueError("percentile of an empty sample")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Spread:
    """Nearest-rank percentiles and maximum of a sample."""

    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float], scale: float = 1.0) -> Spread:
        """The spread of ``values``, each multiplied by ``scale`` (1000 for seconds to ms)."""
        return cls(*(percentile(values, q) * scale for q in (50, 95, 99, 100)))


@dataclass(frozen=True)
class Target:
    """One target of an issue, read off the measurements."""

    name: str
    goal: str
    measured: str
    passed: bool


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]],
                   align: str = "") -> str:
    """A Markdown table; ``align`` has one letter per column, ``l`` or ``r`` (default ``r``)."""
    align = align.ljust(len(headers), "r")
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "".join(" --- |" if a == "l" else " ---: |" for a in align)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def targets_markdown(targets: Sequence[Target]) -> str:
    """The targets as a Markdown table with a PASS or MISS verdict each."""
    rows = [(t.name, t.goal, t.measured, "PASS" if t.passed else "**MISS**") for t in targets]
    return markdown_table(("target", "goal", "measured", "verdict"), rows, "llll")


def report_header(title: str, argv: Sequence[str]) -> str:
    """A title, the exact command and the machine, for pasting into the README."""
    command = shlex.join(["python", "bench.py", *argv])
    return (f"## {title}\n\nCommand: `{command}`\n\nMachine: {os.cpu_count()} CPUs, "
            f"{platform.system()} {platform.machine()}, Python {platform.python_version()}. "
            "Percentiles: nearest rank.")


def sleep_until(moment: float) -> None:
    """Sleep until the Unix time ``moment``."""
    while (left := moment - time.time()) > 0:
        time.sleep(min(left, 0.5))


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Writes a benchmark's results as indented JSON (creating the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s", path)


@contextlib.contextmanager
def bench_workdir(server_logs: Path | None) -> Iterator[Path]:
    """The folder for the servers' logs: ``server_logs`` (created) when given, else a temporary
    folder removed on exit."""
    if server_logs:
        server_logs.mkdir(parents=True, exist_ok=True)
        yield server_logs
        return
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        yield Path(tmp)


def save_figure(fig: Any, path: Path) -> None:
    """Writes a matplotlib figure as a PNG (creating the folder) and frees it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def start_together(name: str, barrier: threading.Barrier, futures: Sequence[Future[Any]],
                   timeout: float, server: ServerProcess) -> tuple[float, list[Any]]:
    """Lets every job thread go at once (each waits on ``barrier``) and collects their results.

    Returns:
        When they went (``time.monotonic()``), and the futures' results in order.

    Raises:
        BenchError: the threads never all got ready, or one failed (with the server log's end).
    """
    try:
        barrier.wait(timeout=120)
    except threading.BrokenBarrierError:
        raise BenchError(f"{name}: the job threads never all got ready") from None
    started = time.monotonic()
    try:
        results = [f.result(timeout=timeout + 60) for f in futures]
    except Exception as exc:
        raise BenchError(f"{name}: a wait failed: {exc!r}; server log ends with:\n"
                         f"{server.log_tail()}") from exc
    return started, results


class ServerProcess:
    """``server.ServerProcess`` measured with psutil: a fresh ``python server.py`` on a free
    loopback port, settings only from ``args`` and ``env``, its log in ``<workdir>/<name>.log``.

    Memory and threads are those of the process that serves: gunicorn's worker, or the server
    itself under ``--dev-server``; CPU seconds add up the master and its workers.
    """

    def __init__(self, name: str, args: Sequence[object], *, workdir: Path,
                 env: Mapping[str, str] | None = None, startup_timeout: float = 30.0):
        self.name = name
        self.args = [str(a) for a in args]
        self.env = dict(env or {})
        self.log_path = workdir / f"{name}.log"
        self.startup_timeout = startup_timeout

    def __enter__(self) -> ServerProcess:
        logger.info("starting server %s: server.py %s", self.name, shlex.join(self.args))
        try:
            self.process = testing.ServerProcess.start(
                *self.args, env=self.env, log_path=self.log_path, timeout=self.startup_timeout)
        except RuntimeError as exc:
            raise BenchError(f"server {self.name} did not start ({exc}); its log ends with:\n"
                             f"{self.log_tail()}") from exc
        self.url, self.port = self.process.url, self.process.port
        self.master = psutil.Process(self.process.pid)
        self.ps = self._serving_process()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.stop()

    def _serving_process(self, timeout: float = 30.0) -> psutil.Process:
        if "--dev-server" in self.args:
            return self.master
        deadline = time.monotonic() + timeout
        while not (children := self.master.children()):
            if time.monotonic() > deadline:
                raise BenchError(f"server {self.name}: no gunicorn worker after {timeout:g} s")
            time.sleep(0.05)
        return children[0]

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def cpu_seconds(self) -> float:
        """User plus system CPU seconds used by the server's processes."""
        total = 0.0
        for process in (self.master, *self.master.children()):
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def rss_mb(self) -> float:
        """Resident memory of the serving process, in MiB."""
        return self.ps.memory_info().rss / MB

    def threads(self) -> int:
        """Threads of the serving process."""
        return self.ps.num_threads()

    def settled_threads(self, at_most: int | None = None, timeout: float = 10.0) -> int:
        """Threads once connection threads have ended: at most ``at_most``, or steady for 0.5 s."""
        deadline = time.monotonic() + timeout
        history = [self.threads()]
        while time.monotonic() < deadline:
            if at_most is not None and history[-1] <= at_most:
                break
            if at_most is None and len(history) >= 6 and len(set(history[-6:])) == 1:
                break
            time.sleep(0.1)
            history.append(self.threads())
        return history[-1]
