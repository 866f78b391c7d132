"""Real servers in subprocesses, for demos, tests and benchmarks (yours too), and the pytest plugin.

    from vtwait.testing import ServerProcess
    with ServerProcess.start("--min-delay", "1", "--max-delay", "2") as server:
        ...  # server.url is the simulator's base URL, on a free loopback port

:class:`ServerProcess` runs ``python -m vtwait.server`` (the same code as ``python server.py``);
:class:`RedisServer` runs a private ``redis-server`` on a free loopback port in a temporary folder
(it needs the ``redis`` extra, so it is imported on first use). :class:`VtServer` is the object
of the pytest plugin's ``vt_server`` fixture (``vtwait.testing.plugin``; docs/testing-your-client.md):
a server with its control API on, and the journal, fault rules and clock within reach.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vtwait.testing._process import ServerProcess, stop_process
    from vtwait.testing._redis import DATABASES as DATABASES
    from vtwait.testing._redis import RedisServer
    from vtwait.testing._redis import _free_port as _free_port
    from vtwait.testing.server import VtServer

__all__ = ["RedisServer", "ServerProcess", "VtServer", "stop_process"]

# Everything on first use: the pytest plugin (vtwait.testing.plugin) is imported by every pytest run
# of a project that installs the package, with or without the server's extra.
_WHERE = {
    "ServerProcess": "vtwait.testing._process",
    "stop_process": "vtwait.testing._process",
    "DATABASES": "vtwait.testing._redis",
    "RedisServer": "vtwait.testing._redis",
    "_free_port": "vtwait.testing._redis",
    "VtServer": "vtwait.testing.server",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(where), name)


def __dir__() -> list[str]:
    return sorted(__all__)
