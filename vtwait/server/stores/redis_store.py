"""The job store on Redis: every worker and every host of one service sees the same jobs.

Usage::

    JOB_STORE=redis://127.0.0.1:6379/0 python server.py --workers 2
    store = RedisJobStore(Settings(job_store="redis://127.0.0.1:6379/0"))
    doc, created = store.start(delay=5)

It behaves like :class:`~vtwait.server.stores.memory.MemoryJobStore` behind the API (the same test
suites run on both: routes, long-poll, TTL, limits, the queue, cancel, the event log). Every time
is Unix seconds from ``wall_clock``, the clock that all processes and hosts share; all durations
are in seconds.

Key layout (prefix ``vt:``, configurable; ``<id>`` is a job id):

===================  ==========  ==================================================================
key                  type        holds
===================  ==========  ==================================================================
``vt:job:<id>``      hash        ``job_id created_at duration outcome eta_factor result phase``,
                                 once running ``started due``, once final ``finished_at``; and
                                 ``key default cb_id cb_url deadline`` when set, ``reason`` once
                                 cancelled, ``order`` (its listing position). Times are kept as the
                                 text Python's ``repr`` wrote. Expires ``BACKSTOP`` s after it
                                 should be forgotten (Redis forgets it even when no server runs)
``vt:due``           sorted set  running job ids scored by due time: the timers' work list
``vt:queue``         list        queued job ids, FIFO (``CONCURRENCY``; empty when 0)
``vt:expiry``        sorted set  final job ids scored by the time they are forgotten
                                 (``finished_at + JOB_TTL``); the default job is never in it
``vt:deadlines``     sorted set  job ids with a deadline (``Cancel-After``) scored by it; a job is
                                 removed when it ends
``vt:created``       sorted set  every live job's listing position (``<created_at in us, 16
                                 digits>:<id>``, all scores 0) for ``GET /jobs`` (``ZREVRANGEBYLEX``)
``vt:secret``        string      the random key that signs output URLs and listing cursors
                                 (``SET NX`` by the first process); no expiry
``vt:idem:<key>``    string      the job id an ``Idempotency-Key`` started; same expiry as the job
``vt:default``       string      the default job's id (``GET /status``); no expiry
``vt:event_id``      string      the last event id given (``INCR``); starts at the first store's
                                 start time in microseconds
``vt:events``        stream      the event log of ``GET /events``: entry ``0-<event id>`` with
                                 ``job kind data t`` (``data``: the status document as JSON);
                                 ``XADD MAXLEN EVENT_RETENTION``, entries older than ``JOB_TTL``
                                 trimmed (``XTRIM MINID``) by the next change or read
``vt:final``         channel     pub/sub: ``<id> <finisher> <document>`` of each job that just
                                 became final (a woken long-poll answers from it, no read)
``vt:logged``        channel     pub/sub: the last event id, after each step that logged one
                                 (wakes every process's held event readers)
===================  ==========  ==================================================================

``MAX_JOBS`` accounting is ``ZCARD vt:due + LLEN vt:queue + ZCARD vt:expiry`` (minus the default
job while it is pending): no counter to drift. Every change is one Lua script
(``redis_scripts.py``), so it is atomic with respect to every other client: a start (forget what
expired, replay an idempotency key or the default job, check ``MAX_JOBS``, create, queue or run), a
read (finish the job if due, forget it if expired), a cancel (end the job, start the next queued
one), and the timer's batch (finish due jobs in due order, each freeing its slot for the head of
the queue at its due time; forget expired ones). A job is finished only by the script call that
finds it ``pending`` in ``vt:due`` and removes it, so with any number of workers running the timer
each job changes once, and one process reports the change to its listeners (so a webhook is sent
once). Each change is appended to ``vt:events`` inside the same script, so event ids follow the
order of the changes across every process, and a snapshot (``event_snapshot``) reads documents and
the last id in one script. The scripts write the status documents themselves, as JSON byte for byte
like the memory store's. A job finished more than ``LATE_FINISH`` seconds after its due time (no
server ran then, e.g. across a restart) gets its due time as ``finished_at``, not the moment it was
noticed.

Each process holds one pub/sub connection (a thread, or a greenlet under gevent) subscribed to
``vt:final`` and ``vt:logged``; it wakes this process's long-polls on a job that became final and
its event readers, whichever worker or host made the change. Waiters hold no connection while they
wait. When Redis is lost, calls raise :class:`~vtwait.server.stores.base.StoreUnavailableError`
(the API answers 503) within the socket timeouts, held long-polls are woken and answered the same
way, event streams end (clients resume with ``Last-Event-ID``), and every connection reconnects by
itself.

One difference from the memory store: a queued job's ``eta_seconds`` is computed from the running
jobs' estimates at each read, where the memory store keeps the estimate it made when the queue last
changed; with ``ETA_NOISE=0`` both give the same numbers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

import vtwait.server.stores.redis_scripts as scripts
from vtwait.server.settings import Settings, mask_url
from vtwait.server.stores.base import (
    FINAL_EVENT_KINDS,
    FINAL_RESULTS,
    JOB_ERROR_MESSAGE,
    LIST_SCAN_BUDGET,
    UNLOGGED_KINDS,
    EventIdExpiredError,
    JobEvent,
    JobResult,
    JobStore,
    LoggedEvent,
    StoreClosedError,
    StoreFullError,
    StoreUnavailableError,
    listing_position,
)

__all__ = ["DEFAULT_PREFIX", "RedisJobStore", "check_reachable"]

logger = logging.getLogger(__name__)

#: Prefix of every key this store uses.
DEFAULT_PREFIX = "vt:"
#: A job finished later than this after its due time is reported finished at its due time.
LATE_FINISH = 1.0
#: Redis expires a job's keys this long after the store should have forgotten it (a backstop
#: for jobs no server is left to forget); the timer forgets them on time.
BACKSTOP = 60.0
#: Longest sleep of the timer: bounds how late a job is finished when the worker that started it
#: (and would have woken its own timer) died.
TIMER_MAX_SLEEP = 1.0
#: Most jobs one timer script finishes (and forgets) at once, so Redis never stalls long.
BATCH = 500
#: Socket timeouts: no request waits on a lost Redis much past these (one retry included).
SOCKET_TIMEOUT = 2.0
CONNECT_TIMEOUT = 1.0
#: Most Redis connections of one process (the pub/sub one included). Waiters hold none while
#: they wait, so 10,000 long-polls arriving at once queue here for their first read instead of
#: opening 10,000 connections; a request waits up to POOL_TIMEOUT for one (well under the
#: request timeout), then answers 503.
MAX_CONNECTIONS = 64
POOL_TIMEOUT = 10.0
#: Pause between reconnection attempts of the pub/sub listener and the timer.
RECONNECT_PAUSE = 0.5

_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError)



def check_reachable(url: str) -> None:
    """Pings the Redis at ``url`` once (connect and socket timeouts as the store's).

    Raises:
        StoreUnavailableError: no answer; the message names ``JOB_STORE``, password masked.
    """
    client = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT,
                                  socket_connect_timeout=CONNECT_TIMEOUT)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise StoreUnavailableError(f"JOB_STORE {mask_url(url)} unreachable: {exc}") from exc
    finally:
        client.close()


@dataclasses.dataclass(eq=False, slots=True)
class _Waiter:
    """One held long-poll: woken with the final document, or without one (recheck)."""

    event: threading.Event = dataclasses.field(default_factory=threading.Event)
    doc: dict[str, Any] | None = None


class RedisJobStore(JobStore):
    """Jobs in Redis, shared by every process given the same URL (and prefix).

    Args:
        settings: delays, error rate, limits; ``settings.job_store`` is the Redis URL.
        wall_clock: Unix seconds, for every time (due times too: processes share this clock).
        prefix: prefix of every key, so that several services can share one Redis database.

    Raises:
        StoreUnavailableError: Redis cannot be reached; the message names ``JOB_STORE`` with its
            password masked.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        wall_clock: Callable[[], float] = time.time,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.default_job_id: str | None = None
        self._clock = wall_clock
        self._prefix = prefix
        self._where = f"JOB_STORE {mask_url(settings.job_store)}"
        self._rng = random.Random(settings.seed)
        self._lock = threading.Lock()
        self._waiting: dict[str, set[_Waiter]] = {}  # job id -> this process's held long-polls
        self._waiters = 0  # places taken under MAX_WAITERS (from just before the first read)
        self._held = 0  # long-polls holding now (the first read found the job pending)
        self._stopping = threading.Event()
        self._wake_timer = threading.Event()
        self._next_wake = math.inf
        self._timer: threading.Thread | None = None
        self._me = uuid.uuid4().hex  # names this store in what it publishes
        self._control = f"{prefix}control:{self._me}"  # shutdown() wakes the listener
        self._lost = False
        # Event ids start at the first store's start time in microseconds (like the memory
        # store's), so an id from another service is refused, never silently gapped; every
        # later store of this service continues the same counter.
        self._first_event_id = int(wall_clock() * 1_000_000)
        self._log_changes = threading.Condition()  # event readers of this process wait here
        self._log_generation = 0  # bumped on each change logged by any process
        self._pool = redis.BlockingConnectionPool.from_url(
            settings.job_store,
            max_connections=MAX_CONNECTIONS,
            timeout=POOL_TIMEOUT,
            decode_responses=True,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        )
        self._redis = redis.Redis(connection_pool=self._pool)
        self._start_script = self._redis.register_script(scripts.START)
        self._status_script = self._redis.register_script(scripts.STATUS)
        self._advance_script = self._redis.register_script(scripts.ADVANCE)
        self._snapshot_script = self._redis.register_script(scripts.SNAPSHOT)
        self._cancel_script = self._redis.register_script(scripts.CANCEL)
        self._events_after_script = self._redis.register_script(scripts.EVENTS_AFTER)
        self._len_script = self._redis.register_script(scripts.LEN)
        self._reset_script = self._redis.register_script(scripts.RESET)
        self._list_script = self._redis.register_script(scripts.LIST)
        self._delete_script = self._redis.register_script(scripts.DELETE)
        try:
            self._redis.ping()
            self._pubsub = self._subscribe()
        except _UNAVAILABLE as exc:
            self._pool.disconnect()
            raise StoreUnavailableError(f"{self._where} unreachable: {exc}") from exc
        self._listener = threading.Thread(
            target=self._listen, name="job-store-listener", daemon=True
        )
        self._listener.start()

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
        settings = self.settings
        with self._lock:
            state = self._rng.getstate()
            # Always draw all three, so a fixed delay or outcome keeps the SEED sequence in step.
            drawn_delay = self._rng.uniform(settings.min_delay, settings.max_delay)
            fails = self._rng.random() < settings.error_probability
            noise = self._rng.uniform(-settings.eta_noise, settings.eta_noise)
        if outcome is None:
            outcome = JobResult.ERROR if fails else JobResult.COMPLETED
        duration = drawn_delay if delay is None else delay
        now = self._clock()
        job_id = uuid.uuid4().hex
        reply = self._call(
            self._start_script, now, job_id, repr(now), repr(duration), outcome.value,
            repr(1.0 + noise), idempotency_key or "", "1" if default else "0", settings.max_jobs,
            "" if callback_id is None else json.dumps(callback_id),
            "" if callback_url is None else json.dumps(callback_url),
            "" if cancel_after is None else repr(now + cancel_after),
            listing_position(now, job_id),
        )  # fmt: skip
        tag = reply[0]
        events = self._events(reply[2])
        if tag == "full":
            self._report(events)
            first_expiry, first_due = reply[1]
            candidates = [float(first_expiry)] if first_expiry else []
            if first_due:
                candidates.append(float(first_due) + settings.job_ttl)
            raise StoreFullError(max(1, math.ceil(min(candidates, default=now + 1) - now)))
        doc = json.loads(reply[1])
        if tag == "created":
            created = json.loads(reply[3])
            fate = f"started (delay {duration:.3f} s, fated {outcome.value}"
            fate += f", queued at {created['queue_position']})" if "queue_position" in created \
                else ")"
            # The evictions the script made first, then the start, then what followed it.
            later = [e for e in events if e.kind != "evicted"]
            events = [e for e in events if e.kind == "evicted"]
            events += [JobEvent(job_id, "started", created, fate), *later]
            first = now + min(duration, math.inf if cancel_after is None else cancel_after)
            if first < self._next_wake:  # this process's timer sleeps until later
                self._wake_timer.set()
        else:
            with self._lock:  # a replay creates nothing, so it draws nothing
                self._rng.setstate(state)
        if default:
            self.default_job_id = doc["job_id"]
        self._report(events)
        return doc, tag == "created"

    def status(self, job_id: str) -> dict[str, Any] | None:
        """Returns the job's status document, or ``None`` for an unknown (or forgotten) job."""
        data, raw_events = self._call(self._status_script, self._clock(), job_id)
        self._report(self._events(raw_events))
        return json.loads(data) if data else None

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """See :meth:`JobStore.cancel`: one script ends the job and starts the next queued one."""
        data, raw_events = self._call(self._cancel_script, self._clock(), job_id)
        self._report(self._events(raw_events))
        return json.loads(data) if data else None

    def reset(self) -> int:
        """See :meth:`JobStore.reset`; this process's held long-polls reread their jobs at once
        (another worker's answer when their wait ends)."""
        forgotten = int(self._guard(self._reset_script, keys=[], args=[self._prefix]))
        self._wake_all()
        return forgotten

    def list_jobs(
        self,
        *,
        limit: int,
        before: str | None = None,
        result: str | None = None,
        phase: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """See :meth:`JobStore.list_jobs`: one script walks ``vt:created`` from ``before``."""
        raw_docs, position, raw_events = self._call(
            self._list_script, self._clock(), before or "", max(int(limit), 1), result or "",
            phase or "", LIST_SCAN_BUDGET)
        self._report(self._events(raw_events))
        return [json.loads(data) for data in raw_docs], position or None

    def delete(self, job_id: str) -> tuple[str, dict[str, Any] | None]:
        """See :meth:`JobStore.delete`: one script reads the job and forgets it if final."""
        outcome, data, raw_events = self._call(self._delete_script, self._clock(), job_id)
        self._report(self._events(raw_events))
        return outcome, json.loads(data) if data else None

    def shared_secret(self) -> bytes:
        """See :meth:`JobStore.shared_secret`: made by the first process (``SET NX``) and read by
        every other, so all workers and hosts sign and check alike; it lives as long as Redis's
        data (``vt:secret``, no expiry)."""
        if self._shared_secret is None:
            key = f"{self._prefix}secret"
            try:
                self._redis.set(key, os.urandom(32).hex(), nx=True)
                value = self._redis.get(key)
            except _UNAVAILABLE as exc:
                raise StoreUnavailableError(f"{self._where} unavailable: {exc}") from exc
            self._shared_secret = bytes.fromhex(str(value))
        return self._shared_secret

    def event_snapshot(self, job_ids: Sequence[str]) -> tuple[list[dict[str, Any] | None], int]:
        """See :meth:`JobStore.event_snapshot`: one script reads the jobs and the last id."""
        raw_docs, last, raw_events = self._call(self._snapshot_script, self._clock(), *job_ids)
        self._report(self._events(raw_events))
        return [json.loads(data) if data else None for data in raw_docs], int(last)

    def events_after(self, event_id: int, limit: int) -> list[LoggedEvent]:
        """See :meth:`JobStore.events_after`; the log is the stream ``vt:events``."""
        reply = self._call(self._events_after_script, self._clock(), str(int(event_id)),
                           max(int(limit), 1))  # fmt: skip
        if reply[0] == "expired":
            raise EventIdExpiredError(event_id, int(reply[1]), int(reply[2]))
        found = []
        for entry_id, values in reply[1]:
            entry = dict(zip(values[::2], values[1::2], strict=True))
            found.append(LoggedEvent(int(entry_id.partition("-")[2]), entry["job"],
                                     entry["kind"], entry["data"]))
        return found

    def wait_events(self, event_id: int, limit: int, timeout: float) -> list[LoggedEvent]:
        """See :meth:`JobStore.wait_events`; a change logged by any process wakes the wait."""
        deadline = time.monotonic() + timeout
        while True:
            if self._stopping.is_set():
                raise StoreClosedError("the store is shutting down")
            with self._log_changes:
                generation = self._log_generation
            found = self.events_after(event_id, limit)
            left = deadline - time.monotonic()
            if found or left <= 0:
                return found
            with self._log_changes:
                # A change logged since the read above bumped the generation: read again.
                if generation == self._log_generation and not self._stopping.is_set():
                    self._log_changes.wait(left)

    def wait(self, job_id: str, timeout: float) -> tuple[dict[str, Any] | None, bool]:
        """See :meth:`JobStore.wait`; a finish by any process wakes this one's waiters at once."""
        if timeout <= 0 or self._stopping.is_set():
            return self.status(job_id), False
        waiter = _Waiter()
        with self._lock:
            full = self._waiters >= self.settings.max_waiters
            if not full:
                self._waiters += 1
                self._waiting.setdefault(job_id, set()).add(waiter)
        if full:
            logger.debug("%d waiters already; answering at once", self.settings.max_waiters)
            return self.status(job_id), False
        holding = False
        try:
            # Registered before the first read, so a finish between the two still wakes us.
            doc = self.status(job_id)
            if doc is None or JobResult(doc["result"]) in FINAL_RESULTS:
                return doc, False
            with self._lock:
                self._held += 1
                holding = True
            deadline = time.monotonic() + timeout
            while not self._stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not waiter.event.wait(remaining):
                    break
                if waiter.doc is not None:  # the finisher sent the final document
                    return dict(waiter.doc), True  # a copy: callers may edit theirs
                waiter.event.clear()  # woken by a reconnect (news may be lost) or a shutdown
                doc = self.status(job_id)
                if doc is None or JobResult(doc["result"]) in FINAL_RESULTS:
                    return doc, True
            return self.status(job_id), True
        finally:
            with self._lock:
                self._waiters -= 1
                self._held -= holding
                waiting = self._waiting.get(job_id)
                if waiting is not None:
                    waiting.discard(waiter)
                    if not waiting:
                        del self._waiting[job_id]

    def process_due(self) -> int:
        """Finishes the jobs that are due and forgets the expired ones; returns how many changed."""
        changed = 0
        while True:
            count, more, _ = self._advance()
            changed += count
            if not more:
                return changed

    @property
    def waiters(self) -> int:
        """How many requests this process holds by long-poll right now."""
        with self._lock:
            return self._held

    def __len__(self) -> int:
        return int(self._guard(self._len_script, keys=[], args=[self._prefix]))

    def start_worker(self) -> None:
        """Starts the timer thread; every process may run one, each job still finishes once."""
        with self._lock:
            if self._timer is not None or self._stopping.is_set():
                return
            self._timer = threading.Thread(target=self._run, name="job-timer", daemon=True)
        self._timer.start()

    def shutdown(self) -> None:
        """Stops the timer and the listener (joins both) and releases every held request."""
        self._stopping.set()
        self._wake_timer.set()
        self._wake_all()
        try:
            self._redis.publish(self._control, "stop")  # ends the listener's read at once
        except redis.RedisError:
            pass  # the listener is then between reconnection attempts, and sees the stop flag
        for thread in (self._timer, self._listener):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=SOCKET_TIMEOUT + RECONNECT_PAUSE + 1)
        self._pool.disconnect()

    # internals

    def _call(self, script: Any, now: float, *args: Any) -> Any:
        settings = self.settings
        return self._guard(script, keys=[], args=[
            self._prefix, repr(now), repr(settings.job_ttl), repr(LATE_FINISH),
            int(BACKSTOP * 1000), self._me, settings.event_retention, self._first_event_id,
            settings.concurrency, *args])  # fmt: skip

    def _guard(self, script: Any, **kwargs: Any) -> Any:
        try:
            return script(**kwargs)
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError(f"{self._where} unavailable: {exc}") from exc
        except redis.ResponseError as exc:
            if "LOADING" in str(exc) or "BUSY" in str(exc):  # Redis restarting, reading its AOF
                raise StoreUnavailableError(f"{self._where} not ready: {exc}") from exc
            raise

    def _advance(self) -> tuple[int, bool, float]:
        """One timer batch; returns (changes, whether more is due now, next deadline)."""
        now = self._clock()
        raw_events, more, first_due, first_expiry, first_deadline = self._call(
            self._advance_script, now, BATCH)
        events = self._events(raw_events)
        self._report(events)
        deadlines = [float(s) for s in (first_due, first_expiry, first_deadline) if s]
        return len(events), bool(more), min(deadlines, default=math.inf)

    def _run(self) -> None:
        failing = False
        while not self._stopping.is_set():
            self._wake_timer.clear()
            try:
                _, more, deadline = self._advance()
            except StoreUnavailableError as exc:
                if not failing:
                    logger.warning("timer: %s; retrying every %.1f s", exc, RECONNECT_PAUSE)
                failing = True
                self._stopping.wait(RECONNECT_PAUSE)
                continue
            except Exception:  # a bug must not stop the timer for good
                logger.exception("timer batch failed")
                self._stopping.wait(RECONNECT_PAUSE)
                continue
            if failing:
                logger.info("timer: %s reachable again", self._where)
                failing = False
            if more:
                continue
            self._next_wake = deadline
            pause = min(max(deadline - self._clock(), 0.0), TIMER_MAX_SLEEP)
            self._wake_timer.wait(pause)
            self._next_wake = math.inf

    def _subscribe(self) -> redis.client.PubSub:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(f"{self._prefix}final", f"{self._prefix}logged", self._control)
        return pubsub

    def _listen(self) -> None:
        """Wakes this process's waiters on each job that became final; reconnects by itself."""
        pubsub: redis.client.PubSub | None = self._pubsub
        final, logged = f"{self._prefix}final", f"{self._prefix}logged"
        while not self._stopping.is_set():
            try:
                if pubsub is None:
                    pubsub = self._subscribe()
                    if self._lost:
                        logger.info("%s reachable again", self._where)
                        self._lost = False
                    self._wake_all()  # news sent while we were away is lost: recheck
                message = pubsub.get_message(timeout=TIMER_MAX_SLEEP)
                if message is not None and message["channel"] == logged:
                    self._logged()
                elif message is not None and message["channel"] == final:
                    job_id, finisher, data = message["data"].split(" ", 2)
                    # Own finishes wake our waiters once logged (_report); parse only what
                    # this process waits for.
                    if finisher != self._me and job_id in self._waiting:
                        self._wake(job_id, json.loads(data))
            except (redis.RedisError, OSError) as exc:
                if not self._lost:
                    logger.warning("%s lost (%s); reconnecting", self._where, exc)
                    self._lost = True
                self._wake_all()  # held long-polls recheck, and answer 503 while Redis is away
                if pubsub is not None:
                    self._close(pubsub)
                    pubsub = None
                self._stopping.wait(RECONNECT_PAUSE)
        if pubsub is not None:
            self._close(pubsub)

    @staticmethod
    def _close(pubsub: redis.client.PubSub) -> None:
        try:
            pubsub.close()
        except (redis.RedisError, OSError):
            pass

    def _wake(self, job_id: str, doc: dict[str, Any]) -> None:
        """Hands the final document to this process's waiters on the job."""
        with self._lock:
            waiters = list(self._waiting.get(job_id, ()))
        for waiter in waiters:
            waiter.doc = doc
            waiter.event.set()

    def _logged(self) -> None:
        """Wakes this process's event readers: some process logged a change."""
        with self._log_changes:
            self._log_generation += 1
            self._log_changes.notify_all()

    def _wake_all(self) -> None:
        """Wakes every waiter without a document (each rereads its job), and every event reader."""
        self._logged()
        with self._lock:
            waiters = [waiter for waiting in self._waiting.values() for waiter in waiting]
        for waiter in waiters:
            waiter.event.set()

    @staticmethod
    def _events(raw: Sequence[Any]) -> list[JobEvent]:
        """The changes a script reports, each ``[kind, document as JSON]``, as JobEvents."""
        events = []
        for kind, data in raw:
            doc = json.loads(data)
            detail = f"error: {JOB_ERROR_MESSAGE}" if kind == JobResult.ERROR.value else ""
            events.append(JobEvent(doc["job_id"], kind, doc, detail))
        return events

    def _report(self, events: list[JobEvent]) -> None:
        """Tells the listeners, then wakes this process's waiters on jobs that became final (they
        need not wait for the pub/sub echo), so a woken caller finds the change logged."""
        self._publish(events)
        if any(event.kind not in UNLOGGED_KINDS for event in events):
            self._logged()  # this process's readers need not wait for the pub/sub echo
        for event in events:
            if event.kind in FINAL_EVENT_KINDS:
                self._wake(event.job_id, event.doc)
