-- Create or change a runtime schedule (one managed from the admin or the API, not from the code):
-- a new version that starts now, by the server clock. Ticks up to now stay the previous version's
-- (beats that have not seen the change may still fire those, and only those: cron_fire.lua).
-- own_key(1) the schedule's hash; own_key(2) its history (LIST of JSON events)
-- ARGV[2] schedule name
-- ARGV[3] 'add' (refused when the schedule exists) or 'update' (refused when it does not);
--         'move' is an update arriving from another queue (the hash here may not exist)
-- ARGV[4] now in ms (0 = the server clock)
-- ARGV[5] last tick carried over from the schedule's previous queue, ms (0 = none)
-- ARGV[6] version carried over from the previous queue (0 = none)
-- ARGV[7] what changed, for the history (JSON)
-- ARGV[8..] definition fields: name, value, ... ('paused' among them when a paused schedule moves)
-- Returns {'ok', version, now} or {error, '', now}: 'exists', 'missing', 'not-runtime' (a code or
-- settings schedule has this name). Nothing is written unless 'ok'.
local key, history = own_key(1), own_key(2)
local mode = ARGV[3]
local now = tonumber(ARGV[4])
if now == 0 then now = now_ms() end
local old = redis.call('HMGET', key, 'gen', 'since', 'source', 'deleted', 'last_tick', 'held_tick')
local exists = old[2] ~= false and not old[4]
if exists and old[3] ~= 'runtime' then return {'not-runtime', '', now} end
if mode == 'add' and exists then return {'exists', '', now} end
if mode == 'update' and not exists then return {'missing', '', now} end
local gen = math.max(tonumber(old[1] or '0'), tonumber(ARGV[6])) + 1
local fields = {}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', key, unpack(fields))
redis.call('HSET', key, 'source', 'runtime', 'gen', gen, 'prev_since', old[2] or 0, 'since', now,
  'changed_at', now, 'updated_at', now)
redis.call('HDEL', key, 'deleted', 'held_tick')
-- A schedule created again over a tombstone starts unpaused (a move brings its pause with it).
if mode == 'add' then redis.call('HDEL', key, 'paused') end
local carried = tonumber(ARGV[5])
if carried > tonumber(old[5] or '0') then redis.call('HSET', key, 'last_tick', carried) end
redis.call('PERSIST', key)
redis.call('PERSIST', history)
if old[6] then
  redis.call('RPUSH', history, cjson.encode({t = now, tick = tonumber(old[6]), event = 'dropped'}))
end
redis.call('RPUSH', history, cjson.encode({t = now, event = exists and 'changed' or 'created', change = ARGV[7]}))
redis.call('LTRIM', history, -200, -1)
return {'ok', gen, now}
