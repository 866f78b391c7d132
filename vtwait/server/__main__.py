"""``python -m vtwait.server``: the same as ``python server.py``."""

import sys

from vtwait.server.cli import main

sys.exit(main())
