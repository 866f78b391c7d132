"""When queued jobs should start: the ETA of a job behind ``CONCURRENCY`` running ones.

A pure function of the running slots and the queued durations (no store, no clock), so that the
memory store's queue view and its tests share one rule. All durations are in seconds.
"""

from __future__ import annotations

import heapq

__all__ = ["estimate_queue_starts"]


def estimate_queue_starts(slots_free: list[float], durations: list[float]) -> list[float]:
    """When each queued job should start, if every job takes what it is expected to take.

    Args:
        slots_free: when each running slot frees (one entry per slot of ``CONCURRENCY``; a free
            slot is "now").
        durations: the expected durations of the queued jobs, in queue order.

    Returns:
        The start times, in the same order and on the same clock as ``slots_free``.
    """
    heap = list(slots_free)
    heapq.heapify(heap)
    starts = []
    for duration in durations:
        start = heapq.heappop(heap)
        starts.append(start)
        heapq.heappush(heap, start + duration)
    return starts
