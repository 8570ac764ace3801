-- Delete a runtime schedule: a last version that never fires. The hash stays as a tombstone for
-- ARGV[5] seconds so a beat that has not seen the delete yet cannot fire a later tick (nor one
-- already decided, if the name is used again): cron_fire.lua answers 'stale'.
-- own_key(1) the schedule's hash; own_key(2) its history
-- ARGV[2] schedule name
-- ARGV[3] now in ms (0 = the server clock)
-- ARGV[4] 'delete' or 'move' (the schedule moves to another queue: history says so)
-- ARGV[5] tombstone lifetime, s
-- Returns {'ok', last tick ms, version, now} or {'missing'|'not-runtime', 0, 0, now}.
local key, history = own_key(1), own_key(2)
local now = tonumber(ARGV[3])
if now == 0 then now = now_ms() end
local old = redis.call('HMGET', key, 'gen', 'since', 'source', 'deleted', 'last_tick', 'held_tick')
if old[2] == false or old[4] then return {'missing', 0, 0, now} end
if old[3] ~= 'runtime' then return {'not-runtime', 0, 0, now} end
local gen = tonumber(old[1] or '0') + 1
redis.call('HSET', key, 'gen', gen, 'prev_since', old[2], 'since', now, 'changed_at', now, 'deleted', now)
redis.call('HDEL', key, 'held_tick', 'next_run')
redis.call('RPUSH', history, cjson.encode({t = now, event = ARGV[4] == 'move' and 'moved' or 'deleted'}))
redis.call('LTRIM', history, -200, -1)
redis.call('EXPIRE', key, tonumber(ARGV[5]))
redis.call('EXPIRE', history, tonumber(ARGV[5]))
return {'ok', tonumber(old[5] or '0'), gen, now}
