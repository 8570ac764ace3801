-- Record a failed attempt of a running job, if the calling worker still owns it, then either
-- schedule the next attempt (delayed, or waiting when the delay is 0) or fail the job for good.
-- own_key(1) the job's record, own_key(2) its errors, and its limit's keys when it has one (asked
-- for: needs_reply). The history is trimmed by trim.lua, called after it.
-- ARGV[2] consumer group
-- ARGV[3] consumer (worker) name
-- ARGV[4] stream entry id
-- ARGV[5] job id
-- ARGV[6] error (JSON object without its time: "t" is added here, by the server clock, as
--         every other time of a job is)
-- ARGV[7] retry delay in ms, or -1 to fail for good (dead letter)
-- ARGV[8] history size (unused: trim.lua trims)
-- ARGV[9] error records kept per job (the newest; MAX_ERRORS_PER_JOB)
-- ARGV[10] '1' when a registered task ran the job: only then is it counted per task (metrics)
-- ARGV[11] '1' when the attempt ended because the job was cancelled: the job ends cancelled (never
--          retried), whatever ARGV[7] says
-- Returns {1, new status} when done, {0, reason} when the worker no longer owns the job.
local group, consumer, eid, id = ARGV[2], ARGV[3], ARGV[4], ARGV[5]

-- The error record with its time first: {"t": now, ...the record's own fields}. An argument that
-- is not a JSON object is stored as given.
local function stamped(record, now)
  if string.sub(record, 1, 1) ~= '{' then return record end
  local rest = string.sub(record, 2)
  if string.match(rest, '^%s*}') then return '{"t":' .. now .. '}' end
  return '{"t":' .. now .. ',' .. rest
end

local problem = ownership_problem(group, consumer, eid, id)
if problem then return {0, problem} end
if not need_job_limit(id) then return needs_reply() end
local now = now_ms()
local delay = tonumber(ARGV[7])
local jk = own_key(1)
release(group, eid, id)
release_job_slot(id)
push_error(own_key(2), stamped(ARGV[6], now), tonumber(ARGV[9]))
redis.call('HSET', jk, 'finished_at', now)
if ARGV[11] == '1' then
  redis.call('HSET', jk, 'status', 'cancelled')
  redis.call('ZADD', K.cancelled, now, id)
  count_stat('cancelled', now)
  if ARGV[10] == '1' then count_job(jk, 'cancelled', now, true) end
  return {1, 'cancelled'}
end
if delay < 0 then
  redis.call('HSET', jk, 'status', 'failed')
  redis.call('ZADD', K.failed, now, id)
  count_stat('failed', now)
  if ARGV[10] == '1' then count_job(jk, 'failed', now, true) end
  return {1, 'failed'}
end
count_stat('retried', now)
if ARGV[10] == '1' then count_job(jk, 'retried', now, true) end
if delay == 0 then
  make_waiting(id, priority_of(redis.call('HGET', jk, 'priority')))
  return {1, 'waiting'}
end
redis.call('HSET', jk, 'status', 'delayed', 'run_at', now + delay)
redis.call('ZADD', K.delayed, now + delay, id)
return {1, 'delayed'}
