"""Quiet storms: a warning that repeats is logged once, then summarised with a count.

A batch of 10,000 jobs against a server that answers 503 for a while used to print 10,000
identical "transient fault (HTTP 503); retrying" lines. :class:`RepeatedWarnings` keeps the first
of each kind at WARNING, turns the repeats into DEBUG lines (``-v`` still shows every one: nothing
is hidden), and says how many there were in one WARNING line at most once per ``interval`` seconds
while the storm lasts, and once more when the client closes (:meth:`flush`).

Sans-IO like the rest of the core: the caller passes ``now`` (its own clock), and the lock only
guards the counters against the sync client's batch threads.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

__all__ = ["DEFAULT_SUMMARY_INTERVAL", "RepeatedWarnings"]

#: Seconds between two summary lines of the same storm.
DEFAULT_SUMMARY_INTERVAL = 10.0


@dataclass
class _Storm:
    """One kind of warning: its count since the last line at WARNING, and when that line was."""
    message: str
    args: tuple[object, ...]
    logged_at: float
    repeats: int = 0


class RepeatedWarnings:
    """Logs ``logger.warning`` once per kind, then at most one summary per ``interval``.

    ``kind`` says what makes two warnings "the same": the fault, not the job or the delay (a
    storm's lines differ in those). The summary line carries the latest occurrence's text.
    """

    def __init__(self, logger: logging.Logger,
                 interval: float = DEFAULT_SUMMARY_INTERVAL) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")
        self._logger = logger
        self._interval = interval
        self._storms: dict[str, _Storm] = {}
        self._lock = threading.Lock()

    def warning(self, kind: str, now: float, message: str, *args: object) -> None:
        """One occurrence of ``kind``: a WARNING line, a DEBUG line, or a summary line."""
        with self._lock:
            storm = self._storms.get(kind)
            if storm is None or not storm.repeats and now - storm.logged_at >= self._interval:
                # The first of its kind, or the first after a quiet interval: said in full.
                self._storms[kind] = _Storm(message, args, now)
                level, line = logging.WARNING, (message, *args)
            else:
                storm.message, storm.args = message, args
                storm.repeats += 1
                if now - storm.logged_at >= self._interval:
                    level, line = logging.WARNING, self._take_summary(storm, now)
                else:
                    level, line = logging.DEBUG, (message, *args)
        self._logger.log(level, line[0], *line[1:])

    def flush(self, now: float) -> None:
        """Says what the storms still hold (at close): one summary line per kind with repeats."""
        with self._lock:
            summaries = [self._take_summary(storm, now) for storm in self._storms.values()
                         if storm.repeats]
            self._storms.clear()
        for summary in summaries:
            self._logger.warning(*summary)

    @staticmethod
    def _take_summary(storm: _Storm, now: float) -> tuple[object, ...]:
        seconds = now - storm.logged_at
        repeats, storm.repeats, storm.logged_at = storm.repeats, 0, now
        return (storm.message + " (and %d more like it in %.1f s, each logged at DEBUG)",
                *storm.args, repeats, seconds)
