"""``python bench.py [MODE]``: the benchmarks (``--help`` lists the modes). The code is in ``benchmarks/``."""

import sys

from benchmarks.cli import main

if __name__ == "__main__":
    sys.exit(main())
