"""``python server.py``: the video-translation simulator (``--help`` lists the settings).

The code is ``vtwait.server``; ``gunicorn 'server:create_app()'`` keeps working from a checkout.
"""

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vtwait.server import create_app, main

__all__ = ["create_app", "main"]


def __getattr__(name: str) -> Any:  # loaded on use, so that gevent patches first (cli.py)
    import vtwait.server

    if name in __all__:
        return getattr(vtwait.server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    from vtwait.server.cli import main

    sys.exit(main())
