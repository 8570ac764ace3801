-- Pause or resume a cron schedule.
-- ARGV[2] schedule name (its hash is BASE .. 'cron:' .. name)
-- ARGV[3] 'pause' or 'resume'
-- ARGV[4] now in ms (0 = the server clock)
-- A resumed schedule fires from its next tick on: ticks that passed while it was paused are not
-- caught up ('since' moves to now).
-- Returns 1 when the schedule exists, 0 when it does not.
local key = BASE .. 'cron:' .. ARGV[2]
if redis.call('EXISTS', key) == 0 then return 0 end
local now = tonumber(ARGV[4])
if now == 0 then now = now_ms() end
if ARGV[3] == 'pause' then
  redis.call('HSET', key, 'paused', now)
else
  redis.call('HDEL', key, 'paused')
  local since = tonumber(redis.call('HGET', key, 'since') or '0')
  redis.call('HSET', key, 'since', math.max(since, now))
end
return 1
