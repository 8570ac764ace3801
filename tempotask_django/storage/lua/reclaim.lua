-- Take over jobs whose worker stopped renewing its lease (idle longer than the stalled timeout).
-- ARGV[2] consumer group
-- ARGV[3] consumer (worker) name taking them over
-- ARGV[4] minimum idle time in ms (the stalled timeout)
-- ARGV[5] cursor to start from ('0-0' for a fresh pass)
-- ARGV[6] COUNT: how many jobs the worker can start now
-- ARGV[7] MAX_DELIVERIES: more deliveries than this fails the job as a poison pill
-- ARGV[8] history size (failed jobs kept)
-- Returns {jobs, next_cursor, poisoned}; jobs as in claim.lua.
local group, consumer, min_idle = ARGV[2], ARGV[3], ARGV[4]
local max_deliveries, max_failed = tonumber(ARGV[7]), tonumber(ARGV[8])
local reply = redis.pcall('XAUTOCLAIM', K.stream, group, consumer, min_idle, ARGV[5], 'COUNT', ARGV[6])
if type(reply) ~= 'table' or reply.err then return {{}, '0-0', 0} end
local now = now_ms()
local jobs, poisoned = {}, 0
local tombstones = false
for _, entry in ipairs(reply[2]) do
  local eid = type(entry) == 'table' and entry[1] or nil
  local fields = type(entry) == 'table' and entry[2] or nil
  if not eid then
    tombstones = true
  elseif type(fields) ~= 'table' or #fields == 0 then
    redis.call('XACK', K.stream, group, eid)
  else
    local id = entry_field(fields, 'job')
    local jk = id and job_key(id)
    local previous = jk and redis.call('HGET', jk, 'worker') or '?'
    local info = redis.call('XPENDING', K.stream, group, eid, eid, 1)
    local deliveries = (#info > 0) and tonumber(info[1][4]) or 1
    local job = start_entry(group, consumer, eid, fields, now, max_failed)
    if job then
      local attempt = tonumber(redis.call('HGET', jk, 'attempt'))
      local err = {attempt = attempt - 1, type = 'Stalled', t = now, traceback = '', worker = previous,
        message = 'worker ' .. previous .. ' stopped renewing its lease; delivery ' .. deliveries}
      if deliveries > max_deliveries then
        err.type = 'PoisonPill'
        err.message = 'delivered ' .. deliveries .. ' times without finishing (its worker died each time); ' ..
          'failed instead of retried (MAX_DELIVERIES=' .. max_deliveries .. ')'
        release(group, eid, id)
        redis.call('RPUSH', jk .. ':errors', cjson.encode(err))
        redis.call('HSET', jk, 'status', 'failed', 'finished_at', now, 'attempt', attempt - 1)
        redis.call('ZADD', K.failed, now, id)
        count_stat('failed', now)
        trim_history(K.failed, max_failed)
        poisoned = poisoned + 1
      else
        redis.call('RPUSH', jk .. ':errors', cjson.encode(err))
        jobs[#jobs + 1] = redis.call('HGETALL', jk)
      end
    end
  end
end
if tombstones then
  -- Redis 6.2 returns entries deleted while pending as nil, without their ids, and keeps them
  -- pending (7.x drops them itself). Find them in the scanned range and ack them.
  local last = reply[1] == '0-0' and '+' or reply[1]
  for _, p in ipairs(redis.call('XPENDING', K.stream, group, ARGV[5], last, tonumber(ARGV[6]) * 10)) do
    if #redis.call('XRANGE', K.stream, p[1], p[1]) == 0 then redis.call('XACK', K.stream, group, p[1]) end
  end
end
return {jobs, reply[1], poisoned}
