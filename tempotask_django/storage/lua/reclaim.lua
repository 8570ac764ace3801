-- Take over jobs whose worker stopped renewing its lease (idle longer than the stalled timeout).
-- A job whose workers stopped more than once in a row (a suspect) may be what kills them: it is
-- taken only by a worker running nothing else, and then alone, so the next death it causes cannot
-- take innocent jobs with it, and the poison-pill cap (MAX_DELIVERIES) counts its own deaths only.
-- ARGV[2] consumer group
-- ARGV[3] consumer (worker) name taking them over
-- ARGV[4] minimum idle time in ms (the stalled timeout)
-- ARGV[5] cursor: first entry id to look at ('0-0' for a fresh pass)
-- ARGV[6] COUNT: how many jobs the worker can start now
-- ARGV[7] MAX_DELIVERIES: more deliveries than this fails the job as a poison pill
-- ARGV[8] history size (failed jobs kept)
-- ARGV[9] '1' when the worker runs nothing now, so it may take a suspect
-- ARGV[10] error records kept per job (MAX_ERRORS_PER_JOB; never fewer than MAX_DELIVERIES, which
--          sweep.lua counts from the newest records)
-- Returns {jobs, next_cursor, poisoned, alone, suspects}: jobs as in claim.lua; next_cursor '0-0'
-- when the pass is complete; alone 1 when the (single) job returned must run alone; suspects is
-- how many suspects were left for a worker running nothing.
local group, consumer, min_idle = ARGV[2], ARGV[3], tonumber(ARGV[4])
local count, max_deliveries, max_failed = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local may_take_suspect = ARGV[9] == '1'
local errors_kept = math.max(tonumber(ARGV[10]), max_deliveries)
-- Deliveries from which a job is a suspect: it was taken over twice (or at once when the cap is lower).
local suspect_from = math.min(3, max_deliveries)
local page = count * 10
local stalled = redis.pcall('XPENDING', K.stream, group, 'IDLE', min_idle, ARGV[5], '+', page)
if type(stalled) ~= 'table' or stalled.err then return {{}, '0-0', 0, 0, 0} end
local now = now_ms()
local jobs, poisoned, alone, suspects = {}, 0, 0, 0
local cursor = #stalled == page and ('(' .. stalled[#stalled][1]) or '0-0'
for _, p in ipairs(stalled) do
  if #jobs >= count or alone == 1 then
    cursor = p[1]
    break
  end
  local eid, deliveries = p[1], tonumber(p[4]) + 1
  local suspect = deliveries >= suspect_from and deliveries <= max_deliveries
  if suspect and not (may_take_suspect and #jobs == 0) then
    suspects = suspects + 1
  else
    local claimed = redis.call('XCLAIM', K.stream, group, consumer, min_idle, eid)
    local entry = claimed[1]
    if type(entry) ~= 'table' then
      -- Deleted while pending: 7.x drops it from the pending list itself, 6.2 keeps it (ack it).
      -- Its fields are gone, so its job is found from the processing set and sent back to waiting
      -- by sweep.lua, which the same chore runs next.
      redis.call('XACK', K.stream, group, eid)
    else
      local id = entry_field(entry[2], 'job')
      local jk = id and job_key(id)
      local previous = jk and redis.call('HGET', jk, 'worker') or '?'
      local job = start_entry(group, consumer, eid, entry[2], now, max_failed)
      if job then
        local attempt = tonumber(redis.call('HGET', jk, 'attempt'))
        local err = {attempt = attempt - 1, type = 'Stalled', t = now, traceback = '', worker = previous,
          message = 'worker ' .. previous .. ' stopped renewing its lease; delivery ' .. deliveries}
        if deliveries > max_deliveries then
          err.type = 'PoisonPill'
          err.message = 'delivered ' .. deliveries .. ' times without finishing (its worker died each time); ' ..
            'failed instead of retried (MAX_DELIVERIES=' .. max_deliveries .. ')'
          release(group, eid, id)
          push_error(jk .. ':errors', cjson.encode(err), errors_kept)
          redis.call('HSET', jk, 'status', 'failed', 'finished_at', now, 'attempt', attempt - 1)
          redis.call('ZADD', K.failed, now, id)
          count_stat('failed', now)
          trim_history(K.failed, max_failed)
          poisoned = poisoned + 1
        else
          if suspect then
            alone = 1
            err.message = err.message .. '; runs alone on its worker in case it is what kills them'
          end
          push_error(jk .. ':errors', cjson.encode(err), errors_kept)
          jobs[#jobs + 1] = redis.call('HGETALL', jk)
        end
      end
    end
  end
end
return {jobs, cursor, poisoned, alone, suspects}
