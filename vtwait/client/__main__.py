"""``python -m vtwait.client``: the client command line (:mod:`vtwait.client.cli`)."""

import sys

from vtwait.client.cli import main

if __name__ == "__main__":
    sys.exit(main())
