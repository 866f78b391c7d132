"""The job store on Redis: every worker and every host of one service sees the same jobs.

Usage::

    JOB_STORE=redis://127.0.0.1:6379/0 python server.py --workers 2
    store = RedisJobStore(Settings(job_store="redis://127.0.0.1:6379/0"))
    doc, created = store.start(delay=5)

It behaves like :class:`job_store.MemoryJobStore` behind the API (the same test suites run on
both: routes, long-poll, TTL, limits, the queue, cancel, the event log). Every time is Unix seconds
from ``wall_clock``, the clock that all processes and hosts share; all durations are in seconds.

Key layout (prefix ``vt:``, configurable; ``<id>`` is a job id):

===================  ==========  ==================================================================
key                  type        holds
===================  ==========  ==================================================================
``vt:job:<id>``      hash        ``job_id created_at duration outcome eta_factor result phase``,
                                 once running ``started due``, once final ``finished_at``; and
                                 ``key default cb_id cb_url`` when set. Times are kept as the
                                 text Python's ``repr`` wrote. Expires ``BACKSTOP`` s after it
                                 should be forgotten (Redis forgets it even when no server runs)
``vt:due``           sorted set  running job ids scored by due time: the timers' work list
``vt:queue``         list        queued job ids, FIFO (``CONCURRENCY``; empty when 0)
``vt:expiry``        sorted set  final job ids scored by the time they are forgotten
                                 (``finished_at + JOB_TTL``); the default job is never in it
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
job while it is pending): no counter to drift. Every change is one Lua script, so it is atomic
with respect to every other client: a start (forget what expired, replay an idempotency key or
the default job, check ``MAX_JOBS``, create, queue or run), a read (finish the job if due, forget
it if expired), a cancel (end the job, start the next queued one), and the timer's batch (finish
due jobs in due order, each freeing its slot for the head of the queue at its due time; forget
expired ones). A job is finished only by the script call that finds it ``pending`` in ``vt:due``
and removes it, so with any number of workers running the timer each job changes once, and one
process reports the change to its listeners (so a webhook is sent once). Each change is appended
to ``vt:events`` inside the same script, so event ids follow the order of the changes across
every process, and a snapshot (``event_snapshot``) reads documents and the last id in one script.
The scripts write the status documents themselves, as JSON byte for byte like the memory store's.
A job finished more than ``LATE_FINISH`` seconds after its due time (no server ran then, e.g.
across a restart) gets its due time as ``finished_at``, not the moment it was noticed.

Each process holds one pub/sub connection (a thread, or a greenlet under gevent) subscribed to
``vt:final`` and ``vt:logged``; it wakes this process's long-polls on a job that became final and
its event readers, whichever worker or host made the change. Waiters hold no connection while they
wait. When Redis is lost, calls raise :class:`job_store.StoreUnavailableError` (the API answers
503) within the socket timeouts, held long-polls are woken and answered the same way, event streams
end (clients resume with ``Last-Event-ID``), and every connection reconnects by itself.

One difference from the memory store: a queued job's ``eta_seconds`` is computed from the running
jobs' estimates at each read, where the memory store keeps the estimate it made when the queue last
changed; with ``ETA_NOISE=0`` both give the same numbers.
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

from vtwait.server.stores.base import (
    FINAL_RESULTS,
    JOB_CANCELED_MESSAGE,
    JOB_ERROR_MESSAGE,
    UNLOGGED_KINDS,
    EventIdExpiredError,
    JobEvent,
    JobPhase,
    JobResult,
    JobStore,
    LoggedEvent,
    StoreClosedError,
    StoreFullError,
    StoreUnavailableError,
)
from vtwait.server.settings import Settings, mask_url

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

# Shared by every script. ARGV: prefix, now (Unix s, as Python's repr), JOB_TTL, LATE_FINISH,
# BACKSTOP ms, the calling store's id, EVENT_RETENTION, the first event id (used once, on an empty
# database), CONCURRENCY. Script arguments start at ARGV[10]. Documents are written here, as
# JSON byte for byte as Python's json.dumps(doc, separators=(",", ":")) writes the memory store's.
_LUA_PRELUDE = """
local P = ARGV[1]
local NOW_S = ARGV[2]
local NOW = tonumber(NOW_S)
local TTL = tonumber(ARGV[3])
local LATE = tonumber(ARGV[4])
local MARGIN = tonumber(ARGV[5])
local ME = ARGV[6]
local RETENTION = tonumber(ARGV[7])
local CONCURRENCY = tonumber(ARGV[9])
local DUE = P .. 'due'
local QUEUE = P .. 'queue'
local EXPIRY = P .. 'expiry'
local EVENTS = P .. 'events'
local LAST = P .. 'event_id'
local FIELDS = {'job_id', 'created_at', 'started', 'due', 'outcome', 'eta_factor', 'key',
                'result', 'finished_at', 'default', 'duration', 'phase', 'cb_id', 'cb_url'}
local ERROR_JSON = [[@ERROR@]]
local CANCELED_JSON = [[@CANCELED@]]
local logged = false

local function job_key(id) return P .. 'job:' .. id end

local function read(id)
  local f = redis.call('HMGET', job_key(id), unpack(FIELDS))
  if not f[1] then return false end
  return f
end

-- A float as Python's repr writes it: the shortest text that reads back as the same number.
local function pyfloat(x)
  local s
  for digits = 15, 17 do
    s = string.format('%.' .. digits .. 'g', x)
    if tonumber(s) == x then break end
  end
  if not string.find(s, '[.en]') then s = s .. '.0' end
  return s
end

-- round(x, 3) as Python writes it.
local function round3(x)
  local s = (string.gsub(string.format('%.3f', x), '0+$', ''))
  if string.sub(s, -1) == '.' then s = s .. '0' end
  return s
end

-- A queued job's 1-based place and estimated start: the running jobs' estimated ends (a free
-- slot is now), then each job ahead takes the slot that frees first for its expected duration.
local function queue_estimate(id)
  local position = redis.call('LPOS', QUEUE, id)
  local slots = {}
  for _, running in ipairs(redis.call('ZRANGE', DUE, 0, -1)) do
    local r = redis.call('HMGET', job_key(running), 'due', 'eta_factor')
    slots[#slots + 1] = NOW + math.max(tonumber(r[2]) * (tonumber(r[1]) - NOW), 0)
  end
  while #slots < CONCURRENCY do slots[#slots + 1] = NOW end
  local start = NOW
  for _, queued in ipairs(redis.call('LRANGE', QUEUE, 0, position)) do
    local first = 1
    for k = 2, #slots do if slots[k] < slots[first] then first = k end end
    start = slots[first]
    local q = redis.call('HMGET', job_key(queued), 'eta_factor', 'duration')
    slots[first] = start + tonumber(q[1]) * tonumber(q[2])
  end
  return position + 1, start
end

-- The status document of a job (its hash fields f) at NOW.
local function doc_json(f)
  local phase = f[12]
  local t = {'{"job_id":"', f[1], '","result":"', f[8], '","phase":"', phase, '"'}
  if phase == 'queued' then
    local position, start = queue_estimate(f[1])
    local eta = math.max(start - NOW, 0) + tonumber(f[6]) * tonumber(f[11])
    t[#t + 1] = ',"progress":0.0,"created_at":' .. f[2] .. ',"queue_position":' .. position ..
      ',"eta_seconds":' .. round3(eta)
  elseif phase == 'running' then
    local duration = tonumber(f[11])
    local progress = '0.0'
    if duration > 0 then
      progress = round3(math.max(NOW - tonumber(f[3]), 0) / duration)
      if tonumber(progress) > 0.999 then progress = '0.999' end
    end
    t[#t + 1] = ',"progress":' .. progress .. ',"created_at":' .. f[2] .. ',"started_at":' ..
      f[3] .. ',"eta_seconds":' .. round3(tonumber(f[6]) * (tonumber(f[4]) - NOW))
  else
    t[#t + 1] = ',"progress":1.0,"created_at":' .. f[2]
    if f[3] then t[#t + 1] = ',"started_at":' .. f[3] end
    t[#t + 1] = ',"finished_at":' .. f[9]
    if phase == 'canceled' then t[#t + 1] = ',"error":' .. CANCELED_JSON
    elseif f[8] == 'error' then t[#t + 1] = ',"error":' .. ERROR_JSON end
  end
  if f[13] then t[#t + 1] = ',"callback_id":' .. f[13] end
  if f[14] then t[#t + 1] = ',"callback_url":' .. f[14] end
  t[#t + 1] = '}'
  return table.concat(t)
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

-- Moves queued jobs into free slots, as if they started at AT_S (when a slot freed); each gets
-- a "running" event, but SILENT (a job just started: its "started" event says it).
local function promote(at_s, events, silent)
  local at = tonumber(at_s)
  while redis.call('LLEN', QUEUE) > 0 and
        (CONCURRENCY == 0 or redis.call('ZCARD', DUE) < CONCURRENCY) do
    local id = redis.call('LPOP', QUEUE)
    local k = job_key(id)
    local j = redis.call('HMGET', k, 'duration', 'default', 'key')
    local due = at + tonumber(j[1])
    local due_s = pyfloat(due)
    redis.call('HSET', k, 'phase', 'running', 'started', at_s, 'due', due_s)
    redis.call('ZADD', DUE, due_s, id)
    if j[2] ~= '1' then keep(id, j[3], due - NOW + TTL) end
    if id ~= silent then
      local data = doc_json(read(id))
      log_event(id, 'running', data)
      events[#events + 1] = {'running', data}
    end
  end
end

-- Ends a pending job: RESULT and PHASE, finished at FIN_S; logged, published, its slot freed.
local function conclude(id, result, phase, fin_s, events)
  local k = job_key(id)
  local j = redis.call('HMGET', k, 'default', 'key')
  redis.call('HSET', k, 'result', result, 'phase', phase, 'finished_at', fin_s)
  if j[1] ~= '1' then
    local forget_at = tonumber(fin_s) + TTL
    redis.call('ZADD', EXPIRY, string.format('%.6f', forget_at), id)
    keep(id, j[2], forget_at - NOW)
  end
  local data = doc_json(read(id))
  log_event(id, phase, data)
  redis.call('PUBLISH', P .. 'final', id .. ' ' .. ME .. ' ' .. data)
  events[#events + 1] = {phase, data}
end

-- Finishes one running job if it is due: the only place a job completes or fails. The next
-- queued job starts when this one's slot freed (its due time), not when it was noticed.
local function finish(id, events)
  local j = redis.call('HMGET', job_key(id), 'result', 'due', 'outcome')
  if j[1] ~= 'pending' then redis.call('ZREM', DUE, id) return end
  if not j[2] or tonumber(j[2]) > NOW then return end
  local fin = NOW_S
  if NOW - tonumber(j[2]) > LATE then fin = j[2] end
  redis.call('ZREM', DUE, id)
  conclude(id, j[3], j[3], fin, events)
  if CONCURRENCY > 0 then promote(j[2], events, false) end
end

-- Finishes due jobs in due order (a promoted job may be due already), at most LIMIT.
local function finish_due(limit, events)
  local count = 0
  while count < limit do
    local first = redis.call('ZRANGE', DUE, 0, 0, 'WITHSCORES')
    if not first[1] or tonumber(first[2]) > NOW then return false end
    finish(first[1], events)
    count = count + 1
  end
  return true
end

-- Forgets one finished job and its idempotency key (not logged: no document changes).
local function evict(id, events)
  local f = read(id)
  redis.call('ZREM', EXPIRY, id)
  if not f then return end
  local data = doc_json(f)
  redis.call('DEL', job_key(id))
  if f[7] and redis.call('GET', P .. 'idem:' .. f[7]) == id then
    redis.call('DEL', P .. 'idem:' .. f[7])
  end
  events[#events + 1] = {'evicted', data}
end

-- Reads one job as a reader should see it: finished if due (a queued one after the jobs ahead
-- that are due), forgotten if expired.
local function current(id, events)
  local f = read(id)
  if not f then return false end
  if f[12] == 'queued' then
    finish_due(100, events)
    f = read(id)
  elseif f[8] == 'pending' then
    finish(id, events)
    f = read(id)
  else
    local at = redis.call('ZSCORE', EXPIRY, id)
    if at and tonumber(at) <= NOW then
      evict(id, events)
      return false
    end
  end
  return f
end

local function first_score(key)
  return redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2] or false
end

local function first_event_id()
  if redis.call('EXISTS', LAST) == 0 then redis.call('SET', LAST, ARGV[8]) end
end
""".replace("@ERROR@", json.dumps(JOB_ERROR_MESSAGE)).replace(
    "@CANCELED@", json.dumps(JOB_CANCELED_MESSAGE))

# ARGV 10..: id, created_at, duration, outcome, eta_factor, idempotency key ('' for none),
# default ('1' or '0'), MAX_JOBS, callback_id and callback_url as JSON ('' for none).
# Returns {tag, document, events, document at creation}.
_LUA_START = _LUA_PRELUDE + """
local events = {}
for _, old in ipairs(redis.call('ZRANGEBYSCORE', EXPIRY, '-inf', NOW_S)) do evict(old, events) end
local id, key, default = ARGV[10], ARGV[15], ARGV[16]
local found = false
if default == '1' then found = redis.call('GET', P .. 'default')
elseif key ~= '' then found = redis.call('GET', P .. 'idem:' .. key) end
if found and redis.call('EXISTS', job_key(found)) == 1 then
  local f = current(found, events)
  return done({'replay', doc_json(f), events})
end
local def = redis.call('GET', P .. 'default')
if default ~= '1' then
  local live = redis.call('ZCARD', DUE) + redis.call('LLEN', QUEUE) + redis.call('ZCARD', EXPIRY)
  if def and redis.call('HGET', job_key(def), 'result') == 'pending' then live = live - 1 end
  if live >= tonumber(ARGV[17]) then
    local first_due = false
    local pairs_ = redis.call('ZRANGE', DUE, 0, 1, 'WITHSCORES')
    for i = 1, #pairs_, 2 do
      if pairs_[i] ~= def then first_due = pairs_[i + 1] break end
    end
    return done({'full', {first_score(EXPIRY), first_due}, events})
  end
end
local fields = {'job_id', id, 'created_at', ARGV[11], 'duration', ARGV[12], 'outcome', ARGV[13],
                'eta_factor', ARGV[14], 'result', 'pending', 'phase', 'queued'}
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
if ARGV[18] ~= '' then
  fields[#fields + 1] = 'cb_id'
  fields[#fields + 1] = ARGV[18]
end
if ARGV[19] ~= '' then
  fields[#fields + 1] = 'cb_url'
  fields[#fields + 1] = ARGV[19]
end
redis.call('HSET', job_key(id), unpack(fields))
redis.call('RPUSH', QUEUE, id)
promote(NOW_S, events, id)
local created = doc_json(read(id))
log_event(id, 'started', created)
finish(id, events)
return done({'created', doc_json(read(id)), events, created})
"""

# ARGV 10: job id. Returns {document or false, events}.
_LUA_STATUS = _LUA_PRELUDE + """
local events = {}
local f = current(ARGV[10], events)
if f then f = doc_json(f) end
return done({f, events})
"""

# ARGV 10: job id. Returns {document or false, events}.
_LUA_CANCEL = _LUA_PRELUDE + """
local id = ARGV[10]
local events = {}
local f = current(id, events)
if not f then return done({false, events}) end
if f[8] == 'pending' then
  if f[12] == 'queued' then
    redis.call('LREM', QUEUE, 0, id)
  else
    redis.call('ZREM', DUE, id)
  end
  conclude(id, 'error', 'canceled', NOW_S, events)
  promote(NOW_S, events, false)
end
return done({doc_json(read(id)), events})
"""

# ARGV 10: batch size. Returns {events, more (1 when a batch was full), first due, first expiry}.
_LUA_ADVANCE = _LUA_PRELUDE + """
local limit = tonumber(ARGV[10])
local events = {}
local more = finish_due(limit, events)
local old = redis.call('ZRANGEBYSCORE', EXPIRY, '-inf', NOW_S, 'LIMIT', 0, limit)
for _, id in ipairs(old) do evict(id, events) end
if more or #old == limit then more = 1 else more = 0 end
return done({events, more, first_score(DUE), first_score(EXPIRY)})
"""

# ARGV 10..: job ids. Returns {document or false per id, the last event id, events}: one atomic
# step, so every change after that id is one the documents do not show yet.
_LUA_SNAPSHOT = _LUA_PRELUDE + """
local events = {}
local docs = {}
for i = 10, #ARGV do
  local f = current(ARGV[i], events)
  if f then f = doc_json(f) end
  docs[#docs + 1] = f
end
first_event_id()
return done({docs, redis.call('GET', LAST), events})
"""

# ARGV 10: event id, 11: limit. Returns {'ok', entries} or {'expired', oldest, last}.
_LUA_EVENTS_AFTER = _LUA_PRELUDE + """
first_event_id()
trim_old()
local last = tonumber(redis.call('GET', LAST))
local after = tonumber(ARGV[10])
local head = redis.call('XRANGE', EVENTS, '-', '+', 'COUNT', 1)[1]
local oldest = last + 1
if head then oldest = tonumber(string.sub(head[1], 3)) end
if after < oldest - 1 or after > last then
  return {'expired', string.format('%d', oldest), string.format('%d', last)}
end
return {'ok', redis.call('XRANGE', EVENTS, '(0-' .. string.format('%d', after), '+',
                        'COUNT', tonumber(ARGV[11]))}
"""

# Returns the number of live jobs, the default one included.
_LUA_LEN = """
local P = ARGV[1]
local n = redis.call('ZCARD', P .. 'due') + redis.call('LLEN', P .. 'queue') +
          redis.call('ZCARD', P .. 'expiry')
local def = redis.call('GET', P .. 'default')
local result = def and redis.call('HGET', P .. 'job:' .. def, 'result')
if result and result ~= 'pending' then n = n + 1 end
return n
"""

_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError)
#: Kinds of change after which a job is final (its waiters are answered).
_FINAL_KINDS = frozenset({JobPhase.COMPLETED.value, JobPhase.ERROR.value, JobPhase.CANCELED.value})


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
        self._start_script = self._redis.register_script(_LUA_START)
        self._status_script = self._redis.register_script(_LUA_STATUS)
        self._advance_script = self._redis.register_script(_LUA_ADVANCE)
        self._snapshot_script = self._redis.register_script(_LUA_SNAPSHOT)
        self._cancel_script = self._redis.register_script(_LUA_CANCEL)
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
        callback_url: str | None = None,
        callback_id: str | None = None,
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
            if now + duration < self._next_wake:  # this process's timer sleeps until later
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
        raw_events, more, first_due, first_expiry = self._call(self._advance_script, now, BATCH)
        events = self._events(raw_events)
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
            if event.kind in _FINAL_KINDS:
                self._wake(event.job_id, event.doc)
