-- Run a failed, cancelled (or delayed) job again now, with a fresh set of attempts; its errors are kept.
-- own_key(1) the job's record
-- ARGV[2] job id
-- Returns the status the job had, or false when it did not exist.
local id = ARGV[2]
local jk = job_key(id)
local current = redis.call('HMGET', jk, 'status', 'priority')
if not current[1] then return false end
if current[1] ~= 'failed' and current[1] ~= 'cancelled' and current[1] ~= 'delayed' then return current[1] end
redis.call('ZREM', status_key(current[1]), id)
redis.call('HSET', jk, 'attempt', 0)
redis.call('HDEL', jk, 'finished_at', 'run_at', 'result', 'cancel_requested')
make_waiting(id, priority_of(current[2]))
return current[1]
