-- Delete up to COUNT of the oldest jobs of one history status (completed, failed or cancelled).
-- Their keys are found here: the first call asks for them (needs_reply), the next deletes.
-- ARGV[2] status: 'completed', 'failed' or 'cancelled'
-- ARGV[3] COUNT per call (keeps each call short; callers repeat until 0)
-- ARGV[4] consumer group
-- Returns {how many were deleted, 1 when the queue was left with nothing and forgotten (see
-- forget_if_empty) else 0}.
local zkey = status_key(ARGV[2])
if ARGV[2] ~= 'completed' and ARGV[2] ~= 'failed' and ARGV[2] ~= 'cancelled' then return redis.error_reply('not a history status') end
local ids = redis.call('ZRANGE', zkey, 0, tonumber(ARGV[3]) - 1)
-- Asks when a job it knows (its record declared) lacks keys, or when it knows none yet; a job that
-- came in since is left for the next call.
local positions, known, lacking = deletable(ids)
if #NEEDED > 0 and (lacking or known == 0) then return needs_reply() end
local ready = {}
for _, i in ipairs(positions) do
  local id = ids[i]
  if nameable(id) then delete_job_keys(id) end  -- else names no job of ours: only its member goes
  ready[#ready + 1] = id
end
if #ready > 0 then redis.call('ZREM', zkey, unpack(ready)) end
return {#ready, #ready > 0 and forget_if_empty(ARGV[4]) or 0}
