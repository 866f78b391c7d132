"""The download mode: a job's output fetched with ``client.download``, its connection dropped
mid-way, over real HTTP.

    python bench.py download --json docs/bench-results/download.json
    python bench.py download --quick                # a few seconds

One job with a 64 MiB output (``--size-mib``) on a fresh ``server.py`` subprocess on 127.0.0.1
whose ``FAULT_OUTPUT_DROP`` cuts each job's first download after half the bytes; the client's
download resumes with ``Range`` and verifies size and SHA-256. Figures, per way:

* ``dropped``: the first download, with the drop;
* ``clean``: the same job downloaded again (the fault fires once per job), the calibration: this
  machine's loopback throughput through the client, to read the other figures against.

Each: bytes received over the network (re-reads included) over the bytes needed (the output's
size), requests sent, wall time and throughput. The target of the issue: received / needed <= 1.05
with the drop. Sizes in bytes unless a name says MiB; durations in seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import (
    BenchError,
    MeasuredServer,
    OptionError,
    Target,
    bench_workdir,
    finish,
    markdown_table,
)
from vtwait import DownloadProgress, Job, VideoTranslationClient

logger = logging.getLogger(__name__)

HELP = "a job's output downloaded with its connection dropped mid-way (resume, verify)"
#: The output's size in MiB, full run and ``--quick``.
DEFAULT_SIZE_MIB = 64
QUICK_SIZE_MIB = 2
#: The issue's target: bytes received over bytes needed, with the drop.
TARGET_RATIO = 1.05


@dataclass(frozen=True)
class DownloadResult:
    """The figures of one download."""

    way: str
    size: int  #: bytes needed (the output's size)
    received: int  #: body bytes received, re-reads included
    requests: int  #: output requests sent (1 + resumes)
    wall_s: float  #: from the first output request to the verified file in place
    mib_per_s: float

    @property
    def ratio(self) -> float:
        """Bytes received over bytes needed."""
        return self.received / self.size


def measure(size: int, *, drop_at: int, workdir: Path) -> tuple[DownloadResult, DownloadResult]:
    """Start a server and one job; download its output twice (dropped, then clean).

    Raises:
        BenchError: a download failed or a file is not the announced size.
    """
    args = ["--min-delay", "0.05", "--max-delay", "0.05", "--error-probability", "0",
            "--output-size", size, "--fault-output-drop", drop_at]
    with MeasuredServer("download", args, workdir=workdir) as server, \
            VideoTranslationClient(server.url) as api, \
            tempfile.TemporaryDirectory(dir=workdir) as folder:
        job = api.submit()
        job.result(timeout=60)
        dropped = _download_once(job, "dropped", Path(folder) / "first.bin", size)
        clean = _download_once(job, "clean", Path(folder) / "second.bin", size)
    return dropped, clean


def _download_once(job: Job, way: str, path: Path, size: int) -> DownloadResult:
    last: list[DownloadProgress] = []

    def keep(progress: DownloadProgress) -> None:
        last[:] = [progress]

    started = time.monotonic()
    job.download(path, on_progress=keep)
    wall = time.monotonic() - started
    if path.stat().st_size != size or not last:
        raise BenchError(f"{way}: the download is {path.stat().st_size} bytes, not {size}")
    progress = last[-1]
    result = DownloadResult(way, size, progress.received, progress.resumes + 1, wall,
                            size / (1 << 20) / wall)
    logger.info("%s: %d bytes received for %d (x%.4f), %d requests, %.2f s", way,
                result.received, size, result.ratio, result.requests, wall)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The download mode's own options."""
    parser.add_argument("--size-mib", type=float, help="the output's size in MiB (default: %d; "
                        "--quick: %d)" % (DEFAULT_SIZE_MIB, QUICK_SIZE_MIB))
    parser.add_argument("--drop-at", type=float, default=0.5,
                        help="where the connection drops, as a share of the size "
                             "(default: %(default)g)")


def run(options: argparse.Namespace) -> int:
    """``python bench.py download ...``; returns the exit status."""
    if options.size_mib is None:
        options.size_mib = QUICK_SIZE_MIB if options.quick else DEFAULT_SIZE_MIB
    if options.size_mib <= 0 or not 0 < options.drop_at < 1:
        raise OptionError("need --size-mib > 0 and 0 < --drop-at < 1")
    size = int(options.size_mib * (1 << 20))
    with bench_workdir(options.server_logs) as workdir:
        dropped, clean = measure(size, drop_at=int(size * options.drop_at), workdir=workdir)
    rows = [(r.way, f"{r.size:,}", f"{r.received:,}", f"{r.ratio:.4f}", r.requests,
             f"{r.wall_s:.2f}", f"{r.mib_per_s:.0f}") for r in (clean, dropped)]
    body = markdown_table(("way", "bytes needed", "bytes received", "received / needed",
                           "requests", "wall s", "MiB/s"), rows, "l")
    targets = [Target("dropped: bytes received / bytes needed", f"<= {TARGET_RATIO:g}",
                      f"{dropped.ratio:.4f} ({dropped.requests} requests)",
                      dropped.ratio <= TARGET_RATIO)]
    finish(options, title=f"Download: a {options.size_mib:g} MiB output, the connection dropped "
                          f"at {options.drop_at:.0%}",
           notes="One job; `client.download` streams into a temporary file, resumes with `Range` "
                 "after the drop (FAULT_OUTPUT_DROP), verifies size and SHA-256, then renames. "
                 "Bytes received count every body byte, re-reads included.",
           calibration=f"the same job's output downloaded again without a drop ran at "
                       f"{clean.mib_per_s:,.0f} MiB/s through the client on loopback",
           body=body, targets=targets,
           results={"downloads": [{**dataclasses.asdict(r), "ratio": r.ratio}
                                  for r in (clean, dropped)]})  # clean first: the calibration
    return 0
