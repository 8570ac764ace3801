-- Fire one cron tick, release a tick held by overlap "queue", or run a schedule now: record it and
-- enqueue its job in one step.
-- This script is what makes a tick fire once whichever beats call it, however often: a tick fires
-- only when it is later than the last tick decided (fired, missed, skipped) and than the start of
-- the schedule's version, by the server clock. Job-id dedup alone would not do: a finished job's id
-- can be used again.
-- Versions (runtime schedules, changed from the admin or the API): every change bumps 'gen' and
-- starts the new version at 'changed_at'. A beat passes the version it computed the tick from: the
-- current one fires ticks after 'since'; the one just before it only the ticks it owned, in
-- ('prev_since', 'changed_at']; any other is 'stale' (its beat has not seen a change yet).
-- own_key(1) the schedule's hash; own_key(2..5) the job's record, logs, errors and children set (a
-- finished job with its id is deleted: enqueue_job); own_key(6) the record of the schedule's last
-- job as the beat knows it (overlap: checked against 'last_job_id', 'recheck' when it differs);
-- own_key(7) the schedule's history (LIST of JSON events)
-- ARGV[2] schedule name
-- ARGV[3] mode: 'tick' (a beat firing a tick), 'release' (a tick held by overlap "queue") or 'now'
--         (run now: no tick, ignores pause and overlap)
-- ARGV[4] tick, ms (modes 'tick' and 'release')
-- ARGV[5] next run after this tick, ms (0 = leave as it is)
-- ARGV[6] now in ms (0 = the server clock; tests pass a fake clock)
-- ARGV[7] catch-up window, ms: a tick later than this is missed, not fired
-- ARGV[8] job id
-- ARGV[9] job priority
-- ARGV[10] the version the beat computed the tick from (-1: a code schedule, no version check)
-- ARGV[11..] the job record's values, in the order of JOB_FIELDS (lib.lua)
-- Returns {outcome, job status, now, new_queue, last job id, held tick ms}: outcome is 'fired',
-- 'ran' (mode 'now'), 'released', 'not-due', 'done' (already decided, by this or another beat),
-- 'paused', 'missed', 'skipped' / 'held' (overlap), 'recheck' (own_key(6) is not the last job's
-- record: nothing written, call again with it), 'stale' or 'unknown' (no such schedule); new_queue
-- is 1 when the job's queue had no mark of use (the caller registers it).
local HISTORY_KEEP = 200
local key, history = own_key(1), own_key(7)
local mode = ARGV[3]
local tick = tonumber(ARGV[4])
local now = tonumber(ARGV[6])
if now == 0 then now = now_ms() end
local gen = tonumber(ARGV[10])
local s = redis.call('HMGET', key, 'since', 'last_tick', 'paused', 'gen', 'changed_at', 'prev_since', 'deleted',
  'overlap', 'last_job_id', 'held_tick')
local last_job, held = s[9] or '', tonumber(s[10] or '0')
local function reply(outcome, status, new_queue)
  return {outcome, status or '', now, new_queue or 0, last_job, held}
end
local function note(event, at)
  redis.call('RPUSH', history, cjson.encode({t = now, tick = at, event = event}))
  redis.call('LTRIM', history, -HISTORY_KEEP, -1)
end
if not s[1] then return reply('unknown') end
if mode == 'now' and s[7] then return reply('unknown') end
local floor = tonumber(s[1])
local current = tonumber(s[4] or '0')
if mode ~= 'now' and gen >= 0 and gen ~= current then
  if gen ~= current - 1 or tick > tonumber(s[5] or '0') then return reply('stale') end
  floor = tonumber(s[6] or '0')
elseif mode ~= 'now' and s[7] then
  return reply('stale')
end

-- Overlap: is the schedule's previous run still waiting or processing?
local function previous_active()
  if (s[8] or 'allow') == 'allow' or last_job == '' then return false end
  local status = redis.call('HGET', own_key(6), 'status')
  return status == 'waiting' or status == 'delayed' or status == 'processing'
end
if mode ~= 'now' and (s[8] or 'allow') ~= 'allow' and last_job ~= '' and not (has_key('job', last_job) and key_of('job', last_job) == own_key(6)) then
  return reply('recheck')
end

-- A finished job with the job's id is deleted by enqueue_job: its parent's children set is asked
-- for first (needs_reply), before anything is written.
if not can_replace(ARGV[8]) or (ARGV[17] ~= '' and not need('children', ARGV[17])) then return needs_reply() end

if mode == 'release' then
  if held ~= tick then return reply('done') end
  if s[3] then return reply('paused') end
  if previous_active() then return reply('held') end
  held = 0
  redis.call('HDEL', key, 'held_tick')
  note('released', tick)
elseif mode == 'tick' then
  if tick > now then return reply('not-due') end
  if tick <= math.max(floor, tonumber(s[2] or '0')) then return reply('done') end
  redis.call('HSET', key, 'last_tick', tick)
  -- A code schedule (gen -1) or the current version moves next_run on; an older version's beat does not.
  if tonumber(ARGV[5]) > 0 and (gen < 0 or gen == current) then redis.call('HSET', key, 'next_run', ARGV[5]) end
  -- Paused: the ticks after the pause are skipped (one before it, offered late, is still owed).
  if s[3] and tick > tonumber(s[3]) then return reply('paused') end
  if now - tick > tonumber(ARGV[7]) then
    redis.call('HSET', key, 'last_missed', tick)
    note('missed', tick)
    return reply('missed')
  end
  if previous_active() then
    if s[8] == 'queue' and held == 0 then
      held = tick
      redis.call('HSET', key, 'held_tick', tick)
      note('held', tick)
      return reply('held')
    end
    redis.call('HINCRBY', key, 'skipped', 1)
    redis.call('HSET', key, 'last_skipped', tick)
    note('skipped', tick)
    return reply('skipped')
  end
  if held > 0 then
    -- The previous run ended and this tick came before any beat released the held one: this one
    -- runs, the older one is dropped (at most one run waits).
    redis.call('HDEL', key, 'held_tick')
    redis.call('HINCRBY', key, 'skipped', 1)
    redis.call('HSET', key, 'last_skipped', held)
    note('skipped', held)
    held = 0
  end
end
local new_queue = mark_queue_used()
local added = enqueue_job(ARGV[8], 11, tonumber(ARGV[9]), 0, now)
if added[1] == 1 and added[2] == 'waiting' then ring_doorbell(ARGV[8]) end
if mode ~= 'now' then redis.call('HSET', key, 'last_run', tick) end
last_job = ARGV[8]
redis.call('HSET', key, 'last_job_id', ARGV[8], 'last_enqueued_at', now)
redis.call('HINCRBY', key, 'runs', 1)
local outcome = 'fired'
if mode == 'now' then outcome = 'ran' elseif mode == 'release' then outcome = 'released' end
return reply(outcome, added[2], new_queue)
