-- Append a line to a job's log, unless the job is gone (trimmed or deleted meanwhile).
-- own_key(1) the job's record, own_key(2) its log
-- ARGV[2] job id
-- ARGV[3] the message, JSON
-- ARGV[4] log lines kept per job (the newest; MAX_LOG_LINES_PER_JOB)
-- Returns 1 when written, 0 when the job no longer exists.
local jk, logs = own_key(1), own_key(2)
if redis.call('EXISTS', jk) == 0 then return 0 end
local now = now_ms()
redis.call('RPUSH', logs, '{"t":' .. now .. ',"message":' .. ARGV[3] .. '}')
redis.call('LTRIM', logs, -tonumber(ARGV[4]), -1)
return 1
