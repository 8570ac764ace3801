-- Bring the queue's history sets (completed, failed, cancelled) towards the history size,
-- deleting everything stored for their oldest jobs (delete_job_keys): at most ARGV[3] jobs per
-- call in all, so lowering MAX_JOBS_PER_STATUS never makes one call delete a whole history. The
-- jobs' keys are found here: the first call asks for them (needs_reply: the records, logs, errors
-- and children sets, then the parents' children sets once the records tell the parents), and
-- the call sent again with them declared deletes. Safe to run twice: a second run deletes only
-- what is still over the size.
-- ARGV[2] history size (jobs kept per status)
-- ARGV[3] most jobs deleted by this call (HISTORY_TRIM_SLICE in store.py)
-- ARGV[4] how many of the oldest jobs of a full set to name for the next call (TRIM_AHEAD)
-- Returns {how many jobs the three sets still hold over the size after this call, the ids of the
-- oldest jobs of the sets that are full or nearly so}: the caller declares their keys in its next
-- call, so a full history is trimmed as each finish batch adds to it without asking first.
local max_kept, budget, ahead = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4] or 0)
local function oldest_named(over)
  local ids = {}
  if ahead <= 0 then return {over, ids} end
  for _, zkey in ipairs({K.completed, K.failed, K.cancelled}) do
    if redis.call('ZCARD', zkey) + ahead > max_kept then
      for _, id in ipairs(redis.call('ZRANGE', zkey, 0, ahead - 1)) do ids[#ids + 1] = id end
    end
  end
  return {over, ids}
end
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
if #plan == 0 then return oldest_named(over) end
-- Asks when a job it knows (its record declared) lacks keys, or when it knows fewer than half of
-- them (the jobs named ahead by the call before cover a finish batch). A job it does not know (it
-- became one of the oldest since the caller learnt the names) is left for the next call.
local ids = {}
for i, item in ipairs(plan) do ids[i] = item[2] end
local ready, known, lacking = deletable(ids)
if #NEEDED > 0 and (lacking or known * 2 < #plan) then return needs_reply() end
for _, i in ipairs(ready) do
  local zkey, id = plan[i][1], plan[i][2]
  if nameable(id) then delete_job_keys(id) end  -- else names no job of ours: only its member goes
  redis.call('ZREM', zkey, id)
end
return oldest_named(over - #ready)
