-- Delete consumers of the queue's group that hold no pending entries and have been idle for
-- a while. Redis drops a deleted consumer's pending entries silently, so the check and the delete
-- happen in this one script.
-- ARGV[2] consumer group
-- ARGV[3] minimum idle time in ms
-- ARGV[4] optional: only this consumer name
-- Returns the names deleted.
local group, min_idle, only = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local consumers = redis.pcall('XINFO', 'CONSUMERS', K.stream, group)
if type(consumers) ~= 'table' or consumers.err then return {} end
local deleted = {}
for _, info in ipairs(consumers) do
  local name, pending, idle
  for i = 1, #info, 2 do
    if info[i] == 'name' then name = info[i + 1] end
    if info[i] == 'pending' then pending = tonumber(info[i + 1]) end
    if info[i] == 'idle' then idle = tonumber(info[i + 1]) end
  end
  if pending == 0 and idle >= min_idle and (only == nil or only == '' or only == name) then
    redis.call('XGROUP', 'DELCONSUMER', K.stream, group, name)
    deleted[#deleted + 1] = name
  end
end
return deleted
