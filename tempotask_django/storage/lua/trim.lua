-- Bring the queue's history sets (completed, failed, cancelled) towards the history size,
-- deleting everything stored for their oldest jobs (delete_job_keys): at most ARGV[3] jobs per
-- call in all, so lowering MAX_JOBS_PER_STATUS never makes one call delete a whole history. The
-- jobs' keys are found here: the first call asks for them (needs_reply: the records, logs, errors
-- and children sets, then the parents' children sets once the records tell the parents), and
-- the call sent again with them declared deletes. Safe to run twice: a second run deletes only
-- what is still over the size.
-- ARGV[2] history size (jobs kept per status)
-- ARGV[3] most jobs deleted by this call (HISTORY_TRIM_SLICE in store.py)
-- Returns how many jobs the three sets still hold over the size after this call.
local max_kept, budget = tonumber(ARGV[2]), tonumber(ARGV[3])
local plan, over = {}, 0
for _, zkey in ipairs({K.completed, K.failed, K.cancelled}) do
  local excess = redis.call('ZCARD', zkey) - max_kept
  if excess > 0 then
    local n = math.min(excess, budget - #plan)
    if n > 0 then
      for _, id in ipairs(redis.call('ZRANGE', zkey, 0, n - 1)) do plan[#plan + 1] = {zkey, id} end
    end
    over = over + excess
  end
end
if #plan == 0 then return over end
-- Asks when a job it knows (its record declared) lacks keys, or when it knows none yet. A job that
-- became one of the oldest since it asked (other callers trim meanwhile) is left for the next call.
local ready, known, lacking = {}, 0, false
for _, item in ipairs(plan) do
  local id = item[2]
  local has_record = has_key('job', id)
  if can_delete(id) or not nameable(id) then
    ready[#ready + 1] = item
  elseif has_record then
    lacking = true
  end
  if has_record then known = known + 1 end
end
if #NEEDED > 0 and (lacking or known == 0) then return needs_reply() end
for _, item in ipairs(ready) do
  if nameable(item[2]) then delete_job_keys(item[2]) end  -- else names no job of ours: only its member goes
  redis.call('ZREM', item[1], item[2])
end
return over - #ready
