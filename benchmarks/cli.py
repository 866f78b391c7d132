"""``python bench.py [MODE] [options]``: one command line for every benchmark mode.

    python bench.py --quick                      # the strategies mode, the default
    python bench.py scale --quick --json bench-results/scale.json
    python bench.py report --out docs/benchmarks.md docs/bench-results/*.json

Each mode is a module of this package exposing ``HELP`` (one line), ``add_arguments(parser)`` and
``run(options) -> int``; this module alone knows the list. Options every measuring mode takes
(``--quick``, ``--json``, ``--server-logs``, ``-v``) are declared here once. ``options.mode`` and
``options.command`` (the exact command, for the report) are set before ``run``. A missed target is
reported, never raised: the exit status is 0 unless something crashed (1) or the command line was
wrong (2).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from benchmarks.common import BenchError, OptionError

__all__ = ["DEFAULT_MODE", "MODES", "main"]

logger = logging.getLogger(__name__)

#: Mode name -> module (in ``benchmarks``), in the order of ``--help`` and of the report page.
MODES = {"strategies": "strategies", "scale": "scale", "many": "many", "redis": "redis_store",
         "learned": "learned", "ratelimit": "ratelimit", "download": "download",
         "testspeed": "testspeed", "dialects": "dialects", "tracing": "tracing"}
#: The mode run when the command line names none (``python bench.py --quick``).
DEFAULT_MODE = "strategies"
_REPORT = "report"


def _module(mode: str) -> ModuleType:
    return importlib.import_module(f"benchmarks.{MODES.get(mode, mode)}")


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("every mode")
    group.add_argument("--quick", action="store_true",
                       help="tiny sizes, a few seconds (what tests/bench runs)")
    group.add_argument("--json", type=Path, metavar="PATH",
                       help="also write the results here (the input of `bench.py report`)")
    group.add_argument("--server-logs", type=Path, metavar="DIR",
                       help="keep the servers' logs in DIR (default: a temporary directory)")
    group.add_argument("-v", "--verbose", action="store_true", help="log the client's debug too")
    return common


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: one sub-command per mode, and ``report``."""
    parser = argparse.ArgumentParser(
        prog="bench.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Benchmarks of the client and the simulator over real HTTP on 127.0.0.1. "
                    f"Without a mode, runs `{DEFAULT_MODE}`.",
        epilog="Examples:\n  python bench.py --quick\n"
               "  python bench.py scale --json docs/bench-results/scale.json\n"
               "  python bench.py report --out docs/benchmarks.md docs/bench-results/*.json\n\n"
               "`python bench.py MODE --help` lists a mode's own options. Exit status 0 even "
               "when a target is missed (the report says so); 1 when something crashed.")
    modes = parser.add_subparsers(dest="mode", metavar="MODE", title="modes")
    common = _common_options()
    for mode in [*MODES, _REPORT]:
        module = _module(mode)
        sub = modes.add_parser(
            mode, help=module.HELP, description=module.HELP,
            parents=[] if mode == _REPORT else [common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=getattr(module, "EPILOG", None))
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def _with_mode(argv: list[str]) -> list[str]:
    """``argv`` with the default mode put first when it names none (``--help`` aside)."""
    first = argv[0] if argv else None
    if first in (*MODES, _REPORT, "-h", "--help"):
        return argv
    return [DEFAULT_MODE, *argv]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    given = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    options = parser.parse_args(_with_mode(given))
    options.command = shlex.join(["python", "bench.py", *given])
    options.started = time.monotonic()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    verbose = getattr(options, "verbose", False)
    logging.getLogger("vtwait.client").setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    try:
        return int(options.handler(options))
    except OptionError as exc:  # a bad combination of options, found by the mode
        parser.error(f"{options.mode}: {exc}")
    except BenchError as exc:
        logger.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
