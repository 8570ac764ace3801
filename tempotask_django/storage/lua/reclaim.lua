-- Take over jobs whose worker stopped renewing its lease (idle longer than the stalled timeout).
-- A job whose workers stopped more than once in a row (a suspect) may be what kills them: it is
-- started only by a worker running nothing else, and then alone, so the next death it causes cannot
-- take innocent jobs with it, and the poison-pill cap (MAX_DELIVERIES) counts its own deaths only.
-- A busy worker may hold a suspect instead (reserve it: its lease moves to the worker without a
-- delivery counted, and the worker renews it): that one worker drains, and starts the suspect here
-- once it runs nothing; the other workers never see it as stalled and go on claiming. Busy workers
-- hold a suspect only once it has stalled for two stalled timeouts: an idle worker takes it first.
-- Nothing is taken over from a paused queue: its stalled jobs stay put until it is resumed.
-- Declared: the records, errors and limit keys of the jobs of the entries it may take (need_entry;
-- asked for: needs_reply, nothing written). The history is trimmed by trim.lua, called after it.
-- ARGV[2] consumer group
-- ARGV[3] consumer (worker) name taking them over
-- ARGV[4] minimum idle time in ms (the stalled timeout)
-- ARGV[5] cursor: first entry id to look at ('0-0' for a fresh pass)
-- ARGV[6] COUNT: how many jobs the worker can start now
-- ARGV[7] MAX_DELIVERIES: more deliveries than this fails the job as a poison pill
-- ARGV[8] history size (for failed records of invalid entries)
-- ARGV[9] '1' when the worker runs nothing now, so it may take a suspect
-- ARGV[10] entry id of the suspect this worker holds in this queue, '' when none
-- ARGV[11] '1' when the worker may hold a suspect (it holds none in any queue)
-- ARGV[12] error records kept per job (MAX_ERRORS_PER_JOB; never fewer than MAX_DELIVERIES, which
--          sweep.lua counts from the newest records)
-- Returns {jobs, next_cursor, poisoned, alone, suspects, held}: jobs as in claim.lua; next_cursor
-- '0-0' when the pass is complete; alone 1 when the (single) job returned must run alone; suspects
-- is how many suspects were left for another worker; held the entry id of the suspect the worker
-- holds in this queue after the call ('' when none: started, gone, or never held).
local group, consumer, min_idle = ARGV[2], ARGV[3], tonumber(ARGV[4])
local count, max_deliveries, max_failed = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local may_take_suspect = ARGV[9] == '1'
local held, may_hold = ARGV[10], ARGV[11] == '1'
local errors_kept = math.max(tonumber(ARGV[12]), max_deliveries)
if redis.call('EXISTS', K.paused) == 1 then return {{}, '0-0', 0, 0, 0, ''} end
-- Deliveries from which a job is a suspect: it was taken over twice (or at once when the cap is lower).
local suspect_from = math.min(3, max_deliveries)
local now = now_ms()
local jobs, poisoned, alone, suspects = {}, 0, 0, 0

-- Take entry eid over (its lease idle for min_idle_ms at least) as its delivery number deliveries:
-- start it, or fail it as a poison pill past MAX_DELIVERIES.
local function take(eid, deliveries, suspect, min_idle_ms)
  local claimed = redis.call('XCLAIM', K.stream, group, consumer, min_idle_ms, eid)
  local entry = claimed[1]
  if type(entry) ~= 'table' then
    -- Deleted while pending: 7.x drops it from the pending list itself, 6.2 keeps it (ack it).
    -- Its fields are gone, so its job is found from the processing set and sent back to waiting
    -- by sweep.lua, which the same chore runs next.
    redis.call('XACK', K.stream, group, eid)
    return
  end
  local id = entry_field(entry[2], 'job')
  -- An entry naming no job of ours (foreign, malformed) has no record: start_entry fails it.
  local jk = nameable(id) and job_key(id) or nil
  local previous = jk and redis.call('HGET', jk, 'worker') or '?'
  local job = start_entry(group, consumer, eid, entry[2], now, max_failed)
  if not job then return end
  local attempt = tonumber(redis.call('HGET', jk, 'attempt'))
  local err = {attempt = attempt - 1, type = 'Stalled', t = now, traceback = '', worker = previous,
    message = 'worker ' .. previous .. ' stopped renewing its lease; delivery ' .. deliveries}
  if deliveries > max_deliveries then
    err.type = 'PoisonPill'
    err.message = 'delivered ' .. deliveries .. ' times without finishing (its worker died each time); ' ..
      'failed instead of retried (MAX_DELIVERIES=' .. max_deliveries .. ')'
    release(group, eid, id)
    release_job_slot(id)
    push_error(errors_key(id), cjson.encode(err), errors_kept)
    redis.call('HSET', jk, 'status', 'failed', 'finished_at', now, 'attempt', attempt - 1)
    redis.call('ZADD', K.failed, now, id)
    count_stat('failed', now)
    count_job(jk, 'failed', now, false)
    poisoned = poisoned + 1
    return
  end
  if suspect then
    alone = 1
    err.message = err.message .. '; runs alone on its worker in case it is what kills them'
  end
  push_error(errors_key(id), cjson.encode(err), errors_kept)
  jobs[#jobs + 1] = redis.call('HGETALL', jk)
end

-- Before any write: the keys of every entry this call may take.
local page = count * 10
local function held_pending()
  local pending = redis.pcall('XPENDING', K.stream, group, held, held, 1)
  if type(pending) ~= 'table' or pending.err or #pending == 0 or pending[1][2] ~= consumer then return nil end
  return pending
end
-- Asks when an entry whose job it knows (its record declared) lacks keys (its limit's: the record
-- tells them), or when it knows fewer of the jobs than it does not. Sent again, jobs that stalled
-- since it asked (a busy queue) are not taken by this call but by the next pass: it never asks
-- for ever.
local ready, known, unknown, lacking = {}, 0, 0, false
local function job_known(eid)
  local entry = redis.call('XRANGE', K.stream, eid, eid)
  if #entry == 0 then return false end
  local id = entry_field(entry[1][2], 'job')
  return nameable(id) and has_key('job', id)
end
local function look_at(eid)
  local is_ready, is_known = need_entry(eid), job_known(eid)
  if is_ready then ready[eid] = true end
  if is_known then known = known + 1 end
  if is_known and not is_ready then lacking = true end
  if not is_known and not is_ready then unknown = unknown + 1 end
end
if held ~= '' and may_take_suspect and held_pending() then look_at(held) end
local looked = redis.pcall('XPENDING', K.stream, group, 'IDLE', min_idle, ARGV[5], '+', page)
if type(looked) == 'table' and not looked.err then
  for _, p in ipairs(looked) do look_at(p[1]) end
end
if #NEEDED > 0 and (lacking or unknown > known) then return needs_reply() end

-- The suspect this worker holds: still ours? Then start it if the worker runs nothing now.
if held ~= '' then
  local pending = held_pending()
  if not pending then
    held = '' -- finished, deleted, or taken over meanwhile: nothing to wait for
  elseif may_take_suspect and ready[held] then
    take(held, tonumber(pending[1][4]) + 1, true, 0)
    held = ''
    if alone == 1 then return {jobs, '0-0', poisoned, alone, suspects, held} end
  end
end

local stalled = redis.pcall('XPENDING', K.stream, group, 'IDLE', min_idle, ARGV[5], '+', page)
if type(stalled) ~= 'table' or stalled.err then return {jobs, '0-0', poisoned, alone, suspects, held} end
local cursor = #stalled == page and ('(' .. stalled[#stalled][1]) or '0-0'
for _, p in ipairs(stalled) do
  if #jobs >= count or alone == 1 then
    cursor = p[1]
    break
  end
  local eid, deliveries = p[1], tonumber(p[4]) + 1
  local suspect = deliveries >= suspect_from and deliveries <= max_deliveries
  if suspect and not (may_take_suspect and #jobs == 0) then
    -- JUSTID: the lease moves to this worker, the delivery count does not grow (nothing started).
    if may_hold and held == '' and tonumber(p[3]) >= 2 * min_idle
      and #redis.call('XCLAIM', K.stream, group, consumer, min_idle, eid, 'JUSTID') == 1 then
      held = eid
    else
      suspects = suspects + 1
    end
  elseif ready[eid] then
    take(eid, deliveries, suspect, min_idle)
  end
end
return {jobs, cursor, poisoned, alone, suspects, held}
