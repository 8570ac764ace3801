-- Shared prelude, prepended to every queue script by scripts.py.
--
-- Every queue script is called with the queue's keys as KEYS[1..14] (scripts.py, QUEUE_KEYS), all
-- under the queue's hash tag, so the call goes to the right Redis Cluster node:
--   KEYS[1] waiting     ZSET  id -> priority-then-FIFO score
--   KEYS[2] delayed     ZSET  id -> due ms
--   KEYS[3] processing  ZSET  id -> start ms
--   KEYS[4] completed   ZSET  id -> finish ms
--   KEYS[5] failed      ZSET  id -> finish ms
--   KEYS[6] stream      STREAM running jobs, consumer group holds the leases
--   KEYS[7] wake        STREAM doorbell for blocked workers
--   KEYS[8] seq         STRING FIFO counter (and the queue's mark of use, see mark_queue_used)
--   KEYS[9] paused      STRING present while paused
--   KEYS[10] metrics    HASH   counters per task since the queue's first job (count_job)
--   KEYS[11] cancelled  ZSET   id -> finish ms
--   KEYS[12] limited    ZSET   limit id -> ms when its parked jobs may be looked at again (limits)
--   KEYS[13] listed     STRING present once the queue is in the global set of queue names (mark_queue_used)
--   KEYS[14] minutes    HASH   per-minute counts, field '<minute>:<kind>' (count_stat)
-- then the keys of its own: the job records, logs, errors, children sets, limit sets... it reads
-- or writes, and the reply key of once.lua last. ARGV[1] is the queue's key base "P:{Q}:", used
-- only to read the declared keys back (DECLARED below), never to build one. A script's own
-- arguments start at ARGV[2].
--
-- Every key a script touches is declared (the scripting contract). A script that finds out while
-- it runs that it needs keys the caller did not declare (the jobs a sweep finds, the parent of a
-- deleted job, the limit of a cancelled job) notes them with need() while it only reads, and
-- returns needs_reply() before its first write: scripts.py declares them and sends the call again
-- (a bounded number of times). key_of() on an undeclared key stops the script: a bug.
--
-- Rule for every script: validate and read first, write after, so a failure cannot leave a job
-- in two statuses or in none (Redis scripts do not roll back).

local BASE = ARGV[1]
local K = {
  waiting = KEYS[1], delayed = KEYS[2], processing = KEYS[3], completed = KEYS[4], failed = KEYS[5],
  stream = KEYS[6], wake = KEYS[7], seq = KEYS[8], paused = KEYS[9], metrics = KEYS[10],
  cancelled = KEYS[11],
  limited = KEYS[12],
  listed = KEYS[13],
  minutes = KEYS[14],
}
-- How many queue keys come first: a script's own keys follow them (own_key(1) is the first).
local QUEUE_KEY_COUNT = 14
local function own_key(i) return KEYS[QUEUE_KEY_COUNT + i] end
local QUEUE = string.match(BASE, '{(.-)}:$') or BASE

-- The declared keys of the call, read back by kind and id (storage/keys.py: a key is the base, a
-- kind, ':' and the id, which comes last): DECLARED.job['a'] is job a's record, when declared.
local DECLARED = {}
for i = QUEUE_KEY_COUNT + 1, #KEYS do
  local key = KEYS[i]
  if string.sub(key, 1, #BASE) == BASE then
    local kind, id = string.match(string.sub(key, #BASE + 1), '^([%a_]+):(.*)$')
    if kind then
      DECLARED[kind] = DECLARED[kind] or {}
      DECLARED[kind][id] = key
    end
  end
end

local function has_key(kind, id)
  return id ~= nil and DECLARED[kind] ~= nil and DECLARED[kind][id] ~= nil
end

-- The declared key of kind for id. An undeclared one stops the script (a caller's bug): scripts
-- check what they need with need() before their first write.
local function key_of(kind, id)
  local key = DECLARED[kind] and DECLARED[kind][id]
  if not key then error('tempotask: key ' .. kind .. ' ' .. tostring(id) .. ' was not declared') end
  return key
end

-- Keys found missing by need(), as {kind, id} pairs, in order, once each.
local NEEDED, NEEDED_SEEN = {}, {}

-- Whether id can be a job id (validation.JOB_ID_PATTERN): only such an id names keys a caller can
-- declare. Other ids, written by other programs, name no job of ours: the scripts drop or skip them.
local function nameable(id)
  return type(id) == 'string' and #id <= 200 and string.match(id, '^[%w_%.:@%+=%-]+$') ~= nil
end

-- True when key kind/id is declared; else notes it for needs_reply() and returns false (an id a
-- caller cannot name, see nameable, is not noted: the caller skips it).
local function need(kind, id)
  if has_key(kind, id) then return true end
  if kind ~= 'rate' and kind ~= 'running' and kind ~= 'parked' and not nameable(id) then return false end
  local tag = kind .. ' ' .. id
  if not NEEDED_SEEN[tag] then
    NEEDED_SEEN[tag] = true
    NEEDED[#NEEDED + 1] = {kind, id}
  end
  return false
end

-- The reply of a call that needs more keys (nothing written): scripts.py declares them and resends.
local function needs_reply()
  return redis.error_reply('NEEDKEYS ' .. cjson.encode(NEEDED))
end
-- Priority bands are 2^42 apart so -priority * BAND + seq stays an exact double for |priority| <= 1000.
local PRIORITY_BAND = 4398046511104
-- Per-minute counts are kept two hours (the dashboard chart shows the last hour): STATS_MINUTES.
local STATS_MINUTES = 120
local STATS_KINDS = {'completed', 'failed', 'retried', 'cancelled'}
-- Doorbell entries kept (approximately); only the newest id matters.
local WAKE_MAXLEN = 100

-- Per-job keys put the kind before the id, which always comes last (see storage/keys.py): no id,
-- whatever its ':', can name another job's key.
local function job_key(id) return key_of('job', id) end
local function logs_key(id) return key_of('logs', id) end
local function errors_key(id) return key_of('errors', id) end

-- Job records can be damaged by other programs: numbers read from them fall back to a default
-- instead of failing the script (a failing script would fail it for every job of the queue).
local function finite(value, default)
  local n = tonumber(value)
  if n == nil or n ~= n or n == math.huge or n == -math.huge then return default end
  return n
end

local function priority_of(value)
  return math.max(-1000, math.min(1000, math.floor(finite(value, 0))))
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function status_key(status)
  if status == 'waiting' then return K.waiting end
  if status == 'delayed' then return K.delayed end
  if status == 'processing' then return K.processing end
  if status == 'completed' then return K.completed end
  if status == 'failed' then return K.failed end
  if status == 'cancelled' then return K.cancelled end
  return nil
end

-- Ids of a parent's child jobs that live in this queue (the child's queue owns the set, so a
-- script only touches its own queue's keys). A child leaves the set when its record is deleted.
local function children_key(parent_id) return key_of('children', parent_id) end

-- Whether every key delete_job_keys(id) touches is declared (notes the missing ones): the job's
-- record, logs, errors and children set, and its parent's children set (known from the record).
local function can_delete(id)
  local ready = need('job', id)
  ready = need('logs', id) and ready
  ready = need('errors', id) and ready
  ready = need('children', id) and ready
  if has_key('job', id) then
    local parent = redis.call('HGET', key_of('job', id), 'parent_id')
    if parent then ready = need('children', parent) and ready end
  end
  return ready
end

-- Delete a job's record, logs, errors and the set of its children in this queue, and take it out
-- of its parent's set: no set keeps the id of a job that is gone. UNLINK frees long lists off the
-- main thread. Its keys are declared (can_delete).
local function delete_job_keys(id)
  local jk = job_key(id)
  local parent = redis.call('HGET', jk, 'parent_id')
  -- A parent_id that is no job id (a damaged record) names no set: can_delete did not ask for one.
  if parent and nameable(parent) then redis.call('SREM', children_key(parent), id) end
  redis.call('UNLINK', jk, logs_key(id), errors_key(id), children_key(id))
end

-- Which of ids (history jobs to delete) can go now: {their positions in ids}, how many of ids have
-- their record declared (known), and whether a known one still lacks keys (its parent's set). An
-- id that names no job of ours can always go (only its member is removed).
local function deletable(ids)
  local ready, known, lacking = {}, 0, false
  for i, id in ipairs(ids) do
    local has_record = has_key('job', id)
    if can_delete(id) or not nameable(id) then
      ready[#ready + 1] = i
    elseif has_record then
      lacking = true
    end
    if has_record then known = known + 1 end
  end
  return ready, known, lacking
end

-- Append an error record (JSON) to a job's errors list, keeping the newest `keep`.
local function push_error(errors_key, record, keep)
  redis.call('RPUSH', errors_key, record)
  redis.call('LTRIM', errors_key, -keep, -1)
end

-- Add n (default 1) to this minute's count of kind (STATS_KINDS), a field of the queue's K.minutes.
-- The first count of a minute deletes the fields of the minutes that aged out, every kind's (one HDEL),
-- and makes the hash expire STATS_MINUTES after it: a field is deleted by a first count made between
-- STATS_MINUTES and 2 * STATS_MINUTES minutes after its minute, or the hash expired before one.
local function count_stat(field, now, n)
  n = n or 1
  local minute = math.floor(now / 60000)
  if redis.call('HINCRBY', K.minutes, minute .. ':' .. field, n) ~= n then return end
  local old = {}
  for m = minute - 2 * STATS_MINUTES, minute - STATS_MINUTES do
    for _, kind in ipairs(STATS_KINDS) do old[#old + 1] = m .. ':' .. kind end
  end
  redis.call('HDEL', K.minutes, unpack(old))
  redis.call('EXPIRE', K.minutes, STATS_MINUTES * 60)
end

-- The queue's FIFO counter is also its mark of use (forget_if_empty deletes it): a write creates it.
-- Returns 1 while the queue's name is not known to be in the global set of queue names (a global
-- key, outside this queue's hash slot): the caller adds it there, and only once that SADD answered
-- sets K.listed. A reply lost on the way, or a caller gone before its SADD, leaves K.listed missing,
-- so the next write reports the queue again (a mark set here, with the reply, would be lost with it).
local function mark_queue_used()
  if redis.call('EXISTS', K.seq) == 0 then redis.call('SET', K.seq, 0) end
  return 1 - redis.call('EXISTS', K.listed)
end

-- After a delete: when the queue holds nothing any more (no job in any status, no pause, no stream
-- entry, pending or not), delete its last keys (FIFO counter, stream with its consumer group,
-- doorbell) and return 1; the caller deletes its listed mark and takes the queue out of the global
-- set of queue names, and the queue's next job reports it again (mark_queue_used). Workers recreate the group on their
-- next claim. Returns 0 when the queue still holds something.
local function forget_if_empty(group)
  for _, key in ipairs({K.waiting, K.delayed, K.processing, K.completed, K.failed, K.cancelled, K.paused,
      K.limited}) do
    if redis.call('EXISTS', key) == 1 then return 0 end
  end
  if redis.call('XLEN', K.stream) > 0 then return 0 end
  local pending = redis.pcall('XPENDING', K.stream, group)
  if type(pending) == 'table' and not pending.err and tonumber(pending[1]) > 0 then return 0 end
  redis.call('UNLINK', K.seq, K.stream, K.wake, K.metrics)
  return 1
end

local function ring_doorbell(id)
  redis.call('XADD', K.wake, 'MAXLEN', '~', WAKE_MAXLEN, '*', 'j', id)
end

local function make_waiting(id, priority)
  local seq = redis.call('INCR', K.seq)
  redis.call('ZADD', K.waiting, -priority * PRIORITY_BAND + seq, id)
  redis.call('HSET', job_key(id), 'status', 'waiting')
  ring_doorbell(id)
end

-- Move delayed jobs whose time has come (server clock) to waiting, in their order, up to the first
-- whose record is not declared: that one and the next due ones (at most hints) are noted (need).
local function promote_due(now, limit, hints)
  local due = redis.call('ZRANGEBYSCORE', K.delayed, '-inf', now, 'LIMIT', 0, limit)
  for n, id in ipairs(due) do
    if not has_key('job', id) and nameable(id) then
      for i = n, math.min(#due, n + hints - 1) do need('job', due[i]) end
      return n - 1
    end
    redis.call('ZREM', K.delayed, id)
    -- An id that is no job id of ours (nameable) is only dropped.
    local priority = has_key('job', id) and redis.call('HGET', job_key(id), 'priority')
    if priority or (has_key('job', id) and redis.call('EXISTS', job_key(id)) == 1) then
      make_waiting(id, priority_of(priority))
    end
  end
  return #due
end

-- Milliseconds until the next delayed job is due or the next limit may let parked jobs go (see
-- limits below), or -1 when neither is.
local function next_due_in(now)
  local due = -1
  for _, key in ipairs({K.delayed, K.limited}) do
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if #first > 0 then
      local ms = math.max(0, tonumber(first[2]) - now)
      if due < 0 or ms < due then due = ms end
    end
  end
  return due
end

local function last_wake_id()
  local last = redis.call('XREVRANGE', K.wake, '+', '-', 'COUNT', 1)
  if #last == 0 then return '0-0' end
  return last[1][1]
end

local function entry_field(fields, name)
  if type(fields) ~= 'table' then return nil end
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end

local function drop_entry(group, eid)
  redis.call('XACK', K.stream, group, eid)
  redis.call('XDEL', K.stream, eid)
end

-- The record values an enqueue passes, in this order, from ARGV[first] on (JobSpec.job_args in
-- store.py); those after the sixth are stored only when not empty.
local JOB_FIELDS = {'name', 'queue', 'data', 'max_attempts', 'retry_delay', 'backoff', 'parent_id', 'origin',
  'trace', 'rate', 'maxc', 'limit', 'timeout'}

-- Before adding a job with a given id, while the script only reads: whether the keys active_status
-- may need are declared (a finished job with the id is deleted: can_delete).
local function can_replace(id)
  if not need('job', id) then return false end
  local status = redis.call('HGET', key_of('job', id), 'status')
  if not status or status == 'waiting' or status == 'delayed' or status == 'processing' then return true end
  return can_delete(id)
end

-- Before adding a job with a given id: the status of the active job that has it (the new one is
-- then not added), or nil; a finished job with the id is deleted (the new one replaces it).
local function active_status(id)
  local status = redis.call('HGET', job_key(id), 'status')
  if status == 'waiting' or status == 'delayed' or status == 'processing' then return status end
  if status then
    local old = status_key(status)
    if old then redis.call('ZREM', old, id) end
    delete_job_keys(id)
  end
  return nil
end

-- Write the record of a new job (its values at ARGV[first..]), waiting or delayed (due in the
-- future, server clock), in one HSET. The caller adds it to its status set. Returns true when delayed.
local function write_record(id, first, priority, due, now)
  local delayed = due > now
  local fields = {'id', id, 'enqueued_at', now, 'attempt', 0, 'priority', priority,
    'status', delayed and 'delayed' or 'waiting'}
  if delayed then fields[11], fields[12] = 'run_at', due end
  for k = 1, #JOB_FIELDS do
    local value = ARGV[first + k - 1]
    if k <= 6 or value ~= '' then fields[#fields + 1], fields[#fields + 2] = JOB_FIELDS[k], value end
  end
  redis.call('HSET', job_key(id), unpack(fields))
  local parent = ARGV[first + 6]
  if parent ~= '' then redis.call('SADD', children_key(parent), id) end
  return delayed
end

-- Add one job (its record values at ARGV[first..]) unless a job with its id is active.
-- Does not ring the doorbell: the caller does.
-- Returns {1, status} when added, {0, status} when an active job with that id exists.
local function enqueue_job(id, first, priority, due, now)
  local active = active_status(id)
  if active then return {0, active} end
  if write_record(id, first, priority, due, now) then
    redis.call('ZADD', K.delayed, due, id)
    return {1, 'delayed'}
  end
  local seq = redis.call('INCR', K.seq)
  redis.call('ZADD', K.waiting, -priority * PRIORITY_BAND + seq, id)
  return {1, 'waiting'}
end

-- Deliver new stream entries to the consumer (XREADGROUP ... >). A missing group (Redis restarted
-- without persistence, or a new queue) is created at 0, so entries orphaned by a lost group are
-- delivered again, not lost; creating it only on NOGROUP spares an XGROUP CREATE per claim.
local function read_new_entries(group, consumer, count)
  local reply = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', K.stream, '>')
  if type(reply) == 'table' and reply.err then
    if not string.find(reply.err, 'NOGROUP', 1, true) then error(reply) end
    redis.call('XGROUP', 'CREATE', K.stream, group, '0', 'MKSTREAM')
    reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', K.stream, '>')
  end
  if not reply or #reply == 0 then return {} end
  return reply[1][2]
end

-- Record a stream entry that is not a tempotask job as a failed job saying what was wrong, and drop it.
local function fail_invalid_entry(group, eid, fields, now, max_failed, problem)
  local fid = 'invalid-entry-' .. eid
  local raw = cjson.encode(fields or {})
  redis.call('HSET', job_key(fid), 'id', fid, 'name', '', 'queue', QUEUE, 'status', 'failed',
    'data', raw, 'enqueued_at', now, 'finished_at', now, 'attempt', 0, 'max_attempts', 1)
  redis.call('RPUSH', errors_key(fid), cjson.encode({
    attempt = 0, type = 'InvalidStreamEntry', t = now, traceback = '',
    message = 'stream entry ' .. eid .. ' ' .. problem .. ': ' .. string.sub(raw, 1, 500)}))
  redis.call('ZADD', K.failed, now, fid)
  count_stat('failed', now)
  drop_entry(group, eid)
end

-- Set fields of a flat HGETALL reply (name, value, ...) in place, adding the missing ones.
local function patch_fields(job, updates)
  local at = {}
  for i = 1, #job, 2 do at[job[i]] = i + 1 end
  for name, value in pairs(updates) do
    if at[name] then
      job[at[name]] = value
    else
      job[#job + 1], job[#job + 2] = name, value
    end
  end
  return job
end

-- The next attempt number of a job record; a damaged counter restarts at 0.
local function next_attempt(value)
  local attempt = finite(value, 0)
  if attempt < 0 or attempt > 1e9 then attempt = 0 end
  return math.floor(attempt) + 1
end

-- A delivered stream entry becomes a running attempt, or is dropped when it is stale.
-- Entries that are not ours (foreign writers) become failed jobs that say what was wrong.
-- A claim counts the attempt of the entry it makes (field 'counted' = the entry id); a first
-- delivery of such an entry (one a claim made but its read did not deliver) does not count it
-- again. A take-over (reclaim) always counts a new attempt.
-- Returns the job's fields (HGETALL) when the entry is a job to run, else nil.
local function start_entry(group, consumer, eid, fields, now, max_failed, first_delivery)
  local id = entry_field(fields, 'job')
  if not id then
    fail_invalid_entry(group, eid, fields, now, max_failed, 'is not a tempotask job (no "job" field)')
    return nil
  end
  if not nameable(id) then  -- no job id of ours
    fail_invalid_entry(group, eid, fields, now, max_failed, 'names a job that does not exist')
    return nil
  end
  local jk = job_key(id)
  -- One HGETALL both checks the entry and gives the fields to return (patched below).
  local job = redis.call('HGETALL', jk)
  local at = {}
  for i = 1, #job, 2 do at[job[i]] = i + 1 end
  if job[at.status or 0] ~= 'processing' or job[at.entry or 0] ~= eid then
    if #job == 0 then
      fail_invalid_entry(group, eid, fields, now, max_failed, 'names a job that does not exist')
    else
      -- Stale: the job was finished or re-queued under another entry.
      drop_entry(group, eid)
    end
    return nil
  end
  -- The id is restated from the key the entry names.
  local attempt = next_attempt(job[at.attempt or 0])
  if first_delivery and job[at.counted or 0] == eid then attempt = attempt - 1 end
  redis.call('HSET', jk, 'id', id, 'worker', consumer, 'started_at', now, 'attempt', attempt, 'counted', eid)
  redis.call('ZADD', K.processing, now, id)
  return patch_fields(job, {id = id, worker = consumer, started_at = tostring(now), attempt = tostring(attempt),
    counted = eid})
end

-- nil when consumer owns entry eid of job id and the job still points at it; else the reason.
-- held: nil to look the entry up, or the result of held_by() for a batch (an entry missing from
-- it is looked up on its own, to say who holds it now).
-- Why ``consumer`` no longer holds the lease of entry ``eid``, or nil when it does.
local function lease_problem(group, consumer, eid)
  local pending = redis.pcall('XPENDING', K.stream, group, eid, eid, 1)
  if type(pending) ~= 'table' or pending.err or #pending == 0 then
    return 'the entry is no longer pending (taken over, deleted, or Redis lost it)'
  end
  if pending[1][2] ~= consumer then
    return "the job is now owned by " .. pending[1][2]
  end
  return nil
end

local function ownership_problem(group, consumer, eid, id, held)
  if not (held and held[eid]) then
    local problem = lease_problem(group, consumer, eid)
    if problem then return problem end
  end
  local current = redis.call('HMGET', job_key(id), 'status', 'entry')
  if current[1] ~= 'processing' or current[2] ~= eid then
    return 'the job moved on (status ' .. tostring(current[1]) .. ')'
  end
  return nil
end

-- Stream ids 'ms-seq' as two numbers (their string order is wrong: '9-0' sorts after '10-0').
local function stream_id_parts(eid)
  local ms, seq = string.match(eid, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

-- The set of entries among eids that consumer holds, in one XPENDING over their id range (a
-- consumer holds about as many entries as it runs jobs, so the range is short). nil when an id
-- is malformed: the caller then checks each entry on its own.
local function held_by(group, consumer, eids)
  local lo, hi, lo_ms, lo_seq, hi_ms, hi_seq
  for _, eid in ipairs(eids) do
    local ms, seq = stream_id_parts(eid)
    if not ms then return nil end
    if not lo or ms < lo_ms or (ms == lo_ms and seq < lo_seq) then lo, lo_ms, lo_seq = eid, ms, seq end
    if not hi or ms > hi_ms or (ms == hi_ms and seq > hi_seq) then hi, hi_ms, hi_seq = eid, ms, seq end
  end
  local held = {}
  local pending = redis.pcall('XPENDING', K.stream, group, lo, hi, 1000000, consumer)
  if type(pending) == 'table' and not pending.err then
    for _, p in ipairs(pending) do held[p[1]] = true end
  end
  return held
end

-- End the running attempt: release the lease and the stream entry.
local function release(group, eid, id)
  drop_entry(group, eid)
  redis.call('ZREM', K.processing, id)
  redis.call('HDEL', job_key(id), 'entry')
end

-- Counters for metrics, one HASH per queue (K.metrics), fields ending with the task name:
--   <outcome>:<task>           jobs completed / failed (for good) / retried (a failed attempt)
--   duration:<le>:<task>       attempts that took at most <le> seconds and more than the bound
--                              below it (not cumulative; "+Inf" above the last bound)
--   duration_ms:<task>         their total duration, ms
-- Durations run from the attempt's start to its recorded end, by the server's clock. Bounded work:
-- at most four HINCRBY; fields grow with the number of task names only.
local DURATION_BOUNDS_MS = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000}
-- Returns the job's concurrency limit fields (maxc, limit), read by the same HMGET, for release_slot.
-- The duration histogram's bucket ('le' label, seconds) of an attempt that took ms milliseconds.
local function duration_bucket(ms)
  for _, bound in ipairs(DURATION_BOUNDS_MS) do
    if ms <= bound then return tostring(bound / 1000) end
  end
  return '+Inf'
end
local function count_job(jk, outcome, now, timed)
  local name, started, maxc, limit = unpack(redis.call('HMGET', jk, 'name', 'started_at', 'maxc', 'limit'))
  if not name then return maxc, limit end
  local key = K.metrics
  redis.call('HINCRBY', key, outcome .. ':' .. name, 1)
  started = tonumber(started)
  if not timed or not started then return maxc, limit end
  local ms = math.max(0, now - started)
  redis.call('HINCRBY', key, 'duration:' .. duration_bucket(ms) .. ':' .. name, 1)
  redis.call('HINCRBY', key, 'duration_ms:' .. name, math.floor(ms))
  return maxc, limit
end
