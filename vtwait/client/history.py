"""The learned durations on disk: :class:`DurationHistory`, the one file the client library opens.

    history = DurationHistory("~/.cache/video-jobs.sqlite")   # or DurationHistory() for memory only
    with VideoTranslationClient(url, history=history) as api: ...   # or history_path=

The models of all status routes (``vtwait.core.durations.DurationModel``), shared by threads (a
lock), by clients (pass one as ``history=``) and by processes (``path``: SQLite in WAL mode; each
connection sees the others' commits through ``PRAGMA data_version``). A file that is not a usable
database is left alone with a warning and the history stays in memory. It is the
:class:`vtwait.core.learned.DurationStore` of the sans-IO learner; the asyncio client commits to it
from a worker thread, never on the event loop (:attr:`DurationHistory.on_disk`).

All durations are in seconds.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
from pathlib import Path

from vtwait.core.durations import DEFAULT_CAPACITY, DurationModel, Schedule

__all__ = ["HISTORY_LOCK_TIMEOUT", "DurationHistory"]

logger = logging.getLogger(__name__)

#: Seconds a writer waits for another process's lock on the history file.
HISTORY_LOCK_TIMEOUT = 5.0
_SCHEMA = """CREATE TABLE IF NOT EXISTS durations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    route TEXT NOT NULL,
    lower REAL NOT NULL,
    upper REAL NOT NULL)"""
_INDEX = "CREATE INDEX IF NOT EXISTS durations_route ON durations (route, id)"


class DurationHistory:
    """Duration models per status route, in memory or in a SQLite file shared by processes.

    Args:
        path: SQLite file to keep the observations in (created if missing); None for memory only.
        capacity: Most recent observations kept per route, in memory and in the file.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 capacity: int = DEFAULT_CAPACITY):
        self.path = Path(path).expanduser() if path is not None else None
        self.capacity = capacity
        self._lock = threading.Lock()
        self._models: dict[str, DurationModel] = {}
        self._db: sqlite3.Connection | None = None
        self._data_version: int | None = None
        if self.path is not None:
            self._open()

    def __repr__(self) -> str:
        where = str(self.path) if self._db is not None else "memory"
        return f"{type(self).__name__}({where}, routes={len(self._models)})"

    @property
    def on_disk(self) -> bool:
        """Whether :meth:`add` writes to a file (a commit that may wait for another process's lock)."""
        return self._db is not None

    def add(self, route: str, lower: float, upper: float) -> None:
        """Record a job of ``route`` that ended ``lower`` to ``upper`` seconds after its start."""
        with self._lock:
            model = self._model(route)
            drifted = model.add(lower, upper)
            if drifted:
                logger.info("route %s: %d jobs in a row outside the durations seen before "
                            "(the last in %.3f-%.3f s): workload changed, older ones dropped",
                            route, model.drift_run, lower, upper)
            self._store(route, model, drifted, (lower, upper))

    def schedule(self, route: str, budget: float, min_jobs: int) -> Schedule | None:
        """The learned schedule of ``route``, or None while it knows fewer than ``min_jobs``."""
        with self._lock:
            return self._model(route).schedule(budget, min_jobs=min_jobs)

    def observations(self, route: str) -> list[tuple[float, float]]:
        """The observations of ``route``, oldest first."""
        with self._lock:
            return self._model(route).observations

    def close(self) -> None:
        """Close the file (the history stays usable in memory)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -------------------------------------------------------------------------- internals
    def _model(self, route: str) -> DurationModel:
        self._refresh()
        model = self._models.get(route)
        if model is None:
            model = self._models[route] = DurationModel(self._load(route), capacity=self.capacity)
        return model

    def _open(self) -> None:
        assert self.path is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=HISTORY_LOCK_TIMEOUT, isolation_level=None,
                                 check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(_SCHEMA)
                db.execute(_INDEX)
                self._data_version = db.execute("PRAGMA data_version").fetchone()[0]
            except BaseException:
                db.close()
                raise
        except (sqlite3.Error, OSError) as exc:
            self._give_up(exc)
        else:
            self._db = db

    def _give_up(self, exc: Exception) -> None:
        logger.warning("duration history %s is unusable (%s: %s); learning in memory only",
                       self.path, type(exc).__name__, exc)
        if self._db is not None:
            self._db.close()
        self._db = None

    def _refresh(self) -> None:
        """Forget the loaded models when another connection committed since we last looked."""
        if self._db is None:
            return
        try:
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:
            self._give_up(exc)
            return
        if version != self._data_version:
            self._data_version = version
            for route, model in self._models.items():
                model.replace(self._load(route))

    def _load(self, route: str) -> list[tuple[float, float]]:
        if self._db is None:
            return []
        try:
            rows = self._db.execute(
                "SELECT lower, upper FROM durations WHERE route = ? ORDER BY id DESC LIMIT ?",
                (route, self.capacity)).fetchall()
        except sqlite3.Error as exc:
            self._give_up(exc)
            return []
        good = [(float(lo), float(hi)) for lo, hi in reversed(rows)
                if isinstance(lo, int | float) and isinstance(hi, int | float)
                and 0 <= lo < hi < math.inf]
        if len(good) < len(rows):
            logger.warning("duration history %s: %d unreadable rows ignored", self.path,
                           len(rows) - len(good))
        return good

    def _store(self, route: str, model: DurationModel, drifted: bool,
               observation: tuple[float, float]) -> None:
        if self._db is None:
            return
        try:
            with self._db:  # one transaction
                self._db.execute("BEGIN IMMEDIATE")
                if drifted:
                    self._db.execute("DELETE FROM durations WHERE route = ?", (route,))
                    self._db.executemany(
                        "INSERT INTO durations (route, lower, upper) VALUES (?, ?, ?)",
                        [(route, lo, hi) for lo, hi in model.observations])
                else:
                    self._db.execute("INSERT INTO durations (route, lower, upper) VALUES (?, ?, ?)",
                                     (route, *observation))
                    self._db.execute(
                        "DELETE FROM durations WHERE route = ? AND id <= (SELECT id FROM durations"
                        " WHERE route = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        (route, route, self.capacity))
        except sqlite3.Error as exc:
            self._give_up(exc)
