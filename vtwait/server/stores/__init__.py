"""The job stores, and the factory: the only place that knows the store kinds.

``JOB_STORE=memory`` (the default) is :class:`~vtwait.server.stores.memory.MemoryJobStore`, one
process's jobs; a ``redis://`` URL is :class:`~vtwait.server.stores.redis_store.RedisJobStore`,
shared by every worker and host (imported only then: the ``redis`` package is needed only for it)::

    check_store(settings)              # at start: Redis answers (memory always does)
    supports_workers(settings)         # may several worker processes share these jobs?
    store = open_store(settings)       # in each process that serves
"""

from __future__ import annotations

import time
from collections.abc import Callable

from vtwait.server.clock import Clock
from vtwait.server.settings import Settings
from vtwait.server.stores.base import JobStore

__all__ = ["MEMORY", "check_store", "open_store", "store_kind", "supports_workers"]

#: The ``JOB_STORE`` value of the in-memory store; anything else is a Redis URL.
MEMORY = "memory"


def store_kind(settings: Settings) -> str:
    """``"memory"`` or ``"redis"``: the kind of store ``settings.job_store`` names."""
    return MEMORY if settings.job_store == MEMORY else "redis"


def supports_workers(settings: Settings) -> bool:
    """Whether several worker processes can share the store's jobs: Redis can; the in-memory
    store cannot (each process would hold its own jobs)."""
    return store_kind(settings) != MEMORY


def check_store(settings: Settings) -> None:
    """Checks that the store ``settings.job_store`` names can be reached (memory always can).

    Raises:
        StoreUnavailableError: Redis does not answer (the message masks the URL's password).
    """
    if store_kind(settings) != MEMORY:
        from vtwait.server.stores.redis_store import check_reachable

        check_reachable(settings.job_store)


def open_store(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    timebase: Clock | None = None,
) -> JobStore:
    """The store ``settings.job_store`` names: ``memory``, or Redis at a URL.

    A Redis store keeps every time on ``wall_clock``, the clock its processes share; ``clock`` is
    the memory store's. ``timebase`` is what the memory store's waits follow (real by default).

    Raises:
        StoreUnavailableError: Redis cannot be reached (the message masks the URL's password).
    """
    if store_kind(settings) == MEMORY:
        from vtwait.server.stores.memory import MemoryJobStore

        return MemoryJobStore(settings, clock=clock, wall_clock=wall_clock, timebase=timebase)
    from vtwait.server.stores.redis_store import RedisJobStore

    return RedisJobStore(settings, wall_clock=wall_clock)
