"""``python server.py``: the video-translation simulator (``--help`` lists the settings).

The code is ``vtwait.server``; ``gunicorn 'server:create_app()'`` keeps working from a checkout.
"""

import sys

from vtwait.server import create_app, main

__all__ = ["create_app", "main"]

if __name__ == "__main__":
    sys.exit(main())
