-- Create or update a code or settings schedule's definition; its state (last tick, pause...) survives.
-- own_key(1) the schedule's hash (P:{Q}:cron:<name>)
-- ARGV[2] schedule name
-- ARGV[3] now in ms (0 = the server clock; tests pass a fake clock)
-- ARGV[4] next run, ms
-- ARGV[5] last tick carried over from the schedule's previous queue, ms (0 = none)
-- ARGV[6..] definition fields: name, value, ... (including expression and timezone)
-- Returns 1 when the schedule is new (or its expression or timezone changed), 0 when not, -1 when a
-- runtime schedule has this name (nothing is written: the code never replaces one).
local key = own_key(1)
local now = tonumber(ARGV[3])
if now == 0 then now = now_ms() end
local fields, definition = {}, {}
for i = 6, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  definition[ARGV[i]] = ARGV[i + 1]
end
local old = redis.call('HMGET', key, 'expression', 'timezone', 'since', 'last_tick', 'source', 'deleted')
if old[5] == 'runtime' and not old[6] then return -1 end
local fresh = (not old[3]) or old[6] or old[1] ~= definition.expression or old[2] ~= definition.timezone
if fresh then
  -- A new or changed schedule starts now: ticks before this moment are not caught up.
  redis.call('HSET', key, 'since', now)
end
if old[6] then
  -- The tombstone of a deleted runtime schedule: the code's schedule replaces it for good.
  redis.call('HDEL', key, 'deleted', 'held_tick')
  redis.call('PERSIST', key)
end
redis.call('HSET', key, unpack(fields))
redis.call('HSET', key, 'next_run', ARGV[4], 'updated_at', now)
local carried = tonumber(ARGV[5])
if carried > tonumber(old[4] or '0') then redis.call('HSET', key, 'last_tick', carried) end
return fresh and 1 or 0
