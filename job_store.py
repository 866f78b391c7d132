"""Where the simulator's jobs live: the store interface and the in-memory store.

A store starts jobs, answers their status documents, holds long-polls until a job is final, and
finishes jobs when they are due (one timer thread for all of them) and forgets them ``JOB_TTL``
later. The HTTP layer (``server.py``) only talks to a store through :class:`JobStore`'s methods,
so every store behaves the same behind the API. All durations are in seconds.

Every change but an eviction is also kept in an **event log** for ``GET /events``
(``event_stream.py``): a :class:`LoggedEvent` with an id taken from one counter, in the same
atomic step as the change, so ids grow in the order the changes happened. The log keeps the last
``EVENT_RETENTION`` events, none older than ``JOB_TTL``.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import enum
import heapq
import itertools
import json
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from server_settings import Settings

__all__ = [
    "FINAL_RESULTS",
    "JOB_ERROR_MESSAGE",
    "EventIdExpiredError",
    "JobEvent",
    "JobResult",
    "JobStore",
    "LoggedEvent",
    "MemoryJobStore",
    "StoreClosedError",
    "StoreFullError",
]

logger = logging.getLogger("server")

#: Message of a job that ends in ``error``.
JOB_ERROR_MESSAGE = "translation failed (simulated error)"


class JobResult(str, enum.Enum):
    """The state of a job, as reported in the status document's ``result``."""

    PENDING = "pending"
    COMPLETED = "completed"
    ERROR = "error"


#: Results after which a job never changes again.
FINAL_RESULTS = frozenset({JobResult.COMPLETED, JobResult.ERROR})


class StoreFullError(RuntimeError):
    """``MAX_JOBS`` live jobs exist already; ``retry_after`` is the wait until a slot frees."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many live jobs; a slot frees in {retry_after} s")
        self.retry_after = retry_after


class EventIdExpiredError(LookupError):
    """The events after ``event_id`` are no longer all retained (or the id was never given)."""

    def __init__(self, event_id: int, oldest: int, last: int) -> None:
        super().__init__(
            f"event {event_id} is not in the retained log (events {oldest} to {last} are kept)"
        )
        self.event_id = event_id
        self.oldest = oldest
        self.last = last


class StoreClosedError(RuntimeError):
    """The store is shutting down: a held read of events ends."""


#: Kinds of change that are not logged as events: an eviction changes no status document.
UNLOGGED_KINDS = frozenset({"evicted"})


@dataclasses.dataclass(frozen=True, slots=True)
class JobEvent:
    """One change of one job, as a store's listeners hear it.

    ``kind`` is ``started``, ``completed``, ``error`` or ``evicted``; ``doc`` is the job's status
    document just after the change; ``detail`` is the log's wording (empty: the kind says it).
    """

    job_id: str
    kind: str
    doc: dict[str, Any]
    detail: str = ""


class LoggedEvent(NamedTuple):
    """One change as the event log keeps it: its id, the job, the kind, and ``data``, the status
    document just after the change as compact one-line JSON (the body ``GET /status`` gives)."""

    event_id: int
    job_id: str
    kind: str
    data: str


class JobStore(abc.ABC):
    """What the HTTP layer needs from a store; every store passes the same test suite.

    Listeners added with :meth:`add_listener` hear each change once, in the process that made it,
    outside any lock, after it is visible to readers.
    """

    settings: Settings
    #: The server's default job (``GET /status``), once started.
    default_job_id: str | None

    def __init__(self) -> None:
        self._listeners: list[Callable[[JobEvent], None]] = []

    @abc.abstractmethod
    def start(
        self,
        *,
        delay: float | None = None,
        outcome: JobResult | None = None,
        idempotency_key: str | None = None,
        default: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Starts a job, or finds the one started with the same idempotency key.

        Args:
            delay: the job's duration; ``None`` draws it from ``[MIN_DELAY, MAX_DELAY]``.
            outcome: the job's fate; ``None`` draws it with ``ERROR_PROBABILITY``.
            idempotency_key: a key already seen (within ``JOB_TTL``) returns that key's job.
            default: this is the server's default job: never evicted, not counted in MAX_JOBS.

        Returns:
            The status document, and whether a job was created (``False`` for a replay).

        Raises:
            StoreFullError: ``MAX_JOBS`` live jobs exist already.
        """

    @abc.abstractmethod
    def status(self, job_id: str) -> dict[str, Any] | None:
        """Returns the job's status document, or ``None`` for an unknown (or forgotten) job."""

    @abc.abstractmethod
    def wait(self, job_id: str, timeout: float) -> tuple[dict[str, Any] | None, bool]:
        """Holds until the job is final or ``timeout`` seconds pass, then returns its status.

        A job already final, or a full house of ``MAX_WAITERS`` waiters, returns at once.

        Returns:
            The status document (``None`` for an unknown job), and whether the call held.
        """

    @abc.abstractmethod
    def process_due(self) -> int:
        """Finishes the jobs that are due and forgets the expired ones; returns how many changed."""

    @property
    @abc.abstractmethod
    def waiters(self) -> int:
        """How many requests this process holds by long-poll right now."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """How many jobs are live (pending or final, not yet forgotten), the default one included."""

    @abc.abstractmethod
    def start_worker(self) -> None:
        """Starts the background timer that finishes due jobs on time."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Stops the timer and releases every held request (long-polls with the job's current
        status; :meth:`wait_events` raises :class:`StoreClosedError`)."""

    @abc.abstractmethod
    def event_snapshot(self, job_ids: Sequence[str]) -> tuple[list[dict[str, Any] | None], int]:
        """The current status documents of ``job_ids`` and the id of the last logged event, read
        in one atomic step: every change after that id is one the documents do not show yet.

        Returns:
            One document per id, in order (``None`` for an unknown job), and the last event id.
        """

    @abc.abstractmethod
    def events_after(self, event_id: int, limit: int) -> list[LoggedEvent]:
        """The oldest ``limit`` (at least 1) logged events with an id above ``event_id``, in id
        order; an empty list when ``event_id`` is the last one.

        Raises:
            EventIdExpiredError: some event after ``event_id`` is no longer retained, or
                ``event_id`` is above the last id given (an id from another server or run).
        """

    @abc.abstractmethod
    def wait_events(self, event_id: int, limit: int, timeout: float) -> list[LoggedEvent]:
        """Like :meth:`events_after`, but holds up to ``timeout`` seconds until there is one.

        Returns:
            The events (empty when ``timeout`` passed first).

        Raises:
            EventIdExpiredError: as :meth:`events_after` (a reader that fell too far behind).
            StoreClosedError: the store is shutting down (at once, or while holding).
        """

    def add_listener(self, listener: Callable[[JobEvent], None]) -> None:
        """Calls ``listener(event)`` for every later change made by this process."""
        self._listeners.append(listener)

    def _publish(self, events: list[JobEvent]) -> None:
        # Called outside the lock: a slow log handler or listener must not stall every request.
        for event in events:
            logger.info("job %s %s", event.job_id, event.detail or event.kind)
            for listener in self._listeners:
                try:
                    listener(event)
                except Exception:  # one broken listener must not stop the others or the timer
                    logger.exception("listener %r failed on job %s", listener, event.job_id)


@dataclasses.dataclass(slots=True, eq=False)
class _Job:
    job_id: str
    created_at: float  # wall clock
    started: float  # monotonic clock
    due: float  # monotonic clock
    outcome: JobResult  # the fate, revealed at ``due``
    eta_factor: float  # systematic error of this job's estimates
    idempotency_key: str | None
    result: JobResult = JobResult.PENDING
    finished_at: float | None = None  # wall clock
    event: threading.Event | None = None  # created by the first waiter, set by the finisher


class MemoryJobStore(JobStore):
    """The jobs of one app in this process's memory, safe to share between request threads (one
    lock guards everything).

    One background thread (``start_worker``) finishes jobs when they are due and forgets them
    ``JOB_TTL`` later; every call also does that work first, so reads are right even without it.

    Args:
        settings: delays, error rate, limits.
        clock: monotonic seconds, for durations and expiry.
        wall_clock: Unix seconds, for ``created_at`` and ``finished_at``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.settings = settings
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = random.Random(settings.seed)
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # the timer thread waits on this one
        self._new_events = threading.Condition(lock)  # event readers wait on this one
        # Ids start at the start time in microseconds, so an id from an earlier run of the server
        # is below (or above) this run's ids: a resume with it is refused, never silently gapped.
        self._last_event_id = int(wall_clock() * 1_000_000)
        self._log: list[tuple[float, LoggedEvent]] = []  # (monotonic time, event); from _log_head
        self._log_head = 0
        self._jobs: dict[str, _Job] = {}
        self._keys: dict[str, _Job] = {}  # idempotency key -> job
        self._due: list[tuple[float, int, _Job]] = []  # heap of pending jobs by due time
        self._expiry: collections.deque[tuple[float, _Job]] = collections.deque()  # finish order
        self._seq = itertools.count()
        self._waiters = 0
        self._stopping = False
        self._worker: threading.Thread | None = None
        self.default_job_id: str | None = None

    # public API

    def start(
        self,
        *,
        delay: float | None = None,
        outcome: JobResult | None = None,
        idempotency_key: str | None = None,
        default: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """See :meth:`JobStore.start`."""
        with self._cond:
            now = self._clock()
            events = self._advance(now)
            job = self._keys.get(idempotency_key) if idempotency_key is not None else None
            created = job is None
            full = created and not default and self._live() >= self.settings.max_jobs
            if full:
                retry_after = self._retry_after(now)
            elif created:
                job = self._create(delay, outcome, idempotency_key, now)
                if default:
                    self.default_job_id = job.job_id
                fate = f"started (delay {job.due - now:.3f} s, fated {job.outcome.value})"
                started = JobEvent(job.job_id, "started", self._document(job, now), fate)
                events += self._logged([started], now)
                events += self._advance(now)  # a zero delay finishes at once
            doc = None if full or job is None else self._document(job, now)
        self._publish(events)
        if doc is None:
            raise StoreFullError(retry_after)
        return doc, created

    def status(self, job_id: str) -> dict[str, Any] | None:
        """Returns the job's status document, or ``None`` for an unknown (or forgotten) job."""
        with self._cond:
            now = self._clock()
            events = self._advance(now)
            job = self._jobs.get(job_id)
            doc = None if job is None else self._document(job, now)
        self._publish(events)
        return doc

    def wait(self, job_id: str, timeout: float) -> tuple[dict[str, Any] | None, bool]:
        """See :meth:`JobStore.wait`; the thread that finishes the job wakes its waiters at once."""
        with self._cond:
            now = self._clock()
            events = self._advance(now)
            job = self._jobs.get(job_id)
            if job is None or job.result in FINAL_RESULTS or timeout <= 0 or self._stopping:
                doc = None if job is None else self._document(job, now)
                event = None
            elif self._waiters >= self.settings.max_waiters:
                logger.debug("%d waiters already; answering at once", self._waiters)
                doc, event = self._document(job, now), None
            else:
                if job.event is None:
                    job.event = threading.Event()
                event = job.event
                self._waiters += 1
        self._publish(events)
        if event is None:
            return doc, False
        try:
            event.wait(timeout)
        finally:
            with self._cond:
                self._waiters -= 1
        return self.status(job_id), True

    def process_due(self) -> int:
        """Finishes the jobs that are due and forgets the expired ones; returns how many changed."""
        with self._cond:
            events = self._advance(self._clock())
        self._publish(events)
        return len(events)

    @property
    def waiters(self) -> int:
        """How many requests are held by long-poll right now."""
        with self._cond:
            return self._waiters

    def __len__(self) -> int:
        with self._cond:
            return len(self._jobs)

    def start_worker(self) -> None:
        """Starts the background thread that finishes due jobs on time."""
        with self._cond:
            if self._worker is not None:
                return
            self._worker = threading.Thread(target=self._run, name="job-timer", daemon=True)
        self._worker.start()

    def shutdown(self) -> None:
        """Stops the worker thread (joins it) and releases every held request."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            for job in self._jobs.values():
                if job.event is not None:
                    job.event.set()
            self._new_events.notify_all()
            worker, self._worker = self._worker, None
        if worker is not None and worker is not threading.current_thread():
            worker.join()

    def event_snapshot(self, job_ids: Sequence[str]) -> tuple[list[dict[str, Any] | None], int]:
        """See :meth:`JobStore.event_snapshot`."""
        with self._cond:
            now = self._clock()
            events = self._advance(now)
            docs = [None if (job := self._jobs.get(job_id)) is None else self._document(job, now)
                    for job_id in job_ids]
            last = self._last_event_id
        self._publish(events)
        return docs, last

    def events_after(self, event_id: int, limit: int) -> list[LoggedEvent]:
        """See :meth:`JobStore.events_after`."""
        with self._cond:
            events = self._advance(self._clock())
            found = self._read_log(event_id, limit)
        self._publish(events)
        return found

    def wait_events(self, event_id: int, limit: int, timeout: float) -> list[LoggedEvent]:
        """See :meth:`JobStore.wait_events`; the change that logs an event wakes its readers."""
        deadline = time.monotonic() + timeout  # a real wait, whatever clock the jobs run on
        with self._cond:
            events = self._advance(self._clock())
            while not self._stopping and event_id == self._last_event_id:
                left = deadline - time.monotonic()
                if left <= 0 or not self._new_events.wait(left):
                    break
            found = None if self._stopping else self._read_log(event_id, limit)
        self._publish(events)
        if found is None:
            raise StoreClosedError("the store is shutting down")
        return found

    # internals; every method below runs with the lock held, except _run

    def _logged(self, events: list[JobEvent], now: float) -> list[JobEvent]:
        """Gives each change but evictions the next event id and logs it; wakes event readers."""
        log, before = self._log, self._last_event_id
        for event in events:
            if event.kind not in UNLOGGED_KINDS:
                self._last_event_id += 1
                data = json.dumps(event.doc, separators=(",", ":"))
                log.append((now, LoggedEvent(self._last_event_id, event.job_id, event.kind, data)))
        cutoff = now - self.settings.job_ttl
        head = max(self._log_head, len(log) - self.settings.event_retention)
        while head < len(log) and log[head][0] < cutoff:
            head += 1
        if head > 1024 and head * 2 > len(log):  # drop the dead front now and then, amortized
            del log[:head]
            head = 0
        self._log_head = head
        if self._last_event_id != before:
            self._new_events.notify_all()
        return events

    def _read_log(self, event_id: int, limit: int) -> list[LoggedEvent]:
        # Ids in the log are consecutive, so the event after `event_id` sits at a known index.
        log, head, last = self._log, self._log_head, self._last_event_id
        oldest = log[head][1].event_id if head < len(log) else last + 1
        if not oldest - 1 <= event_id <= last:
            raise EventIdExpiredError(event_id, oldest, last)
        start = head + event_id + 1 - oldest
        return [entry[1] for entry in log[start:start + max(limit, 1)]]


    def _live(self) -> int:
        return len(self._jobs) - (self.default_job_id is not None)

    def _create(
        self, delay: float | None, outcome: JobResult | None, key: str | None, now: float
    ) -> _Job:
        settings = self.settings
        # Always draw all three, so a fixed delay or outcome keeps the SEED sequence in step.
        drawn_delay = self._rng.uniform(settings.min_delay, settings.max_delay)
        fails = self._rng.random() < settings.error_probability
        noise = self._rng.uniform(-settings.eta_noise, settings.eta_noise)
        if outcome is None:
            outcome = JobResult.ERROR if fails else JobResult.COMPLETED
        job = _Job(
            job_id=uuid.uuid4().hex,
            created_at=self._wall_clock(),
            started=now,
            due=now + (drawn_delay if delay is None else delay),
            outcome=outcome,
            eta_factor=1.0 + noise,
            idempotency_key=key,
        )
        self._jobs[job.job_id] = job
        if key is not None:
            self._keys[key] = job
        wake_worker = not self._due or job.due < self._due[0][0]
        heapq.heappush(self._due, (job.due, next(self._seq), job))
        if wake_worker:  # the timer thread sleeps until the old earliest due time
            self._cond.notify()
        return job

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                events = self._advance(self._clock())
                if not events:
                    self._cond.wait(self._next_timeout())
                    continue
            self._publish(events)

    def _next_timeout(self) -> float | None:
        deadlines = [self._due[0][0]] if self._due else []
        if self._expiry:
            deadlines.append(self._expiry[0][0])
        if not deadlines:
            return None  # nothing scheduled; start() notifies
        # The cap only guards against a clock that jumps; the timeout normally ends the wait.
        return min(max(min(deadlines) - self._clock(), 0.0), 3600.0)

    def _advance(self, now: float) -> list[JobEvent]:
        events: list[JobEvent] = []
        wall = None
        while self._due and self._due[0][0] <= now:
            job = heapq.heappop(self._due)[2]
            if wall is None:
                wall = self._wall_clock()
            job.result = job.outcome
            job.finished_at = wall
            if job.event is not None:
                job.event.set()
            if job.job_id != self.default_job_id:
                # `now` only grows under the lock, so the deque stays sorted by expiry.
                self._expiry.append((now + self.settings.job_ttl, job))
            detail = f"error: {JOB_ERROR_MESSAGE}" if job.result is JobResult.ERROR else ""
            events.append(JobEvent(job.job_id, job.result.value, self._document(job, now), detail))
        while self._expiry and self._expiry[0][0] <= now:
            job = self._expiry.popleft()[1]
            del self._jobs[job.job_id]
            if job.idempotency_key is not None:
                self._keys.pop(job.idempotency_key, None)
            events.append(JobEvent(job.job_id, "evicted", self._document(job, now)))
        return self._logged(events, now)

    def _retry_after(self, now: float) -> int:
        """Whole seconds until the earliest live job is forgotten and its slot frees."""
        candidates = [self._expiry[0][0]] if self._expiry else []
        for due, _, job in heapq.nsmallest(2, self._due):
            if job.job_id != self.default_job_id:
                candidates.append(due + self.settings.job_ttl)
                break
        return max(1, math.ceil(min(candidates, default=now + 1) - now))

    def _document(self, job: _Job, now: float) -> dict[str, Any]:
        doc: dict[str, Any] = {"job_id": job.job_id, "result": job.result.value}
        if job.result is JobResult.PENDING:
            duration = job.due - job.started  # 0 only for the "started" event of a 0 s job
            elapsed = max(now - job.started, 0.0)
            doc["progress"] = min(round(elapsed / duration, 3), 0.999) if duration > 0 else 0.0
            doc["created_at"] = job.created_at
            doc["eta_seconds"] = round(job.eta_factor * (job.due - now), 3)
        else:
            doc["progress"] = 1.0
            doc["created_at"] = job.created_at
            doc["finished_at"] = job.finished_at
            if job.result is JobResult.ERROR:
                doc["error"] = JOB_ERROR_MESSAGE
        return doc
