-- Add one job unless its id is active.
-- ARGV[2] job id
-- ARGV[3] priority (integer, higher runs first)
-- ARGV[4] delay in ms from the server's now (0 = none)
-- ARGV[5] absolute due time in ms (0 = none; wins over the delay)
-- ARGV[6..] job fields: name, value, name, value ...
-- Returns {1, status} when added, {0, status} when an active job already has this id.
local now = now_ms()
local due = tonumber(ARGV[5])
if due == 0 and tonumber(ARGV[4]) > 0 then due = now + tonumber(ARGV[4]) end
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
return enqueue_job(ARGV[2], fields, tonumber(ARGV[3]), due, now)
