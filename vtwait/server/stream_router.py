"""Wakes only the event streams a change concerns (issue 19): one reader of the log per process.

    router = StreamRouter(store)
    feed = router.subscribe({"job-a", "job-b"}, position)   # a stream filtered by job id
    catch_up = feed.log_until          # read (position, log_until] from the log itself, then:
    events = feed.take(timeout)        # the later changes of its jobs only, in id order
    router.unsubscribe(feed)

Without it every filtered stream (``GET /events?job_id=...``) woke on every change and scanned the
whole log for its own jobs: 10 streams of 1,000 jobs read 10 times every change of a burst, and
1,000 streams of 10 jobs 1,000 times. Here one pump (a thread: a greenlet under gevent) reads the
log once and hands each change to the streams of its job only (a dict lookup per change); the
others are not woken at all. An unfiltered stream wants every change and still reads the log
itself.

A stream's inbox is bounded (:data:`INBOX_LIMIT` changes): a stream that falls that far behind is
dropped from the router (``overflowed``) and reads the log itself from where it is, as every stream
did before, so a slow reader still costs one batch of memory, not a backlog. The pump's own
troubles are handed on the same way: if it falls behind the retained log, or the store is
unavailable, every feed overflows and each stream meets the error on its own read, as before; a
store that shuts down ends every feed (:class:`StoreClosedError` from :meth:`Feed.take`).
"""

from __future__ import annotations

import logging
import threading
import time

from vtwait.server.stores.base import (
    EventIdExpiredError,
    JobStore,
    LoggedEvent,
    StoreClosedError,
    StoreUnavailableError,
)

__all__ = ["INBOX_LIMIT", "Feed", "StreamRouter"]

logger = logging.getLogger(__name__)

#: Most changes waiting in one stream's inbox; past it the stream reads the log itself.
INBOX_LIMIT = 5000
#: Changes the pump reads per step, and the longest it holds one read (seconds).
PUMP_BATCH = 1000
PUMP_WAIT = 5.0
#: Pause of the pump after the store was unavailable (seconds), before it reads again.
PUMP_RETRY = 0.5


class Feed:
    """One filtered stream's share of the router: the changes of its jobs after ``log_until``."""

    def __init__(self, router: StreamRouter, job_ids: frozenset[str], log_until: int) -> None:
        self.job_ids = job_ids
        #: The stream reads the log itself up to this id; later changes come through take().
        self.log_until = log_until
        #: The inbox overflowed (or the pump lost its place): read the log itself from now on.
        self.overflowed = False
        self._router = router
        self._inbox: list[LoggedEvent] = []
        self._closed = False
        # Its own condition on the router's lock: the pump wakes this stream, and only it.
        self._ready = threading.Condition(router._lock)

    def take(self, timeout: float) -> list[LoggedEvent]:
        """The changes received since the last call (waits up to ``timeout`` s for one); an
        empty list on a timeout or once ``overflowed``.

        Raises:
            StoreClosedError: the store is shutting down.
        """
        deadline = time.monotonic() + timeout
        with self._ready:
            while not (self._inbox or self.overflowed or self._closed):
                left = deadline - time.monotonic()
                if left <= 0 or not self._ready.wait(left):
                    break
            if self._closed:
                raise StoreClosedError("the store is shutting down")
            events, self._inbox = self._inbox, []
            return events


class StreamRouter:
    """The pump and the index of filtered streams by job id, for one store in this process."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._by_job: dict[str, set[Feed]] = {}
        self._position: int | None = None  # the last id the pump handed out
        self._pump: threading.Thread | None = None

    @property
    def feeds(self) -> int:
        """How many feeds are subscribed right now."""
        with self._lock:
            return len({feed for feeds in self._by_job.values() for feed in feeds})

    def subscribe(self, job_ids: frozenset[str], position: int) -> Feed:
        """A feed of the changes of ``job_ids``; the stream is at ``position`` (the last id it
        has seen, or its snapshot's) and reads ``(position, feed.log_until]`` from the log."""
        with self._lock:
            if self._position is None:
                self._position = position
            feed = Feed(self, job_ids, self._position)
            for job_id in job_ids:
                self._by_job.setdefault(job_id, set()).add(feed)
            if self._pump is None:
                self._pump = threading.Thread(target=self._run, name="event-router",
                                              daemon=True)
                self._pump.start()
        return feed

    def unsubscribe(self, feed: Feed) -> None:
        with self._lock:
            self._drop(feed)

    def _drop(self, feed: Feed) -> None:
        for job_id in feed.job_ids:
            feeds = self._by_job.get(job_id)
            if feeds is not None:
                feeds.discard(feed)
                if not feeds:
                    del self._by_job[job_id]

    def _run(self) -> None:
        """The pump: reads the log once for every filtered stream, until the store closes."""
        while True:
            with self._lock:
                position = self._position
            assert position is not None
            try:
                events = self.store.wait_events(position, PUMP_BATCH, PUMP_WAIT)
            except StoreClosedError:
                self._end_all()
                return
            except (EventIdExpiredError, StoreUnavailableError) as exc:
                logger.warning("event router: %s; every filtered stream reads the log itself",
                               exc)
                self._overflow_all(exc)
                continue
            if events:
                self._dispatch(events)

    def _dispatch(self, events: list[LoggedEvent]) -> None:
        with self._lock:
            by_job, woken = self._by_job, set()
            for event in events:
                feeds = by_job.get(event.job_id)
                if not feeds:
                    continue
                for feed in list(feeds):
                    if event.event_id <= feed.log_until:
                        continue  # the stream reads this one from the log itself
                    if len(feed._inbox) >= INBOX_LIMIT:
                        feed.overflowed = True
                        feed._inbox = []
                        self._drop(feed)
                    else:
                        feed._inbox.append(event)
                    woken.add(feed)
            self._position = events[-1].event_id
            for feed in woken:  # once per pump step, and only the streams of these jobs
                feed._ready.notify()

    def _overflow_all(self, error: Exception) -> None:
        with self._lock:
            feeds = {feed for feeds in self._by_job.values() for feed in feeds}
            for feed in feeds:
                feed.overflowed = True
                feed._inbox = []
                feed._ready.notify()
            self._by_job.clear()
            if isinstance(error, EventIdExpiredError):
                self._position = error.last  # start again from the newest change
        if isinstance(error, StoreUnavailableError):
            time.sleep(PUMP_RETRY)

    def _end_all(self) -> None:
        with self._lock:
            for feeds in self._by_job.values():
                for feed in feeds:
                    feed._closed = True
                    feed._ready.notify()
            self._by_job.clear()
            self._pump = None
