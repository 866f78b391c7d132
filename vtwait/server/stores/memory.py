"""The in-memory job store: the jobs of one app in this process, behind the JobStore interface.

One lock guards everything; one timer thread finishes due jobs and forgets expired ones. Jobs do
not outlive the process and are not shared between worker processes (``JOB_STORE=memory``, the
default; see ``stores/__init__.py``). All durations are in seconds.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
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
from typing import Any

from vtwait.server.clock import Clock, SystemClock
from vtwait.server.settings import Settings
from vtwait.server.stores.base import (
    FINAL_RESULTS,
    JOB_CANCELED_MESSAGE,
    JOB_DEADLINE_MESSAGE,
    JOB_ERROR_MESSAGE,
    LIST_SCAN_BUDGET,
    LISTING_ID_OFFSET,
    UNLOGGED_KINDS,
    EventIdExpiredError,
    JobEvent,
    JobPhase,
    JobResult,
    JobStore,
    LoggedEvent,
    StoreClosedError,
    StoreFullError,
    listing_position,
)
from vtwait.server.stores.queue_eta import estimate_queue_starts

__all__ = ["ADVANCE_SLICE", "MemoryJobStore", "estimate_queue_starts"]

logger = logging.getLogger(__name__)

#: Most due jobs one lock hold finishes, and most expired jobs it forgets: 10,000 jobs due at
#: once are finished in slices, and event readers and woken long-polls run between slices.
ADVANCE_SLICE = 256

#: The phase a running job ends in, by its fated result.
_END_PHASE = {JobResult.COMPLETED: JobPhase.COMPLETED, JobResult.ERROR: JobPhase.ERROR}
#: Compact one-line JSON, as logged events keep it (one encoder, not one per call).
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


@dataclasses.dataclass(slots=True, eq=False)
class _Job:
    job_id: str
    created_at: float  # wall clock
    duration: float
    outcome: JobResult  # the fate, revealed at ``due``
    eta_factor: float  # systematic error of this job's estimates
    idempotency_key: str | None
    callback_url: str | None = None
    callback_id: str | None = None
    phase: JobPhase = JobPhase.QUEUED
    started: float = 0.0  # monotonic clock, once running
    due: float = math.inf  # monotonic clock, once running
    started_at: float | None = None  # wall clock, once running
    result: JobResult = JobResult.PENDING
    finished_at: float | None = None  # wall clock
    event: threading.Event | None = None  # created by the first waiter, set by the finisher
    deadline: float = math.inf  # monotonic clock: cancelled then if still pending (Cancel-After)
    cancel_reason: str | None = None  # "request" or "deadline", once cancelled


class MemoryJobStore(JobStore):
    """The jobs of one app in this process's memory, safe to share between request threads (one
    lock guards everything).

    One background thread (``start_worker``) finishes jobs when they are due and forgets them
    ``JOB_TTL`` later, at most :data:`ADVANCE_SLICE` of each per lock hold, yielding between
    slices so readers see a burst's first changes while the rest is still being finished. Every
    call also does one slice of that work first, and a read of a job that is due finishes that
    job on the spot (it is left in the due heap, skipped when popped), so reads are right even
    without the timer and no read takes over a whole backlog.

    Args:
        settings: delays, error rate, limits.
        clock: monotonic seconds, for durations and expiry.
        wall_clock: Unix seconds, for ``created_at`` and ``finished_at``.
        timebase: what long-poll holds and event reads wait on (real time by default; a virtual
            clock ends a hold when it passes the hold's end).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        timebase: Clock | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self._clock = clock
        self._timebase = SystemClock() if timebase is None else timebase
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
        # Heap of running jobs by due time; an entry whose job a read found due and finished
        # stays until a slice pops it, then is skipped (such entries are all due already).
        self._due: list[tuple[float, int, _Job]] = []
        self._running = 0  # jobs in phase running: the slots CONCURRENCY counts
        self._queue: collections.deque[_Job] = collections.deque()  # waiting for a slot, FIFO
        # Queued job id -> (position, estimated start), and the slots' estimated free times after
        # the last one: rebuilt after a slot or the queue's head changes, extended on a start.
        self._queue_view: tuple[dict[str, tuple[int, float]], list[float]] | None = None
        self._expiry: collections.deque[tuple[float, _Job]] = collections.deque()  # finish order
        # Heap of deadlines (Cancel-After); an entry whose job ended first is skipped when popped.
        self._deadlines: list[tuple[float, int, _Job]] = []
        # (created_at, job id) of every job, sorted: the listing's order (GET /jobs). Forgotten
        # jobs stay until the list is compacted; a listing skips them.
        self._order: list[str] = []
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
        callback_url: str | None = None,
        callback_id: str | None = None,
        cancel_after: float | None = None,
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
                job.callback_url, job.callback_id = callback_url, callback_id
                if cancel_after is not None:
                    job.deadline = now + cancel_after
                    if not self._deadlines or job.deadline < self._deadlines[0][0]:
                        self._cond.notify()  # the timer sleeps until a later time
                    heapq.heappush(self._deadlines, (job.deadline, next(self._seq), job))
                if default:
                    self.default_job_id = job.job_id
                self._queue.append(job)
                running = self._promote(now, now)  # no event: "started" says it
                if not running and self._queue_view is not None:
                    self._extend_view(job, self._queue_view)
                fate = f"started (delay {job.duration:.3f} s, fated {job.outcome.value}"
                fate += ")" if running else f", queued at {len(self._queue)})"
                started = JobEvent(job.job_id, "started", self._document(job, now), fate)
                events += self._logged([started], now)
            if job is not None:  # a zero delay finishes at once; so does a replayed due job
                events += self._finish_if_due(job, now)
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
            if job is not None:
                events += self._finish_if_due(job, now)
            doc = None if job is None else self._document(job, now)
        self._publish(events)
        return doc

    def wait(self, job_id: str, timeout: float) -> tuple[dict[str, Any] | None, bool]:
        """See :meth:`JobStore.wait`; the thread that finishes the job wakes its waiters at once."""
        with self._cond:
            now = self._clock()
            events = self._advance(now)
            job = self._jobs.get(job_id)
            if job is not None:
                events += self._finish_if_due(job, now)
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
            self._timebase.wait(event, timeout)
        finally:
            with self._cond:
                self._waiters -= 1
        return self.status(job_id), True

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """See :meth:`JobStore.cancel`."""
        with self._cond:
            now = self._clock()
            events = self._advance(now)
            job = self._jobs.get(job_id)
            if job is not None:
                events += self._finish_if_due(job, now)  # a due job completes: too late to cancel
            if job is not None and job.result is JobResult.PENDING:
                events += self._logged(self._cancel(job, now, "request"), now)
            doc = None if job is None else self._document(job, now)
        self._publish(events)
        return doc

    def list_jobs(
        self,
        *,
        limit: int,
        before: str | None = None,
        result: str | None = None,
        phase: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """See :meth:`JobStore.list_jobs`: a walk down the sorted list of listing positions."""
        limit = max(limit, 1)
        with self._cond:
            now = self._clock()
            events = self._advance(now)
            order = self._order
            index = len(order) if before is None else bisect.bisect_left(order, before)
            docs: list[dict[str, Any]] = []
            budget = limit + LIST_SCAN_BUDGET
            position: str | None = None
            while index > 0 and len(docs) < limit and budget > 0:
                index -= 1
                budget -= 1
                position = order[index]
                job = self._jobs.get(position[LISTING_ID_OFFSET:])
                if job is None:
                    continue
                events += self._finish_if_due(job, now)
                if (result is None or job.result.value == result) and (
                        phase is None or job.phase.value == phase):
                    docs.append(self._document(job, now))
            more = index > 0
        self._publish(events)
        return docs, position if more else None

    def delete(self, job_id: str) -> tuple[str, dict[str, Any] | None]:
        """See :meth:`JobStore.delete`."""
        with self._cond:
            now = self._clock()
            events = self._advance(now)
            job = self._jobs.get(job_id)
            if job is not None:
                events += self._finish_if_due(job, now)
            if job is None:
                outcome, doc = "unknown", None
            else:
                doc = self._document(job, now)
                if job.result is JobResult.PENDING:
                    outcome = "pending"
                elif job.job_id == self.default_job_id:
                    outcome = "default"
                else:
                    outcome = "deleted"
                    # Its expiry entry stays in the deque; the eviction skips a forgotten job.
                    self._forget(job)
                    events.append(JobEvent(job.job_id, "evicted", doc))
        self._publish(events)
        return outcome, doc

    def process_due(self) -> int:
        """Finishes the jobs that are due and forgets the expired ones; returns how many changed.

        The work is done one slice per lock hold, each slice published before the next.
        """
        changed = 0
        while True:
            with self._cond:
                now = self._clock()
                events = self._advance(now)
                behind = self._behind(now)
            self._publish(events)
            changed += len(events)
            if not behind:
                return changed

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

    def follow(self, clock: Clock) -> None:
        """See :meth:`JobStore.follow`: ``clock.advance`` stops at each due time and eviction and
        finishes what is due there (no timer thread)."""
        clock.add_schedule(self.next_due, self.process_due)

    def next_due(self) -> float | None:
        """The next time (``clock``) the timer thread would wake: a job due, a finished job
        expiring, or anything else it waits for; None when nothing is scheduled. At most an
        hour ahead (the timer's own cap), so a long advance also stops once an hour."""
        with self._cond:
            timeout = self._next_timeout()
            return None if timeout is None else self._clock() + timeout

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

    def reset(self) -> int:
        """See :meth:`JobStore.reset`."""
        with self._cond:
            gone = [job for job in self._jobs.values() if job.job_id != self.default_job_id]
            for job in gone:
                del self._jobs[job.job_id]
                if job.idempotency_key is not None:
                    self._keys.pop(job.idempotency_key, None)
                if job.event is not None:
                    job.event.set()  # a held long-poll answers (a 404 now: the job is gone)
            self._due = [entry for entry in self._due if entry[2].job_id in self._jobs]
            heapq.heapify(self._due)
            self._deadlines = [e for e in self._deadlines if e[2].job_id in self._jobs]
            heapq.heapify(self._deadlines)
            self._order = [p for p in self._order if p[LISTING_ID_OFFSET:] in self._jobs]
            self._queue = collections.deque(j for j in self._queue if j.job_id in self._jobs)
            self._expiry = collections.deque(e for e in self._expiry if e[1].job_id in self._jobs)
            self._running = sum(1 for job in self._jobs.values() if job.phase is JobPhase.RUNNING)
            self._queue_view = None
            self._cond.notify()
        return len(gone)

    def event_snapshot(self, job_ids: Sequence[str]) -> tuple[list[dict[str, Any] | None], int]:
        """See :meth:`JobStore.event_snapshot`."""
        with self._cond:
            now = self._clock()
            events = self._advance(now)
            jobs = [self._jobs.get(job_id) for job_id in job_ids]
            for job in jobs:
                if job is not None:
                    events += self._finish_if_due(job, now)
            docs = [None if job is None else self._document(job, now) for job in jobs]
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
        # On the timebase: real time even for tests that run the jobs on a fake clock.
        deadline = self._timebase.monotonic() + timeout
        with self._cond:
            events = self._advance(self._clock())
            while not self._stopping and event_id == self._last_event_id:
                left = deadline - self._timebase.monotonic()
                if left <= 0 or not self._timebase.wait_for(self._new_events, left):
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
                data = _compact_json(event.doc)
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
            duration=drawn_delay if delay is None else delay,
            outcome=outcome,
            eta_factor=1.0 + noise,
            idempotency_key=key,
        )
        self._jobs[job.job_id] = job
        position = listing_position(job.created_at, job.job_id)
        if not self._order or self._order[-1] < position:
            self._order.append(position)
        else:  # the wall clock stepped back
            bisect.insort(self._order, position)
        if len(self._order) > 2 * len(self._jobs) + 1024:  # drop forgotten jobs, amortized
            self._order = [p for p in self._order if p[LISTING_ID_OFFSET:] in self._jobs]
        if key is not None:
            self._keys[key] = job
        return job

    def _promote(self, at: float, now: float) -> list[_Job]:
        """Moves queued jobs into free slots, as if they started at ``at`` (when a slot freed)."""
        limit = self.settings.concurrency
        promoted = []
        while self._queue and (limit == 0 or self._running < limit):
            job = self._queue.popleft()
            self._running += 1
            job.phase, job.started, job.due = JobPhase.RUNNING, at, at + job.duration
            job.started_at = self._wall_clock() - (now - at)
            wake_worker = not self._due or job.due < self._due[0][0]
            heapq.heappush(self._due, (job.due, next(self._seq), job))
            if wake_worker:  # the timer thread sleeps until the old earliest due time
                self._cond.notify()
            promoted.append(job)
        if promoted and limit:
            self._queue_view = None
        return promoted

    def _announce(self, promoted: list[_Job], now: float) -> list[JobEvent]:
        return [JobEvent(job.job_id, "running", self._document(job, now)) for job in promoted]

    def _finish(
        self, job: _Job, result: JobResult, phase: JobPhase, now: float, wall: float
    ) -> None:
        if job.phase is JobPhase.RUNNING:
            self._running -= 1
        job.result, job.phase, job.finished_at = result, phase, wall
        if job.event is not None:
            job.event.set()
        if job.job_id != self.default_job_id:
            # `now` only grows under the lock, so the deque stays sorted by expiry.
            self._expiry.append((now + self.settings.job_ttl, job))

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                now = self._clock()
                events = self._advance(now)
                behind = self._behind(now)
                if not events and not behind:
                    self._cond.wait(self._next_timeout())
                    continue
            self._publish(events)
            if behind:
                # Lets the others run before the next slice: under gevent (monkey-patched) this
                # yields to the hub; with threads it releases the GIL.
                time.sleep(0)

    def _next_timeout(self) -> float | None:
        deadlines = [self._due[0][0]] if self._due else []
        if self._expiry:
            deadlines.append(self._expiry[0][0])
        if self._deadlines:
            deadlines.append(self._deadlines[0][0])
        if not deadlines:
            return None  # nothing scheduled; start() notifies
        # The cap only guards against a clock that jumps; the timeout normally ends the wait.
        return min(max(min(deadlines) - self._clock(), 0.0), 3600.0)

    def _advance(self, now: float) -> list[JobEvent]:
        """Finishes the earliest :data:`ADVANCE_SLICE` due jobs and forgets as many expired ones
        (:meth:`_behind` tells whether more is left), and logs the changes."""
        events: list[JobEvent] = []
        # Deadlines first: a job whose deadline passed before its due time is cancelled, not
        # completed, however late the timer runs.
        heap, budget = self._deadlines, ADVANCE_SLICE
        while budget and heap and heap[0][0] <= now:
            job = heapq.heappop(heap)[2]
            if job.result is JobResult.PENDING and job.due > job.deadline:  # queued: due is inf
                events += self._cancel(job, now, "deadline")
                budget -= 1
        wall = None
        due_heap, budget = self._due, ADVANCE_SLICE
        while budget and due_heap and due_heap[0][0] <= now:
            due, _, job = heapq.heappop(due_heap)
            if job.result is not JobResult.PENDING:
                continue  # finished early by a read
            if wall is None:
                wall = self._wall_clock()
            events += self._complete(job, due, now, wall)
            budget -= 1
        budget = ADVANCE_SLICE
        while budget and self._expiry and self._expiry[0][0] <= now:
            budget -= 1
            job = self._expiry.popleft()[1]
            if self._jobs.get(job.job_id) is not job:
                continue  # deleted already (DELETE /jobs/<id>)
            self._forget(job)
            events.append(JobEvent(job.job_id, "evicted", self._document(job, now)))
        return self._logged(events, now)

    def _behind(self, now: float) -> bool:
        """Whether some job is due or expired still (the last slice stopped at its bound)."""
        return bool(self._due and self._due[0][0] <= now
                    or self._expiry and self._expiry[0][0] <= now
                    or self._deadlines and self._deadlines[0][0] <= now)

    def _forget(self, job: _Job) -> None:
        del self._jobs[job.job_id]
        if job.idempotency_key is not None and self._keys.get(job.idempotency_key) is job:
            del self._keys[job.idempotency_key]

    def _cancel(self, job: _Job, now: float, reason: str) -> list[JobEvent]:
        """Ends a pending job as cancelled (by ``reason``) and gives its slot to the queue."""
        if job.phase is JobPhase.QUEUED:
            self._queue.remove(job)
        else:  # removed at once: a far due time would keep a lazy entry for long
            self._due = [entry for entry in self._due if entry[2] is not job]
            heapq.heapify(self._due)
        self._queue_view = None
        job.cancel_reason = reason
        self._finish(job, JobResult.ERROR, JobPhase.CANCELED, now, self._wall_clock())
        detail = "canceled by its deadline" if reason == "deadline" else ""
        canceled = JobEvent(job.job_id, "canceled", self._document(job, now), detail)
        return [canceled, *self._announce(self._promote(now, now), now)]

    def _complete(self, job: _Job, due: float, now: float, wall: float) -> list[JobEvent]:
        """Ends a due running job with its fate and gives its slot to the queue (unlogged)."""
        self._finish(job, job.outcome, _END_PHASE[job.outcome], now, wall)
        detail = f"error: {JOB_ERROR_MESSAGE}" if job.result is JobResult.ERROR else ""
        events = [JobEvent(job.job_id, job.result.value, self._document(job, now), detail)]
        if self.settings.concurrency:
            self._queue_view = None
            # The next job started when this one's slot freed, not when we noticed.
            events += self._announce(self._promote(due, now), now)
        return events

    def _finish_if_due(self, job: _Job, now: float) -> list[JobEvent]:
        """Finishes a job a read found due at once (its heap entry stays); logs the changes."""
        if job.result is JobResult.PENDING and job.deadline <= now and job.due > job.deadline:
            return self._logged(self._cancel(job, now, "deadline"), now)  # its heap entry stays
        if job.phase is not JobPhase.RUNNING or job.due > now:
            return []
        return self._logged(self._complete(job, job.due, now, self._wall_clock()), now)

    def _retry_after(self, now: float) -> int:
        """Whole seconds until the earliest live job is forgotten and its slot frees."""
        candidates = [self._expiry[0][0]] if self._expiry else []
        running = (due for due, _, job in self._due
                   if job.result is JobResult.PENDING and job.job_id != self.default_job_id)
        first_due = min(running, default=None)
        if first_due is not None:
            candidates.append(first_due + self.settings.job_ttl)
        return max(1, math.ceil(min(candidates, default=now + 1) - now))

    def _queue_estimate(self, job: _Job, now: float) -> tuple[int, float]:
        """A queued job's 1-based position and estimated start (monotonic clock)."""
        if self._queue_view is None:
            # Each running job is expected to end when its own estimate says, seen from now.
            ends = [now + max(j.eta_factor * (due - now), 0.0) for due, _, j in self._due
                    if j.result is JobResult.PENDING]
            ends += [now] * (self.settings.concurrency - len(ends))
            heapq.heapify(ends)
            self._queue_view = ({}, ends)
            for queued in self._queue:
                self._extend_view(queued, self._queue_view)
        return self._queue_view[0][job.job_id]

    @staticmethod
    def _extend_view(job: _Job, view: tuple[dict[str, tuple[int, float]], list[float]]) -> None:
        """Adds the job at the queue's tail to the view (what estimate_queue_starts does)."""
        positions, slots = view
        start = heapq.heappop(slots)
        heapq.heappush(slots, start + job.eta_factor * job.duration)
        positions[job.job_id] = (len(positions) + 1, start)

    def _document(self, job: _Job, now: float) -> dict[str, Any]:
        doc: dict[str, Any] = {"job_id": job.job_id, "result": job.result.value,
                               "phase": job.phase.value}
        if job.phase is JobPhase.QUEUED:
            position, start = self._queue_estimate(job, now)
            doc["progress"] = 0.0  # progress counts from started_at: waiting is not work
            doc["created_at"] = job.created_at
            doc["queue_position"] = position
            doc["eta_seconds"] = round(max(start - now, 0.0) + job.eta_factor * job.duration, 3)
        elif job.result is JobResult.PENDING:
            duration = job.duration  # 0 only for the "started" event of a 0 s job
            elapsed = max(now - job.started, 0.0)
            doc["progress"] = min(round(elapsed / duration, 3), 0.999) if duration > 0 else 0.0
            doc["created_at"] = job.created_at
            doc["started_at"] = job.started_at
            doc["eta_seconds"] = round(job.eta_factor * (job.due - now), 3)
        else:
            doc["progress"] = 1.0
            doc["created_at"] = job.created_at
            if job.started_at is not None:  # a job cancelled in the queue never started
                doc["started_at"] = job.started_at
            doc["finished_at"] = job.finished_at
            if job.phase is JobPhase.CANCELED:
                deadline = job.cancel_reason == "deadline"
                doc["error"] = JOB_DEADLINE_MESSAGE if deadline else JOB_CANCELED_MESSAGE
                doc["cancel_reason"] = job.cancel_reason or "request"
            elif job.result is JobResult.ERROR:
                doc["error"] = JOB_ERROR_MESSAGE
        if job.callback_id is not None:
            doc["callback_id"] = job.callback_id
        if job.callback_url is not None:
            doc["callback_url"] = job.callback_url
        return doc

