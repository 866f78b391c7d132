"""The store interface and its types: what the HTTP layer needs from wherever jobs live.

A store starts jobs, answers their status documents, holds long-polls until a job is final, and
finishes jobs when they are due (one timer for all of them) and forgets them ``JOB_TTL`` later.
The HTTP layer only talks to a store through :class:`JobStore`'s methods, so every store behaves
the same behind the API. The stores are ``memory.py`` (:class:`MemoryJobStore`, one process) and
``redis_store.py`` (shared by workers and hosts); ``stores/__init__.py`` is the factory, the only
place that knows the kinds. This module is a leaf: it imports no other store. All durations are
in seconds.

Every change but an eviction is also kept in an **event log** for ``GET /events``
(``events.py``): a :class:`LoggedEvent` with an id taken from one counter, in the same atomic
step as the change, so ids grow in the order the changes happened. The log keeps the last
``EVENT_RETENTION`` events, none older than ``JOB_TTL``.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import logging
import os
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from vtwait.server.clock import Clock
from vtwait.server.settings import Settings

__all__ = [
    "FINAL_EVENT_KINDS",
    "FINAL_RESULTS",
    "JOB_CANCELED_MESSAGE",
    "JOB_DEADLINE_MESSAGE",
    "JOB_ERROR_MESSAGE",
    "JOB_ID_RE",
    "UNLOGGED_KINDS",
    "EventIdExpiredError",
    "JobEvent",
    "JobPhase",
    "JobResult",
    "JobStore",
    "LISTING_ID_OFFSET",
    "LIST_SCAN_BUDGET",
    "LoggedEvent",
    "StoreClosedError",
    "StoreFullError",
    "StoreUnavailableError",
    "listing_position",
]

logger = logging.getLogger(__name__)

#: Message of a job that ends in ``error``.
JOB_ERROR_MESSAGE = "translation failed (simulated error)"
#: Message of a job ended by ``POST /status/<job_id>/cancel``.
JOB_CANCELED_MESSAGE = "job was cancelled at the caller's request"
#: Message of a job ended by its deadline (``Cancel-After``).
JOB_DEADLINE_MESSAGE = "job was cancelled by its deadline (Cancel-After)"
#: Most jobs one ``list_jobs`` page looks at beyond its ``limit``: a filtered page that finds
#: fewer matches stops there and gives a cursor, so no page costs O(all jobs).
LIST_SCAN_BUDGET = 2000
#: Where the job id starts in a listing position (:func:`listing_position`).
LISTING_ID_OFFSET = 17
#: What a job id looks like in the API (``/status/<job_id>``, ``/events?job_id=``): an id of
#: another form is simply unknown, without asking the store.
JOB_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")


class JobResult(str, enum.Enum):
    """The state of a job, as reported in the status document's ``result``."""

    PENDING = "pending"
    COMPLETED = "completed"
    ERROR = "error"


#: Results after which a job never changes again.
FINAL_RESULTS = frozenset({JobResult.COMPLETED, JobResult.ERROR})


class JobPhase(str, enum.Enum):
    """Where a job is, as reported in the status document's ``phase``.

    ``queued`` and ``running`` have ``result: "pending"``; ``canceled`` has ``result: "error"``.
    """

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    ERROR = "error"
    CANCELED = "canceled"


class StoreFullError(RuntimeError):
    """``MAX_JOBS`` live jobs exist already; ``retry_after`` is the wait until a slot frees."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many live jobs; a slot frees in {retry_after} s")
        self.retry_after = retry_after


class StoreUnavailableError(RuntimeError):
    """The store cannot answer now (Redis unreachable or timing out); try again in ``retry_after``.

    The HTTP layer answers 503 with ``Retry-After``; the store recovers by itself.
    """

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
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
#: Kinds of change that end a job (a :class:`JobEvent`'s ``kind``): webhooks and metrics count
#: these.
FINAL_EVENT_KINDS = frozenset({"completed", "error", "canceled"})


def listing_position(created_at: float, job_id: str) -> str:
    """A job's place in ``GET /jobs``: ``created_at`` in microseconds (16 digits) and its id, so
    that positions sort as the jobs do (by creation, then id) in a list and in a Redis sorted
    set (by member, ``ZRANGEBYLEX``)."""
    return f"{round(created_at * 1_000_000):016d}:{job_id}"


@dataclasses.dataclass(frozen=True, slots=True)
class JobEvent:
    """One change of one job, as a store's listeners hear it.

    ``kind`` is ``started`` (created, running or queued), ``running`` (left the queue; a job that
    never queued has no such event), ``completed``, ``error``, ``canceled`` or ``evicted``; ``doc``
    is the job's status document just after the change; ``detail`` is the log's wording (empty:
    the kind says it).
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

    #: The settings the store was built with (delays, limits); the store's own business.
    settings: Settings
    #: The server's default job (``GET /status``), once started.
    default_job_id: str | None
    _shared_secret: bytes | None = None

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
        callback_url: str | None = None,
        callback_id: str | None = None,
        cancel_after: float | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Starts a job, or finds the one started with the same idempotency key.

        With ``CONCURRENCY`` jobs running already, the job queues (``phase: "queued"``) behind
        the others in FIFO order, and its duration counts from when it leaves the queue (a
        ``running`` event).

        Args:
            delay: the job's duration; ``None`` draws it from ``[MIN_DELAY, MAX_DELAY]``.
            outcome: the job's fate; ``None`` draws it with ``ERROR_PROBABILITY``.
            idempotency_key: a key already seen (within ``JOB_TTL``) returns that key's job.
            default: this is the server's default job: never evicted, not counted in MAX_JOBS.
            callback_url: kept in the document (``callback_url``); the webhook sender posts the
                final document there. Validated by the caller.
            callback_id: kept in the document (``callback_id``), echoed back to the caller.
            cancel_after: a deadline, seconds from now: a job still queued or running then is
                cancelled as by :meth:`cancel`, with ``cancel_reason: "deadline"`` and
                :data:`JOB_DEADLINE_MESSAGE` (a job due no later than its deadline completes).

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
    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Cancels a queued or running job; a final job is left as it is.

        A cancelled job becomes final at once (``result: "error"``, ``phase: "canceled"``,
        ``error``: :data:`JOB_CANCELED_MESSAGE`, ``finished_at`` now), wakes its waiters,
        frees its running slot for the next queued job, and is published as a ``canceled``
        event; it is forgotten ``JOB_TTL`` later like any final job.

        Returns:
            The job's document after the call (its ``phase`` tells a cancelled job, now or
            before, from one that had already completed or failed), or ``None`` for an unknown
            job.
        """

    @abc.abstractmethod
    def list_jobs(
        self,
        *,
        limit: int,
        before: str | None = None,
        result: str | None = None,
        phase: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Live jobs newest first (by ``created_at``, then job id), filtered, one page at a time.

        Args:
            limit: most documents returned (at least 1).
            before: the position (:func:`listing_position`) to continue after, as returned by
                the previous page; None starts with the newest job.
            result: only jobs with this ``result``; phase: only jobs in this ``phase``.

        Returns:
            The documents, and the position to pass as ``before`` for the next page (None when
            there is none). A filtered page looks at no more than ``limit`` +
            :data:`LIST_SCAN_BUDGET` jobs, so it may hold fewer than ``limit`` with a position
            still given. A job started after the first page sorts before every page: a listing
            neither repeats nor skips a job that lives through it.
        """

    @abc.abstractmethod
    def delete(self, job_id: str) -> tuple[str, dict[str, Any] | None]:
        """Forgets a final job at once, as its expiry would (an ``evicted`` change).

        Returns:
            ``("deleted", document before)``, ``("pending", document)`` for a job still queued or
            running (left as it is), ``("default", document)`` for the server's default job
            (never forgotten), or ``("unknown", None)``.
        """

    def shared_secret(self) -> bytes:
        """A random key shared by every process serving these jobs (signed output URLs, listing
        cursors); the memory store lives in one process, so its own random key is enough."""
        if self._shared_secret is None:
            self._shared_secret = os.urandom(32)
        return self._shared_secret

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

    def follow(self, clock: Clock) -> None:
        """Lets a virtual ``clock`` run the due work when it is advanced (instead of a timer
        thread). Only the memory store can: Redis keeps time on the real clock its processes
        share (``CLOCK=virtual`` with a Redis store is refused by the settings)."""
        raise NotImplementedError(f"{type(self).__name__} cannot follow a virtual clock")

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

    def reset(self) -> int:
        """Forgets every job but the default one, at once (``POST /_admin/reset``): held
        long-polls on them answer, their idempotency keys are free again; the event log stays.

        Returns:
            How many jobs were forgotten.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot reset")

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

