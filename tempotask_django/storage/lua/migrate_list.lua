-- Upgrade: move one job's log or error list from the old layout to the new one (see storage/migration.py).
-- Run alone, without lib.lua: it touches only its two keys.
-- KEYS[1] the old key, P:{Q}:job:<id>:logs or P:{Q}:job:<id>:errors
-- KEYS[2] the new key, P:{Q}:logs:<id> or P:{Q}:errors:<id>
-- Lines already written to the new key (by upgraded workers) stay after the old ones.
-- Returns 1 when moved, 0 when KEYS[1] is not a list (the record of a job whose id ends in ':logs'
-- or ':errors', or already moved), -1 when KEYS[2] holds something else than a list (left alone).
local CHUNK = 1000  -- lines per RPUSH: unpack() has a stack limit
if redis.call('TYPE', KEYS[1]).ok ~= 'list' then return 0 end
local target = redis.call('TYPE', KEYS[2]).ok
if target ~= 'none' and target ~= 'list' then return -1 end
local total = redis.call('LLEN', KEYS[2])
for start = 0, total - 1, CHUNK do
  local lines = redis.call('LRANGE', KEYS[2], start, start + CHUNK - 1)
  redis.call('RPUSH', KEYS[1], unpack(lines))
end
redis.call('RENAME', KEYS[1], KEYS[2])
return 1
