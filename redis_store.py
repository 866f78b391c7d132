"""The job store on Redis: every worker and every host of one service sees the same jobs.

Usage::

    JOB_STORE=redis://127.0.0.1:6379/0 python server.py --workers 2
    store = RedisJobStore(Settings(job_store="redis://127.0.0.1:6379/0"))
    doc, created = store.start(delay=5)

It behaves exactly like :class:`job_store.MemoryJobStore` behind the API (the same test suite runs
on both). Every time is Unix seconds from ``wall_clock``, the clock that all processes and hosts
share; all durations are in seconds.

Key layout (prefix ``vt:``, configurable; ``<id>`` is a job id):

===================  ==========  ==================================================================
key                  type        holds
===================  ==========  ==================================================================
``vt:job:<id>``      hash        ``job_id created_at started due outcome eta_factor key result
                                 finished_at default``; expires ``BACKSTOP`` s after it should be
                                 forgotten (Redis forgets it even when no server runs)
``vt:due``           sorted set  pending job ids scored by due time: the timer's work list
``vt:expiry``        sorted set  finished job ids scored by the time they are forgotten
                                 (``finished_at + JOB_TTL``); the default job is never in it
``vt:idem:<key>``    string      the job id an ``Idempotency-Key`` started; same expiry as the job
``vt:default``       string      the default job's id (``GET /status``); no expiry
``vt:event_id``      string      the last event id given (``INCR``); starts at the first store's
                                 start time in microseconds
``vt:events``        stream      the event log of ``GET /events``: entry ``0-<event id>`` with
                                 ``job kind data t`` (``data``: the status document as JSON);
                                 ``XADD MAXLEN EVENT_RETENTION``, entries older than ``JOB_TTL``
                                 trimmed (``XTRIM MINID``) by the next change or read
``vt:final``         channel     pub/sub: ``<id> <finisher> <fields as JSON>`` of each job that
                                 just became final (a woken long-poll answers from it, no read)
``vt:logged``        channel     pub/sub: the last event id, after each step that logged one
                                 (wakes every process's held event readers)
===================  ==========  ==================================================================

``MAX_JOBS`` accounting is ``ZCARD vt:due + ZCARD vt:expiry`` (minus the default job while it is
pending): no counter to drift. Every change is one Lua script, so it is atomic with respect to every
other client: starting (evict what expired, replay an idempotency key or the default job, check
``MAX_JOBS``, create), reading one job (finish it if due, forget it if expired), and the timer's
batch (finish due jobs, forget expired ones). A job is finished only by the script call that finds
it ``pending`` in ``vt:due`` and removes it, so with any number of workers running the timer, each
job changes once and one process reports the change to its listeners. Each change is appended to
``vt:events`` inside the same script, so event ids follow the order of the changes across every
process, and a snapshot (``event_snapshot``) reads documents and the last id in one script. A job finished more than
``LATE_FINISH`` seconds after its due time (no server ran then, e.g. across a restart) gets its due
time as ``finished_at``, not the moment it was noticed.

Each process holds one pub/sub connection (a thread, or a greenlet under gevent) subscribed to
``vt:final``; it wakes this process's long-polls on that job, whichever worker or host finished it.
Waiters hold no connection while they wait. When Redis is lost, calls raise
:class:`job_store.StoreUnavailableError` (the API answers 503) within the socket timeouts, held
long-polls are woken and answered the same way, and every connection reconnects by itself.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from job_store import (
    FINAL_RESULTS,
    JOB_ERROR_MESSAGE,
    UNLOGGED_KINDS,
    EventIdExpiredError,
    JobEvent,
    JobResult,
    JobStore,
    LoggedEvent,
    StoreClosedError,
    StoreFullError,
    StoreUnavailableError,
)
from server_settings import Settings, mask_url

__all__ = ["DEFAULT_PREFIX", "RedisJobStore", "check_reachable"]

logger = logging.getLogger("server")

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
#: Most Redis connections of one process (the pub/sub one included); a request waits up to
#: SOCKET_TIMEOUT for a free one. Waiters hold none while they wait, so 10,000 held long-polls
#: that all end at once queue here instead of opening 10,000 connections.
MAX_CONNECTIONS = 64
#: Pause between reconnection attempts of the pub/sub listener and the timer.
RECONNECT_PAUSE = 0.5

# Shared by every script. ARGV: prefix, now (Unix s, as text), JOB_TTL, LATE_FINISH, BACKSTOP ms,
# the calling store's id, EVENT_RETENTION, the first event id (used once, on an empty database).
# Script arguments start at ARGV[9].
_LUA_PRELUDE = """
local P = ARGV[1]
local NOW_S = ARGV[2]
local NOW = tonumber(NOW_S)
local TTL = tonumber(ARGV[3])
local LATE = tonumber(ARGV[4])
local MARGIN = tonumber(ARGV[5])
local ME = ARGV[6]
local RETENTION = tonumber(ARGV[7])
local DUE = P .. 'due'
local EXPIRY = P .. 'expiry'
local EVENTS = P .. 'events'
local LAST = P .. 'event_id'
local FIELDS = {'job_id', 'created_at', 'started', 'due', 'outcome', 'eta_factor', 'key',
                'result', 'finished_at', 'default'}
local logged = false

local function job_key(id) return P .. 'job:' .. id end

local function read(id)
  local f = redis.call('HMGET', job_key(id), unpack(FIELDS))
  if not f[1] then return false end
  return f
end

-- The status document of a final job, byte for byte as json.dumps(doc) writes it in Python:
-- the numbers are kept as the text Python wrote (repr of a float).
local function final_json(f)
  local text = '{"job_id":"' .. f[1] .. '","result":"' .. f[8] .. '","progress":1.0,' ..
    '"created_at":' .. f[2] .. ',"finished_at":' .. f[9]
  if f[8] == 'error' then text = text .. ',"error":' .. ERROR_JSON end
  return text .. '}'
end

-- Appends one change to the event log, with the next id of the one counter.
local function log_event(id, kind, data)
  if redis.call('EXISTS', LAST) == 0 then redis.call('SET', LAST, ARGV[8]) end
  local n = redis.call('INCR', LAST)
  redis.call('XADD', EVENTS, 'MAXLEN', RETENTION, '0-' .. string.format('%d', n),
             'job', id, 'kind', kind, 'data', data, 't', NOW_S)
  logged = true
end

-- Drops logged events older than JOB_TTL (XADD's MAXLEN bounds their count).
local function trim_old()
  local cutoff = NOW - TTL
  local head = redis.call('XRANGE', EVENTS, '-', '+', 'COUNT', 1)[1]
  while head and tonumber(head[2][8]) < cutoff do
    local batch = redis.call('XRANGE', EVENTS, head[1], '+', 'COUNT', 100)
    local keep = false
    for _, entry in ipairs(batch) do
      if tonumber(entry[2][8]) >= cutoff then keep = entry[1] break end
    end
    if keep then
      redis.call('XTRIM', EVENTS, 'MINID', keep)
      return
    end
    local next_id = tonumber(string.sub(batch[#batch][1], 3)) + 1
    redis.call('XTRIM', EVENTS, 'MINID', '0-' .. string.format('%d', next_id))
    head = redis.call('XRANGE', EVENTS, '-', '+', 'COUNT', 1)[1]
  end
end

-- Ends a script that may have logged events: trims the log and wakes every process's readers.
local function done(reply)
  if logged then
    trim_old()
    redis.call('PUBLISH', P .. 'logged', redis.call('GET', LAST))
  end
  return reply
end

-- Redis forgets the job's keys MARGIN ms after the store should have (a backstop).
local function keep(id, key, seconds)
  local ms = math.max(math.floor(seconds * 1000 + MARGIN), 1)
  redis.call('PEXPIRE', job_key(id), ms)
  if key then redis.call('PEXPIRE', P .. 'idem:' .. key, ms) end
end

-- Finishes one job if it is pending and due: the only place a job becomes final.
local function finish(id, events)
  local k = job_key(id)
  local j = redis.call('HMGET', k, 'result', 'due', 'outcome', 'default', 'key')
  if j[1] ~= 'pending' then redis.call('ZREM', DUE, id) return end
  local due = tonumber(j[2])
  if due > NOW then return end
  local fin = NOW_S
  if NOW - due > LATE then fin = j[2] end
  redis.call('HSET', k, 'result', j[3], 'finished_at', fin)
  redis.call('ZREM', DUE, id)
  if j[4] ~= '1' then
    local forget_at = tonumber(fin) + TTL
    redis.call('ZADD', EXPIRY, string.format('%.6f', forget_at), id)
    keep(id, j[5], forget_at - NOW)
  end
  local f = read(id)
  log_event(id, j[3], final_json(f))
  redis.call('PUBLISH', P .. 'final', id .. ' ' .. ME .. ' ' .. cjson.encode(f))
  events[#events + 1] = {j[3], f}
end

-- Forgets one finished job and its idempotency key (not logged: no document changes).
local function evict(id, events)
  local f = read(id)
  redis.call('ZREM', EXPIRY, id)
  if not f then return end
  redis.call('DEL', job_key(id))
  if f[7] and redis.call('GET', P .. 'idem:' .. f[7]) == id then
    redis.call('DEL', P .. 'idem:' .. f[7])
  end
  events[#events + 1] = {'evicted', f}
end

-- Reads one job as a reader should see it: finished if due, forgotten if expired.
local function current(id, events)
  local f = read(id)
  if not f then return false end
  if f[8] == 'pending' then
    finish(id, events)
    return read(id)
  end
  local at = redis.call('ZSCORE', EXPIRY, id)
  if at and tonumber(at) <= NOW then
    evict(id, events)
    return false
  end
  return f
end

local function first_score(key)
  return redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2] or false
end
""".replace("ERROR_JSON", repr(json.dumps(JOB_ERROR_MESSAGE)))

# ARGV 9..: id, created_at, due, outcome, eta_factor, idempotency key ('' for none),
# default ('1' or '0'), MAX_JOBS, the "started" document as JSON.
# Returns {tag, fields, events, fields at creation}.
_LUA_START = _LUA_PRELUDE + """
local events = {}
for _, old in ipairs(redis.call('ZRANGEBYSCORE', EXPIRY, '-inf', NOW_S)) do evict(old, events) end
local id, key, default = ARGV[9], ARGV[14], ARGV[15]
local found = false
if default == '1' then found = redis.call('GET', P .. 'default')
elseif key ~= '' then found = redis.call('GET', P .. 'idem:' .. key) end
if found and redis.call('EXISTS', job_key(found)) == 1 then
  finish(found, events)
  return done({'replay', read(found), events})
end
if default ~= '1' then
  local def = redis.call('GET', P .. 'default')
  local live = redis.call('ZCARD', DUE) + redis.call('ZCARD', EXPIRY)
  if def and redis.call('ZSCORE', DUE, def) then live = live - 1 end
  if live >= tonumber(ARGV[16]) then
    local first_due = false
    local pairs_ = redis.call('ZRANGE', DUE, 0, 1, 'WITHSCORES')
    for i = 1, #pairs_, 2 do
      if pairs_[i] ~= def then first_due = pairs_[i + 1] break end
    end
    return done({'full', {first_score(EXPIRY), first_due}, events})
  end
end
local fields = {'job_id', id, 'created_at', ARGV[10], 'started', NOW_S, 'due', ARGV[11],
                'outcome', ARGV[12], 'eta_factor', ARGV[13], 'result', 'pending'}
if key ~= '' then
  fields[#fields + 1] = 'key'
  fields[#fields + 1] = key
  redis.call('SET', P .. 'idem:' .. key, id)
end
if default == '1' then
  fields[#fields + 1] = 'default'
  fields[#fields + 1] = '1'
  redis.call('SET', P .. 'default', id)
end
redis.call('HSET', job_key(id), unpack(fields))
redis.call('ZADD', DUE, ARGV[11], id)
if default ~= '1' then
  if key == '' then key = false end
  keep(id, key, tonumber(ARGV[11]) - NOW + TTL)
end
local created = read(id)
log_event(id, 'started', ARGV[17])
finish(id, events)
return done({'created', read(id), events, created})
"""

# ARGV 9: job id. Returns {fields or false, events}.
_LUA_STATUS = _LUA_PRELUDE + """
local events = {}
local f = current(ARGV[9], events)
return done({f, events})
"""

# ARGV 9: batch size. Returns {events, more (1 when a batch was full), first due, first expiry}.
_LUA_ADVANCE = _LUA_PRELUDE + """
local limit = tonumber(ARGV[9])
local events = {}
local due = redis.call('ZRANGEBYSCORE', DUE, '-inf', NOW_S, 'LIMIT', 0, limit)
for _, id in ipairs(due) do finish(id, events) end
local old = redis.call('ZRANGEBYSCORE', EXPIRY, '-inf', NOW_S, 'LIMIT', 0, limit)
for _, id in ipairs(old) do evict(id, events) end
local more = 0
if #due == limit or #old == limit then more = 1 end
return done({events, more, first_score(DUE), first_score(EXPIRY)})
"""

# ARGV 9..: job ids. Returns {fields or false per id, the last event id, events}: one atomic
# step, so every change after that id is one the documents do not show yet.
_LUA_SNAPSHOT = _LUA_PRELUDE + """
local events = {}
local docs = {}
for i = 9, #ARGV do docs[#docs + 1] = current(ARGV[i], events) end
if redis.call('EXISTS', LAST) == 0 then redis.call('SET', LAST, ARGV[8]) end
return done({docs, redis.call('GET', LAST), events})
"""

# ARGV 9: event id, 10: limit. Returns {'ok', entries} or {'expired', oldest, last}.
_LUA_EVENTS_AFTER = _LUA_PRELUDE + """
if redis.call('EXISTS', LAST) == 0 then redis.call('SET', LAST, ARGV[8]) end
trim_old()
local last = tonumber(redis.call('GET', LAST))
local after = tonumber(ARGV[9])
local head = redis.call('XRANGE', EVENTS, '-', '+', 'COUNT', 1)[1]
local oldest = last + 1
if head then oldest = tonumber(string.sub(head[1], 3)) end
if after < oldest - 1 or after > last then
  return {'expired', string.format('%d', oldest), string.format('%d', last)}
end
return {'ok', redis.call('XRANGE', EVENTS, '(0-' .. string.format('%d', after), '+',
                        'COUNT', tonumber(ARGV[10]))}
"""

# Returns the number of live jobs, the default one included.
_LUA_LEN = """
local P = ARGV[1]
local n = redis.call('ZCARD', P .. 'due') + redis.call('ZCARD', P .. 'expiry')
local def = redis.call('GET', P .. 'default')
if def and redis.call('EXISTS', P .. 'job:' .. def) == 1
   and not redis.call('ZSCORE', P .. 'due', def) then n = n + 1 end
return n
"""

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
        self._waiters = 0
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
            timeout=SOCKET_TIMEOUT,
            decode_responses=True,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        )
        self._redis = redis.Redis(connection_pool=self._pool)
        self._start_script = self._redis.register_script(_LUA_START)
        self._status_script = self._redis.register_script(_LUA_STATUS)
        self._advance_script = self._redis.register_script(_LUA_ADVANCE)
        self._snapshot_script = self._redis.register_script(_LUA_SNAPSHOT)
        self._events_after_script = self._redis.register_script(_LUA_EVENTS_AFTER)
        self._len_script = self._redis.register_script(_LUA_LEN)
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
        now = self._clock()
        due = now + (drawn_delay if delay is None else delay)
        job_id = uuid.uuid4().hex
        fields = [job_id, repr(now), repr(now), repr(due), outcome.value, repr(1.0 + noise),
                  idempotency_key, JobResult.PENDING.value, None, "1" if default else None]
        started_json = json.dumps(self._document(fields, now), separators=(",", ":"))
        reply = self._call(
            self._start_script, now, job_id, fields[1], fields[3], outcome.value, fields[5],
            idempotency_key or "",
            "1" if default else "0", settings.max_jobs, started_json,
        )  # fmt: skip
        tag = reply[0]
        events = self._events(reply[2], now)
        if tag == "full":
            self._report(events)
            first_expiry, first_due = reply[1]
            candidates = [float(first_expiry)] if first_expiry else []
            if first_due:
                candidates.append(float(first_due) + settings.job_ttl)
            raise StoreFullError(max(1, math.ceil(min(candidates, default=now + 1) - now)))
        fields = reply[1]
        if tag == "created":
            fate = f"started (delay {due - now:.3f} s, fated {outcome.value})"
            started = JobEvent(job_id, "started", self._document(reply[3], now), fate)
            events.insert(0, started)
            if due < self._next_wake:  # this process's timer sleeps until a later time
                self._wake_timer.set()
        else:
            with self._lock:  # a replay creates nothing, so it draws nothing
                self._rng.setstate(state)
        if default:
            self.default_job_id = fields[0]
        self._report(events)
        return self._document(fields, now), tag == "created"

    def status(self, job_id: str) -> dict[str, Any] | None:
        """Returns the job's status document, or ``None`` for an unknown (or forgotten) job."""
        now = self._clock()
        fields, raw_events = self._call(self._status_script, now, job_id)
        self._report(self._events(raw_events, now))
        return None if not fields else self._document(fields, now)

    def event_snapshot(self, job_ids: Sequence[str]) -> tuple[list[dict[str, Any] | None], int]:
        """See :meth:`JobStore.event_snapshot`: one script reads the jobs and the last id."""
        now = self._clock()
        raw_docs, last, raw_events = self._call(self._snapshot_script, now, *job_ids)
        self._report(self._events(raw_events, now))
        docs = [None if not fields else self._document(fields, now) for fields in raw_docs]
        return docs, int(last)

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
        try:
            # Registered before the first read, so a finish between the two still wakes us.
            doc = self.status(job_id)
            if doc is None or JobResult(doc["result"]) in FINAL_RESULTS:
                return doc, False
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
            return self._waiters

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
            *args])  # fmt: skip

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
        raw_events, more, first_due, first_expiry = self._call(self._advance_script, now, BATCH)
        events = self._events(raw_events, now)
        self._report(events)
        deadlines = [float(s) for s in (first_due, first_expiry) if s]
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
                    job_id, finisher, fields = message["data"].split(" ", 2)
                    # Own finishes wake our waiters once logged (_report); parse only what
                    # this process waits for.
                    if finisher != self._me and job_id in self._waiting:
                        self._wake(job_id, self._document(json.loads(fields), self._clock()))
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

    def _events(self, raw: Sequence[Any], now: float) -> list[JobEvent]:
        events = []
        for kind, fields in raw:
            detail = f"error: {JOB_ERROR_MESSAGE}" if kind == JobResult.ERROR.value else ""
            events.append(JobEvent(fields[0], kind, self._document(fields, now), detail))
        return events

    def _report(self, events: list[JobEvent]) -> None:
        """Tells the listeners, then wakes this process's waiters on jobs that became final (they
        need not wait for the pub/sub echo), so a woken caller finds the change logged."""
        self._publish(events)
        if any(event.kind not in UNLOGGED_KINDS for event in events):
            self._logged()  # this process's readers need not wait for the pub/sub echo
        for event in events:
            if event.kind in (JobResult.COMPLETED.value, JobResult.ERROR.value):
                self._wake(event.job_id, event.doc)

    @staticmethod
    def _document(fields: Sequence[Any], now: float) -> dict[str, Any]:
        """The status document from a job's hash fields (the order of the scripts' FIELDS)."""
        job_id, created_at, started, due, _, eta_factor, _, result, finished_at, _ = fields
        doc: dict[str, Any] = {"job_id": job_id, "result": result}
        if result == JobResult.PENDING.value:
            started_at, due_at = float(started), float(due)
            duration = due_at - started_at  # 0 only for the "started" event of a 0 s job
            elapsed = max(now - started_at, 0.0)
            doc["progress"] = min(round(elapsed / duration, 3), 0.999) if duration > 0 else 0.0
            doc["created_at"] = float(created_at)
            doc["eta_seconds"] = round(float(eta_factor) * (due_at - now), 3)
        else:
            doc["progress"] = 1.0
            doc["created_at"] = float(created_at)
            doc["finished_at"] = float(finished_at)
            if result == JobResult.ERROR.value:
                doc["error"] = JOB_ERROR_MESSAGE
        return doc
