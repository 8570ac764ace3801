-- Fire one cron tick, or run a schedule now: record it and enqueue its job in one step.
-- This script is what makes a tick fire once whichever beats call it, however often: a tick fires
-- only when it is later than the last tick decided (fired, missed or skipped while paused) and than
-- the schedule's start, by the server clock. Job-id dedup alone would not do: a finished job's id
-- can be used again.
-- own_key(1) the schedule's hash; own_key(2..5) the job's record, logs, errors and children set (a
-- finished job with its id is deleted: enqueue_job)
-- ARGV[2] schedule name
-- ARGV[3] mode: 'tick' (a beat firing a tick) or 'now' (run now: no tick, ignores pause)
-- ARGV[4] tick, ms (mode 'tick')
-- ARGV[5] next run after this tick, ms (0 = leave as it is)
-- ARGV[6] now in ms (0 = the server clock; tests pass a fake clock)
-- ARGV[7] catch-up window, ms: a tick later than this is missed, not fired
-- ARGV[8] job id
-- ARGV[9] job priority
-- ARGV[10..] the job record's values, in the order of JOB_FIELDS (lib.lua)
-- Returns {outcome, job status, now, new_queue}: outcome is 'fired', 'ran' (mode 'now'), 'not-due',
-- 'done' (already decided, by this or another beat), 'paused', 'missed' or 'unknown' (no such
-- schedule); new_queue is 1 when the job's queue had no mark of use (the caller registers it).
local key = own_key(1)
local mode = ARGV[3]
local tick = tonumber(ARGV[4])
local now = tonumber(ARGV[6])
if now == 0 then now = now_ms() end
local state = redis.call('HMGET', key, 'since', 'last_tick', 'paused')
if not state[1] then return {'unknown', '', now, 0} end
if mode == 'tick' then
  if tick > now then return {'not-due', '', now, 0} end
  if tick <= math.max(tonumber(state[1]), tonumber(state[2] or '0')) then return {'done', '', now, 0} end
  redis.call('HSET', key, 'last_tick', tick)
  if tonumber(ARGV[5]) > 0 then redis.call('HSET', key, 'next_run', ARGV[5]) end
  if state[3] then return {'paused', '', now, 0} end
  if now - tick > tonumber(ARGV[7]) then
    redis.call('HSET', key, 'last_missed', tick)
    return {'missed', '', now, 0}
  end
end
local new_queue = mark_queue_used()
local added = enqueue_job(ARGV[8], 10, tonumber(ARGV[9]), 0, now)
if added[1] == 1 and added[2] == 'waiting' then ring_doorbell(ARGV[8]) end
if mode == 'tick' then redis.call('HSET', key, 'last_run', tick) end
redis.call('HSET', key, 'last_job_id', ARGV[8], 'last_enqueued_at', now)
redis.call('HINCRBY', key, 'runs', 1)
return {mode == 'tick' and 'fired' or 'ran', added[2], now, new_queue}
