-- Finish a running job successfully, if the calling worker still owns it.
-- ARGV[2] consumer group
-- ARGV[3] consumer (worker) name
-- ARGV[4] stream entry id
-- ARGV[5] job id
-- ARGV[6] result (JSON)
-- ARGV[7] history size (completed jobs kept)
-- Returns {1} when done, {0, reason} when the worker no longer owns the job (nothing written).
local group, consumer, eid, id = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local problem = ownership_problem(group, consumer, eid, id)
if problem then return {0, problem} end
local now = now_ms()
release(group, eid, id)
redis.call('HSET', job_key(id), 'status', 'completed', 'result', ARGV[6], 'finished_at', now)
redis.call('ZADD', K.completed, now, id)
count_stat('completed', now)
trim_history(K.completed, tonumber(ARGV[7]))
return {1}
