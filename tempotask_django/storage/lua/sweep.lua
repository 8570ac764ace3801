-- Send back to waiting, as a new attempt, the running jobs whose stream entry is no longer
-- pending: deleted while pending (XDEL, XTRIM; Redis 7 then drops it from the pending list at the
-- next XCLAIM, and reclaim.lua and renew.lua acknowledge it), or lost by Redis. No finish can
-- succeed for such a job (each checks the pending entry) and no take-over sees it (take-overs read
-- the pending list), so without this it would stay processing forever.
-- Claims set processing and deliver the entry in one script and finishes release both in one
-- script, so a processing job whose entry nobody has pending is such an orphan. A job whose entry
-- is pending, deleted or not, is the take-over's business (reclaim.lua), never this script's.
-- As for stalls, MAX_DELIVERIES bounds the runs in a row that never finished: this loss and the
-- Stalled and EntryLost errors just before it; past that the job fails (type PoisonPill).
-- ARGV[2] consumer group
-- ARGV[3] offset: rank in the processing set to start at ('0' for a fresh pass)
-- ARGV[4] how many processing jobs to look at in this call
-- ARGV[5] MAX_DELIVERIES
-- ARGV[6] history size (unused: trim.lua trims)
-- ARGV[7] error records kept per job (MAX_ERRORS_PER_JOB; never fewer than MAX_DELIVERIES, which
--         unfinished_runs counts from the newest records)
-- Declared: the records of the jobs looked at, and the errors and limit keys of those sent back
-- (asked for: needs_reply, nothing written; a job come in since, whose record is not declared, is
-- left for the next pass). The history is trimmed by trim.lua (store.py calls it on a pass's first call).
-- Returns {next_offset, requeued, failed}; next_offset 0 when the pass is complete.
local group, offset, page = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local max_deliveries, max_kept = tonumber(ARGV[5]), tonumber(ARGV[6])
local errors_kept = math.max(tonumber(ARGV[7]), max_deliveries)
local ids = redis.call('ZRANGE', K.processing, offset, offset + page - 1)
if #ids == 0 then return {0, 0, 0} end
-- Without the group nothing tells who holds what: the next claim recreates it and redelivers.
local group_state = redis.pcall('XPENDING', K.stream, group)
if type(group_state) ~= 'table' or group_state.err then return {0, 0, 0} end

-- Runs in a row that never finished before this one: the trailing Stalled / EntryLost errors.
local function unfinished_runs(id)
  local recent = redis.call('LRANGE', errors_key(id), -max_deliveries, -1)
  local runs = 0
  for i = #recent, 1, -1 do
    local ok, err = pcall(cjson.decode, recent[i])
    if not ok or type(err) ~= 'table' or (err.type ~= 'Stalled' and err.type ~= 'EntryLost') then break end
    runs = runs + 1
  end
  return runs
end

-- A job whose entry is lost: {its record's status, entry, worker, attempt, priority} and the
-- entry id to drop (nil when the field names no stream entry), else nil.
local function lost(id)
  local current = redis.call('HMGET', job_key(id), 'status', 'entry', 'worker', 'attempt', 'priority')
  local eid, pending = current[2], nil
  if current[1] == 'processing' and eid then
    pending = redis.pcall('XPENDING', K.stream, group, eid, eid, 1)
    if type(pending) ~= 'table' or pending.err then eid, pending = nil, nil end -- not a stream id at all
  end
  if current[1] == 'processing' and not (pending and #pending > 0) then return current, eid end
  return nil
end

local known, lacking = 0, false
for _, id in ipairs(ids) do
  if nameable(id) and need('job', id) then  -- (an id that is no job id of ours is skipped)
    known = known + 1
    if lost(id) and not (need('errors', id) and need_job_limit(id)) then lacking = true end
  end
end
-- Asks when a job it knows lacks keys, or when it knows none yet (a first call). A job that came in
-- since it asked (its record not declared: other workers claim meanwhile) is left for the next pass.
if #NEEDED > 0 and (lacking or known == 0) then return needs_reply() end

local now = now_ms()
local requeued, failed = 0, 0
for _, id in ipairs(ids) do
  local jk = has_key('job', id) and job_key(id)
  local current, eid = nil, nil
  if jk then current, eid = lost(id) end
  if current then
    local worker = current[3] or '?'
    local runs = unfinished_runs(id) + 1
    local err = {attempt = finite(current[4], 0), type = 'EntryLost', t = now, traceback = '', worker = worker,
      message = 'its stream entry was lost: deleted while pending, or Redis lost it (entry ' ..
        (current[2] or 'none') .. ', worker ' .. worker .. ')'}
    if eid then drop_entry(group, eid) end
    redis.call('ZREM', K.processing, id)
    redis.call('HDEL', jk, 'entry')
    release_job_slot(id)
    if runs >= max_deliveries then
      err.type = 'PoisonPill'
      err.message = err.message .. '; ' .. runs .. ' runs in a row never finished: failed instead of ' ..
        'retried (MAX_DELIVERIES=' .. max_deliveries .. ')'
      push_error(errors_key(id), cjson.encode(err), errors_kept)
      redis.call('HSET', jk, 'status', 'failed', 'finished_at', now)
      redis.call('ZADD', K.failed, now, id)
      count_stat('failed', now)
      count_job(jk, 'failed', now, false)
      failed = failed + 1
    else
      err.message = err.message .. '; runs again'
      push_error(errors_key(id), cjson.encode(err), errors_kept)
      make_waiting(id, priority_of(current[5]))
      requeued = requeued + 1
    end
  end
end
if #ids < page then return {0, requeued, failed} end
return {offset + page - requeued - failed, requeued, failed}
