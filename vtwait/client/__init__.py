"""The client transports: they move bytes and sleep; every decision is in :mod:`vtwait.core`.

``sync`` (requests, with ``_threads`` for its batch waits), ``aio`` (aiohttp), ``base`` (what both
share), ``history`` (the learned durations' SQLite file) and ``cli`` (the ``vtwait`` command, also
``python -m vtwait.client``). The public names are :mod:`vtwait`'s, and the same objects here.
"""

from __future__ import annotations

from typing import Any

import vtwait

__all__ = list(vtwait.__all__)


def __getattr__(name: str) -> Any:  # each imported on first use, as vtwait does
    if name in __all__:
        return getattr(vtwait, name)
    raise AttributeError(f"module 'vtwait.client' has no attribute {name!r}")
