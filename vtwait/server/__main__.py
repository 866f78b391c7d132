"""``python -m vtwait.server``: the same as ``python server.py``."""

import sys

from vtwait.server import main

sys.exit(main())
