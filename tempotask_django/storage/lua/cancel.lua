-- Cancel a job. A waiting or delayed job ends cancelled here, at once: it leaves its set in this
-- script, so no claim can pop it afterwards (and a stream entry made before is stale: claims and
-- take-overs drop an entry whose job is not processing). A processing job is marked
-- (cancel_requested, the server's ms) and its worker is told on the cancel channel; the worker
-- raises JobCancelled in the handler and records the job cancelled. A worker that missed the
-- notice sees the mark when it renews its leases (renew.lua), and a worker that takes the job over
-- or claims it again records it cancelled without running it.
-- own_key(1) the job's record, own_key(2) its errors (a job cancelled before it ran gets a
-- JobCancelled record there, as a running one does from its worker), and the keys of its limit
-- when it has one (asked for: needs_reply). The history is trimmed by trim.lua, called after it.
-- ARGV[2] job id
-- ARGV[3] history size (unused: trim.lua trims)
-- ARGV[4] the cancel channel (PUBLISH: a channel is not a key)
-- ARGV[5] error records kept per job (MAX_ERRORS_PER_JOB)
-- Returns {the status the job had, what happened: 'cancelled' (ended now), 'requested' (its
-- worker stops it) or '' (already finished: nothing done)}, or false when the job does not exist.
local id, max_kept, channel = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local jk = own_key(1)
local current = redis.call('HMGET', jk, 'status', 'worker', 'entry', 'cancel_requested', 'attempt')
local status = current[1]
if not status then return false end
if status == 'waiting' and not need_job_limit(id) then return needs_reply() end
if status == 'waiting' or status == 'delayed' then
  local now = now_ms()
  redis.call('ZREM', status_key(status), id)
  if status == 'waiting' then unpark(id) end  -- a job over its limit waits in its limit's parked set
  redis.call('HSET', jk, 'status', 'cancelled', 'finished_at', now, 'cancel_requested', now)
  redis.call('ZADD', K.cancelled, now, id)
  push_error(own_key(2), cjson.encode({t = now, attempt = finite(current[5], 0),
    type = 'tempotask_django.exceptions.JobCancelled', message = 'the job was cancelled while ' .. status,
    traceback = ''}), tonumber(ARGV[5]))
  count_stat('cancelled', now)
  count_job(jk, 'cancelled', now, false)
  return {status, 'cancelled'}
end
if status == 'processing' then
  if not current[4] then redis.call('HSET', jk, 'cancel_requested', now_ms()) end
  redis.call('PUBLISH', channel, cjson.encode({queue = QUEUE, id = id, worker = current[2] or '',
    entry = current[3] or ''}))
  return {status, 'requested'}
end
return {status, ''}
