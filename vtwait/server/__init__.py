"""The simulator: a Flask app with a job store, served by gunicorn + gevent.

    from vtwait.server import create_app, Settings
    app = create_app(Settings(min_delay=1, max_delay=2))

The names are imported on first use (PEP 562), so that ``python -m vtwait.server`` can let gevent
patch the standard library before the app's modules load (see ``cli.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vtwait.server.app import create_app
    from vtwait.server.cli import main
    from vtwait.server.errors import ApiError
    from vtwait.server.settings import ConfigError, Settings
    from vtwait.server.state import AppState, app_state

__all__ = ["ApiError", "AppState", "ConfigError", "Settings", "app_state", "create_app", "main"]

_WHERE = {
    "ApiError": "vtwait.server.errors",
    "AppState": "vtwait.server.state",
    "ConfigError": "vtwait.server.settings",
    "Settings": "vtwait.server.settings",
    "app_state": "vtwait.server.state",
    "create_app": "vtwait.server.app",
    "main": "vtwait.server.cli",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(where), name)


def __dir__() -> list[str]:
    return sorted(__all__)
