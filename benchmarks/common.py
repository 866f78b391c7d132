"""What the benchmark modes share: percentiles, targets, Markdown, process figures, the report.

    from benchmarks.common import MeasuredServer, Spread, Target, targets_markdown
    with MeasuredServer("scale", ["--seed", 1], workdir=Path("logs")) as server:
        print(server.rss_mb(), server.threads())

Every server is ``python server.py`` on 127.0.0.1 and a free port (``vtwait.testing.ServerProcess``,
which :class:`MeasuredServer` wraps with psutil). Every mode ends with :func:`finish`: one JSON
document (mode, command, date, machine, options, targets, results and the Markdown body) and, on
stdout, the same section :func:`section_markdown` renders from it, which is also what
``python bench.py report`` puts on ``docs/benchmarks.md``. Durations are in seconds unless a name
ends in ``_ms``; percentiles are nearest-rank.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import logging
import math
import os
import platform
import re
import shlex
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
    "MeasuredServer",
    "OptionError",
    "Spread",
    "Target",
    "add_sized_options",
    "bench_workdir",
    "chosen_names",
    "cpu_seconds",
    "fill_defaults",
    "finish",
    "machine_info",
    "markdown_table",
    "parse_wrk",
    "percentile",
    "process_tree",
    "rss_mb",
    "save_figure",
    "section_markdown",
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


class OptionError(ValueError):
    """A mode's options do not go together (the command line reports it as a usage error)."""


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
        """The spread of ``values``, each multiplied by ``scale`` (1000 for seconds to ms);
        NaN throughout for an empty sample."""
        if not values:
            return cls(math.nan, math.nan, math.nan, math.nan)
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


# ------------------------------------------------------------------------------ wrk output
_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _wrk_ms(text: str) -> float:
    found = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if found is None:
        raise BenchError(f"unreadable wrk duration {text!r}")
    return float(found.group(1)) * _WRK_UNITS[found.group(2)]


def parse_wrk(output: str) -> dict[str, float]:
    """The figures of ``wrk --latency`` output: requests, errors (socket errors and non-2xx),
    non_2xx, requests_per_s, and the latency p50, p99 and max in ms.

    Raises:
        BenchError: the output lacks a figure (wrk failed).
    """
    try:
        requests_done = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
        rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", output).group(1))  # type: ignore[union-attr]
        latency = re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", output).group(1)  # type: ignore[union-attr]
        p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1)  # type: ignore[union-attr]
        p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1)  # type: ignore[union-attr]
    except AttributeError:
        raise BenchError(f"unreadable wrk output:\n{output}") from None
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    found = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    non_2xx = int(found.group(1)) if found else 0
    return {"requests": requests_done, "errors": errors + non_2xx, "non_2xx": non_2xx,
            "requests_per_s": rate, "p50": _wrk_ms(p50), "p99": _wrk_ms(p99),
            "max": _wrk_ms(latency)}


# ----------------------------------------------------------------------- process figures
def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (a gunicorn master and its workers)."""
    try:
        return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        return [pid]


def cpu_seconds(pids: Iterable[int]) -> float:
    """User plus system CPU seconds used so far by the processes ``pids`` (gone ones count 0)."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def rss_mb(pids: Iterable[int]) -> float:
    """Resident memory of the processes ``pids`` together, in MiB."""
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / MB


# ----------------------------------------------------------------------- the report
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """The machine a run measured: CPU model, cores, memory, OS, Python."""
    return {"cpu_model": _cpu_model(), "cores": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
            "os": f"{platform.system()} {platform.release()} {platform.machine()}",
            "python": platform.python_version()}


def _plain(value: Any) -> Any:
    """``value`` as JSON can hold it (paths as text)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def finish(options: argparse.Namespace, *, title: str, notes: str, body: str,
           targets: Sequence[Target], results: Mapping[str, Any],
           calibration: str | None = None) -> dict[str, Any]:
    """A mode's end: its JSON document, printed as Markdown and written to ``--json``.

    Args:
        options: the parsed command line (``mode``, ``command``, ``quick``, ``json``, and
            ``started``, the ``time.monotonic()`` of the run's start).
        title: the section's heading.
        notes: what the figures mean, after the machine line.
        body: the Markdown tables, without the targets.
        targets: the issue's targets, read off the results.
        results: the mode's figures, top-level keys of the document.
        calibration: a reference figure measured in the same run, if the mode has one.

    Returns:
        The document.
    """
    skip = {"command", "handler", "json", "mode", "server_logs", "plot", "started", "verbose"}
    started = getattr(options, "started", None)
    document: dict[str, Any] = {
        "mode": options.mode, "title": title, "command": options.command,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_s": None if started is None else round(time.monotonic() - started),
        "machine": machine_info(), "quick": bool(options.quick),
        "options": {k: _plain(v) for k, v in sorted(vars(options).items()) if k not in skip},
        "percentiles": "nearest-rank", "notes": notes, "calibration": calibration,
        **{k: _plain(v) for k, v in results.items()},
        "targets": [dataclasses.asdict(t) for t in targets], "body": body}
    print(section_markdown(document), flush=True)
    if options.json:
        write_json(options.json, document)
    return document


def section_markdown(document: Mapping[str, Any]) -> str:
    """A run's section of the report, from its JSON document alone: the title, the command, the
    date and the machine, the notes, the calibration, the tables and the targets."""
    machine = document["machine"]
    parts = [f"## {document['title']}"]
    if document.get("quick"):
        parts.append("**Quick run** (`--quick`: tiny sizes, so these figures show that the "
                     "benchmark runs, not what the code can do).")
    parts.append(f"Command: `{document['command']}`")
    took = f" (took {document['elapsed_s']} s)" if document.get("elapsed_s") is not None else ""
    parts.append(f"Run {document['date']}{took} on {machine['cpu_model']}, {machine['cores']} CPUs, "
                 f"{machine['memory_gb']:g} GB, {machine['os']}, Python {machine['python']}. "
                 f"Percentiles: nearest rank. {document['notes']}".rstrip())
    if document.get("calibration"):
        parts.append(f"Calibration: {document['calibration']}")
    parts.append(document["body"].rstrip())
    targets = [Target(**t) for t in document["targets"]]
    parts.append(f"### Targets\n\n{targets_markdown(targets)}\n")
    return "\n\n".join(parts)


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
                   timeout: float, server: MeasuredServer) -> tuple[float, list[Any]]:
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


class MeasuredServer:
    """``vtwait.testing.ServerProcess`` measured with psutil: a fresh ``python server.py`` on a
    free loopback port, settings only from ``args`` and ``env``, its log in
    ``<workdir>/<name>.log``.

    Memory and threads are those of the process that serves: gunicorn's worker, or the server
    itself under ``--dev-server``; CPU seconds add up the master and its workers.
    """

    def __init__(self, name: str, args: Sequence[object], *, workdir: Path,
                 env: Mapping[str, str] | None = None, startup_timeout: float = 30.0,
                 launcher: Callable[[Path], Any] | None = None):
        self.launcher = launcher  #: starts another server than server.py (with url, port, pid)
        self.name = name
        self.args = [str(a) for a in args]
        self.env = dict(env or {})
        self.log_path = workdir / f"{name}.log"
        self.startup_timeout = startup_timeout

    def __enter__(self) -> MeasuredServer:
        logger.info("starting server %s: server.py %s", self.name, shlex.join(self.args))
        try:
            self.process = (self.launcher(self.log_path) if self.launcher is not None else
                            testing.ServerProcess.start(*self.args, env=self.env,
                                                        log_path=self.log_path,
                                                        timeout=self.startup_timeout))
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
        return cpu_seconds(process_tree(self.master.pid))

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


# ------------------------------------------------------------------------ mode options
def add_sized_options(parser: argparse.ArgumentParser,
                      specs: Sequence[tuple[str, type, str]],
                      defaults: Mapping[str, float], quick: Mapping[str, float]) -> None:
    """A mode's size options (``--jobs``, ``--min-delay``, ...): ``(name, type, text)`` each,
    unset by default so that :func:`fill_defaults` picks the full run's or ``--quick``'s value;
    the help names both."""
    for name, kind, text in specs:
        key = name.replace("-", "_")
        parser.add_argument(f"--{name}", type=kind, help=f"{text} (default: "
                            f"{defaults[key]:g}; --quick: {quick[key]:g})")


def fill_defaults(options: argparse.Namespace, defaults: Mapping[str, Any],
                  quick: Mapping[str, Any]) -> None:
    """Sets each option left unset to the full run's value, or ``--quick``'s."""
    for key, value in {**defaults, **(quick if options.quick else {})}.items():
        if getattr(options, key) is None:
            setattr(options, key, value)


def chosen_names(text: str, known: Sequence[str], option: str) -> list[str]:
    """The comma-separated names of ``--<option>``, in order; OptionError for none or unknown."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or set(names) - set(known):
        raise OptionError(f"--{option}: choose from {', '.join(known)}")
    return names
