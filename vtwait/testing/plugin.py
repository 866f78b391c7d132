"""The pytest plugin (entry point ``pytest11``: ``vtwait``): a real simulator for your client's tests.

Fixtures:

* ``vt_server``: a :class:`~vtwait.testing.VtServer`, a simulator subprocess on a free loopback
  port with fresh state (no jobs, empty journal, no fault rules) for each test. Settings come from
  the ``vt_server`` marker: ``@pytest.mark.vt_server(CLOCK="virtual", MIN_DELAY=3600)``.
* ``vt_server_factory``: ``vt_server_factory(**settings)`` for a test that needs other settings.
* ``vt_server_pool`` (session): the running servers, one per distinct set of settings. A server
  starts once and is reset (``POST /_admin/reset``) before each test that gets it.

Importing this module imports nothing of the server or the client: pytest loads it into every run
of a project that installs the package, and only a test that uses a fixture pays for one.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from vtwait.testing.server import VtServer

__all__ = ["ServerPool", "vt_server", "vt_server_factory", "vt_server_pool"]

#: Most servers kept running at once in one test process; the least recently used stops first.
MAX_SERVERS = 4


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "vt_server(**settings): settings of the vt_server fixture's simulator, named "
        "like its environment variables, e.g. vt_server(CLOCK='virtual', MIN_DELAY=3600)")


class ServerPool:
    """Running servers by their settings, started on first use and reused (reset) after that."""

    def __init__(self, limit: int = MAX_SERVERS) -> None:
        self._limit = limit
        self._servers: collections.OrderedDict[tuple[tuple[str, str], ...], VtServer] = (
            collections.OrderedDict())

    def get(self, **settings: Any) -> VtServer:
        """A server with these settings, reset: no jobs, an empty journal, no fault rules."""
        from vtwait.testing.server import VtServer, settings_env

        key = tuple(sorted(settings_env(settings).items()))
        server = self._servers.pop(key, None)
        if server is not None and server.process.process.poll() is not None:
            server = None  # a test stopped it (or it died): start another
        if server is None:
            while len(self._servers) >= self._limit:
                self._servers.popitem(last=False)[1].kill()
            server = VtServer.start(**settings)
        else:
            server.reset()
        self._servers[key] = server
        return server

    def close(self) -> None:
        """Kills every server (at once: nothing in a test server is worth a graceful stop)."""
        while self._servers:
            self._servers.popitem()[1].kill()


@pytest.fixture(scope="session")
def vt_server_pool() -> Iterator[ServerPool]:
    """The session's running simulators (see :class:`ServerPool`); stopped at the end."""
    pool = ServerPool()
    yield pool
    pool.close()


@pytest.fixture
def vt_server_factory(vt_server_pool: ServerPool) -> Callable[..., VtServer]:
    """``vt_server_factory(**settings)``: a simulator with these settings (environment variable
    names, e.g. ``CLOCK="virtual"``), fresh for this test."""
    return vt_server_pool.get


@pytest.fixture
def vt_server(request: pytest.FixtureRequest, vt_server_factory: Callable[..., VtServer]) -> VtServer:
    """A simulator fresh for this test, with the settings of its ``vt_server`` markers (the
    closest one wins, name by name)."""
    settings: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("vt_server"))):
        if marker.args:
            raise pytest.UsageError("vt_server marker takes keyword settings only, "
                                    "e.g. @pytest.mark.vt_server(CLOCK='virtual')")
        settings.update(marker.kwargs)
    return vt_server_factory(**settings)
