"""The Lua scripts of the Redis job store (``redis_store.py``): every change is one script.

Each script runs atomically in Redis; the key layout they share, and which step each one makes,
is described once, in ``redis_store.py``'s docstring. Every script begins with :data:`PRELUDE`
(the shared arguments and helpers); :data:`LEN` alone needs none of it. All durations are in
seconds.
"""

import json

from vtwait.server.stores.base import (
    JOB_CANCELED_MESSAGE,
    JOB_DEADLINE_MESSAGE,
    JOB_ERROR_MESSAGE,
    LISTING_ID_OFFSET,
)

__all__ = ["ADVANCE", "CANCEL", "DELETE", "EVENTS_AFTER", "LEN", "LIST", "PRELUDE", "SNAPSHOT",
           "START", "STATUS"]

# Shared by every script. ARGV: prefix, now (Unix s, as Python's repr), JOB_TTL, LATE_FINISH,
# BACKSTOP ms, the calling store's id, EVENT_RETENTION, the first event id (used once, on an empty
# database), CONCURRENCY. Script arguments start at ARGV[10]. Documents are written here, as
# JSON byte for byte as Python's json.dumps(doc, separators=(",", ":")) writes the memory store's.
PRELUDE = """
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
local DEADLINES = P .. 'deadlines'
local CREATED = P .. 'created'
local FIELDS = {'job_id', 'created_at', 'started', 'due', 'outcome', 'eta_factor', 'key',
                'result', 'finished_at', 'default', 'duration', 'phase', 'cb_id', 'cb_url',
                'reason', 'deadline', 'order'}
local ERROR_JSON = [[@ERROR@]]
local CANCELED_JSON = [[@CANCELED@]]
local DEADLINE_JSON = [[@DEADLINE@]]
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
    if phase == 'canceled' then
      if f[15] == 'deadline' then t[#t + 1] = ',"error":' .. DEADLINE_JSON
      else t[#t + 1] = ',"error":' .. CANCELED_JSON end
      t[#t + 1] = ',"cancel_reason":"' .. (f[15] or 'request') .. '"'
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
  redis.call('ZREM', DEADLINES, id)
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
  redis.call('ZREM', DEADLINES, id)
  if f[17] then redis.call('ZREM', CREATED, f[17]) end
  if f[7] and redis.call('GET', P .. 'idem:' .. f[7]) == id then
    redis.call('DEL', P .. 'idem:' .. f[7])
  end
  events[#events + 1] = {'evicted', data}
end

-- Cancels the jobs whose deadline (Cancel-After) has passed, at most LIMIT; a running job due no
-- later than its deadline is left to complete. Returns whether the batch was full.
local function expire_deadlines(limit, events)
  local ids = redis.call('ZRANGEBYSCORE', DEADLINES, '-inf', NOW_S, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    redis.call('ZREM', DEADLINES, id)
    local j = redis.call('HMGET', job_key(id), 'result', 'phase', 'due', 'deadline')
    if j[1] == 'pending' and (j[2] == 'queued' or tonumber(j[3]) > tonumber(j[4])) then
      if j[2] == 'queued' then
        redis.call('LREM', QUEUE, 0, id)
      else
        redis.call('ZREM', DUE, id)
      end
      redis.call('HSET', job_key(id), 'reason', 'deadline')
      conclude(id, 'error', 'canceled', NOW_S, events)
      promote(NOW_S, events, false)
    end
  end
  return #ids == limit
end

-- Reads one job as a reader should see it: cancelled if past its deadline, finished if due (a
-- queued one after the jobs ahead that are due), forgotten if expired.
local function current(id, events)
  local f = read(id)
  if not f then return false end
  if f[8] == 'pending' and f[16] and tonumber(f[16]) <= NOW then
    expire_deadlines(100, events)
    f = read(id)
  end
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
    "@CANCELED@", json.dumps(JOB_CANCELED_MESSAGE)).replace(
    "@DEADLINE@", json.dumps(JOB_DEADLINE_MESSAGE))

# ARGV 10..: id, created_at, duration, outcome, eta_factor, idempotency key ('' for none),
# default ('1' or '0'), MAX_JOBS, callback_id and callback_url as JSON ('' for none), the deadline
# (Unix s; '' for none), the listing position.
# Returns {tag, document, events, document at creation}.
START = PRELUDE + """
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
if ARGV[20] ~= '' then
  fields[#fields + 1] = 'deadline'
  fields[#fields + 1] = ARGV[20]
  redis.call('ZADD', DEADLINES, ARGV[20], id)
end
fields[#fields + 1] = 'order'
fields[#fields + 1] = ARGV[21]
redis.call('ZADD', CREATED, 0, ARGV[21])
redis.call('HSET', job_key(id), unpack(fields))
redis.call('RPUSH', QUEUE, id)
promote(NOW_S, events, id)
local created = doc_json(read(id))
log_event(id, 'started', created)
finish(id, events)
return done({'created', doc_json(read(id)), events, created})
"""

# ARGV 10: job id. Returns {document or false, events}.
STATUS = PRELUDE + """
local events = {}
local f = current(ARGV[10], events)
if f then f = doc_json(f) end
return done({f, events})
"""

# ARGV 10: job id. Returns {document or false, events}.
CANCEL = PRELUDE + """
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
  redis.call('HSET', job_key(id), 'reason', 'request')
  conclude(id, 'error', 'canceled', NOW_S, events)
  promote(NOW_S, events, false)
end
return done({doc_json(read(id)), events})
"""

# ARGV 10: batch size. Returns {events, more (1 when a batch was full), first due, first expiry,
# first deadline}. Deadlines first: a job past its deadline before its due time is cancelled.
ADVANCE = PRELUDE + """
local limit = tonumber(ARGV[10])
local events = {}
local late = expire_deadlines(limit, events)
local more = finish_due(limit, events)
local old = redis.call('ZRANGEBYSCORE', EXPIRY, '-inf', NOW_S, 'LIMIT', 0, limit)
for _, id in ipairs(old) do evict(id, events) end
if more or late or #old == limit then more = 1 else more = 0 end
return done({events, more, first_score(DUE), first_score(EXPIRY), first_score(DEADLINES)})
"""

# ARGV 10: the listing position to continue after ('' from the newest), 11: limit, 12: result
# ('' any), 13: phase ('' any), 14: scan budget beyond the limit. Walks vt:created newest first
# (ZREVRANGEBYLEX from the position: O(log n + page)). Returns {documents, the last position
# looked at or false when nothing is left, events}.
LIST = PRELUDE + """
local events, docs = {}, {}
local limit = tonumber(ARGV[11])
local budget = limit + tonumber(ARGV[14])
local from = '+'
if ARGV[10] ~= '' then from = '(' .. ARGV[10] end
local position, more = false, false
while not more do
  local batch = redis.call('ZREVRANGEBYLEX', CREATED, from, '-', 'LIMIT', 0, 100)
  if #batch == 0 then break end
  for _, member in ipairs(batch) do
    if #docs >= limit or budget <= 0 then more = true break end
    budget = budget - 1
    position = member
    local f = current(string.sub(member, @ID_START@), events)
    if not f then redis.call('ZREM', CREATED, member) end  -- its hash expired (the backstop)
    if f and (ARGV[12] == '' or f[8] == ARGV[12]) and (ARGV[13] == '' or f[12] == ARGV[13]) then
      docs[#docs + 1] = doc_json(f)
    end
  end
  from = '(' .. batch[#batch]
end
if not more then position = false end
return done({docs, position, events})
""".replace("@ID_START@", str(LISTING_ID_OFFSET + 1))

# ARGV 10: job id. Returns {'deleted' | 'pending' | 'default' | 'unknown', document or false,
# events}: a final job is forgotten at once, as its expiry would (unlogged).
DELETE = PRELUDE + """
local events = {}
local id = ARGV[10]
local f = current(id, events)
if not f then return done({'unknown', false, events}) end
local data = doc_json(f)
if f[8] == 'pending' then return done({'pending', data, events}) end
if f[10] == '1' then return done({'default', data, events}) end
evict(id, events)
return done({'deleted', data, events})
"""

# ARGV 10..: job ids. Returns {document or false per id, the last event id, events}: one atomic
# step, so every change after that id is one the documents do not show yet.
SNAPSHOT = PRELUDE + """
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
EVENTS_AFTER = PRELUDE + """
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
LEN = """
local P = ARGV[1]
local n = redis.call('ZCARD', P .. 'due') + redis.call('LLEN', P .. 'queue') +
          redis.call('ZCARD', P .. 'expiry')
local def = redis.call('GET', P .. 'default')
local result = def and redis.call('HGET', P .. 'job:' .. def, 'result')
if result and result ~= 'pending' then n = n + 1 end
return n
"""

# Forgets every job but the default one (POST /_admin/reset): the job hashes, their idempotency
# keys, and their places in due, queue, expiry, deadlines and the listing. The event log stays.
# Returns how many went.
# ARGV: prefix.
RESET = """
local P = ARGV[1]
local def = redis.call('GET', P .. 'default')
local ids = redis.call('ZRANGE', P .. 'due', 0, -1)
for _, id in ipairs(redis.call('ZRANGE', P .. 'expiry', 0, -1)) do ids[#ids + 1] = id end
for _, id in ipairs(redis.call('LRANGE', P .. 'queue', 0, -1)) do ids[#ids + 1] = id end
local n = 0
for _, id in ipairs(ids) do
  if id ~= def then
    local f = redis.call('HMGET', P .. 'job:' .. id, 'key', 'order')
    if f[1] and redis.call('GET', P .. 'idem:' .. f[1]) == id then
      redis.call('DEL', P .. 'idem:' .. f[1])
    end
    if f[2] then redis.call('ZREM', P .. 'created', f[2]) end
    n = n + redis.call('DEL', P .. 'job:' .. id)
    redis.call('ZREM', P .. 'deadlines', id)
    redis.call('ZREM', P .. 'due', id)
    redis.call('ZREM', P .. 'expiry', id)
    redis.call('LREM', P .. 'queue', 0, id)
  end
end
return n
"""
