-- Pause or resume a cron schedule.
-- own_key(1) the schedule's hash; own_key(2) its history (LIST of JSON events)
-- ARGV[2] schedule name
-- ARGV[3] 'pause' or 'resume'
-- ARGV[4] now in ms (0 = the server clock)
-- A paused schedule fires no tick after the pause; a tick held by overlap "queue" is dropped. A
-- resumed schedule fires from its next tick on: ticks that passed while it was paused are not
-- caught up ('since' moves to now).
-- Returns 1 when the schedule exists, 0 when it does not.
local key, history = own_key(1), own_key(2)
if redis.call('EXISTS', key) == 0 or redis.call('HEXISTS', key, 'deleted') == 1 then return 0 end
local now = tonumber(ARGV[4])
if now == 0 then now = now_ms() end
local state = redis.call('HMGET', key, 'paused', 'held_tick')
if ARGV[3] == 'pause' then
  if not state[1] then redis.call('HSET', key, 'paused', now) end
  if state[2] then
    redis.call('HDEL', key, 'held_tick')
    redis.call('RPUSH', history, cjson.encode({t = now, tick = tonumber(state[2]), event = 'dropped'}))
  end
else
  redis.call('HDEL', key, 'paused')
  local since = tonumber(redis.call('HGET', key, 'since') or '0')
  redis.call('HSET', key, 'since', math.max(since, now))
end
redis.call('RPUSH', history, cjson.encode({t = now, event = ARGV[3] == 'pause' and 'paused' or 'resumed'}))
redis.call('LTRIM', history, -200, -1)
return 1
