-- Give running jobs back to waiting at once, for another worker: their worker is about to exit
-- (it must abandon a job that ignored its time limit), and they did nothing wrong. The attempt is
-- not counted (the next start counts it again), and nobody waits STALLED_TIMEOUT for them.
-- Only jobs the calling worker still owns are given back (each ownership checked first).
-- Declared: each job's record, and the keys of its limit when it has one (asked for: needs_reply).
-- ARGV[2] consumer group
-- ARGV[3] consumer (worker) name
-- ARGV[4..] two values per job: stream entry id, job id
-- Returns how many jobs were given back.
local group, consumer = ARGV[2], ARGV[3]
local given, owned = 0, {}
for i = 4, #ARGV, 2 do
  if not ownership_problem(group, consumer, ARGV[i], ARGV[i + 1]) then
    owned[i] = true
    need_job_limit(ARGV[i + 1])
  end
end
if #NEEDED > 0 then return needs_reply() end
for i = 4, #ARGV, 2 do
  local eid, id = ARGV[i], ARGV[i + 1]
  if owned[i] then
    local jk = job_key(id)
    local attempt, priority = unpack(redis.call('HMGET', jk, 'attempt', 'priority'))
    release(group, eid, id)
    release_job_slot(id)  -- it no longer runs: its concurrency slot is free for the next one
    redis.call('HSET', jk, 'attempt', math.max(0, math.floor(finite(attempt, 1)) - 1))
    redis.call('HDEL', jk, 'counted', 'worker')
    make_waiting(id, priority_of(priority))
    given = given + 1
  end
end
return given
