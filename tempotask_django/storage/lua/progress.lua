-- Store a running job's progress, only while the attempt that reports it still runs (a worker that
-- lost the job cannot overwrite the new owner's progress, nor bring back a deleted record).
-- own_key(1) the job's record
-- ARGV[2] the attempt's stream entry id
-- ARGV[3] the progress, a JSON object; its time "t" (server clock) is added first here
-- Returns 1 when stored, 0 when the attempt is over.
local jk = own_key(1)
local current = redis.call('HMGET', jk, 'status', 'entry')
if current[1] ~= 'processing' or current[2] ~= ARGV[2] then return 0 end
local rest = string.sub(ARGV[3], 2)
redis.call('HSET', jk, 'progress', '{"t":' .. now_ms() .. (string.match(rest, '^%s*}') and '' or ',') .. rest)
return 1
