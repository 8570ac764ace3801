-- Give running jobs back to waiting at once, for another worker: their worker is about to exit
-- (it must abandon a job that ignored its time limit), and they did nothing wrong. The attempt is
-- not counted (the next start counts it again), and nobody waits STALLED_TIMEOUT for them.
-- Only jobs the calling worker still owns are given back (each ownership checked first).
-- ARGV[2] consumer group
-- ARGV[3] consumer (worker) name
-- ARGV[4..] two values per job: stream entry id, job id
-- Returns how many jobs were given back.
local group, consumer = ARGV[2], ARGV[3]
local given = 0
for i = 4, #ARGV, 2 do
  local eid, id = ARGV[i], ARGV[i + 1]
  if not ownership_problem(group, consumer, eid, id) then
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
