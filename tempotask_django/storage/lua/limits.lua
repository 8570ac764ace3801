-- Rate and concurrency limits, second part of the prelude (after lib.lua, before each script).
--
-- A job of a limited task carries its limits in its record (written at enqueue, see JOB_FIELDS):
--   rate   'N/W'  at most N starts in any W ms (by the server clock)
--   maxc   N      at most N running at once
--   limit  the limit id: the task name, or the task name, a space and the value of its limit_key
--          field (task names hold no whitespace, so two ids never mix)
-- and its limit's state lives in three keys (the id is their last part), which a script declares
-- (need_limit) once it knows the limit from a record, or gets from its caller:
--   P:{Q}:rate:<limit>     ZSET  stream entry id -> start ms, the starts of the last W ms (expires)
--   P:{Q}:running:<limit>  ZSET  job id -> start ms, the running jobs holding a slot
--   P:{Q}:parked:<limit>   ZSET  job id -> its waiting score: jobs over the limit, still 'waiting'
-- and K.limited (ZSET) holds each limit with parked jobs, scored by when to look at it again: when
-- the rate frees a start, or a safety recheck for concurrency (a finish that frees a slot makes it due
-- at once). A claim moves the parked jobs of a due limit back to waiting, as many as the limit lets
-- start, keeping their order. Parked jobs leave the claimable path, so they block no other job.

-- How long a limit full on concurrency waits before it is looked at again when no finish frees a
-- slot first (a finish makes it due at once): a safety net, not a poll.
local CONCURRENCY_RECHECK_MS = 5000
-- Most running members checked for a lost slot (a job no longer processing) when a limit is full.
local SLOT_CHECKS = 20
-- Most parked jobs one claim sends back, and limits it looks at: bounded work per call.
local UNPARK_MAX = 200
local UNPARK_LIMITS = 50

local function rate_key(limit) return key_of('rate', limit) end
local function running_key(limit) return key_of('running', limit) end
local function parked_key(limit) return key_of('parked', limit) end

-- Whether the three keys of a limit are declared (need() notes the missing ones); true without one.
local function need_limit(limit)
  if not limit or limit == '' then return true end
  local ready = need('rate', limit)
  ready = need('running', limit) and ready
  return need('parked', limit) and ready
end

-- need_limit for the limit of job id (its record must be declared: it is read).
local function need_job_limit(id)
  return need_limit(redis.call('HGET', job_key(id), 'limit'))
end

-- 'N/W' as two numbers, or nil when malformed (a damaged record is not limited).
local function parse_rate(rate)
  if not rate or rate == '' then return nil end
  local n, w = string.match(rate, '^(%d+)/(%d+)$')
  n, w = tonumber(n), tonumber(w)
  if not n or not w or n < 1 or w < 1 then return nil end
  return n, w
end

-- Starts counted by a rate log at now: those of the closed window [now - w, now], so no closed
-- window of w ms ever holds more than n. Returns the count and the oldest start (now when none).
local function rate_used(key, now, w)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now - w))
  local used = redis.call('ZCARD', key)
  if used == 0 then return 0, now end
  return used, tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
end

-- Add a start to a rate log; the log expires once it can no longer count.
local function rate_add(key, now, w, member)
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, w + 1000)
end

-- Slots of a concurrency limit in use. When it looks full, its oldest members are checked: a job
-- no longer processing (deleted, or ended by something that did not release it) frees its slot.
local function slots_used(limit, maxc)
  local key = running_key(limit)
  local used = redis.call('ZCARD', key)
  if used < maxc then return used end
  for _, id in ipairs(redis.call('ZRANGE', key, 0, SLOT_CHECKS - 1)) do
    -- A member whose record is not declared counts as running (limit_ready declares the first ones).
    if has_key('job', id) and redis.call('HGET', job_key(id), 'status') ~= 'processing' then
      redis.call('ZREM', key, id)
      used = used - 1
    end
  end
  return used
end

-- How many jobs of a limit may start now (at most cap), and when it may start more once that
-- room is taken: when the rate frees a start, now + CONCURRENCY_RECHECK_MS when the slots are full
-- (a finish makes it due sooner), or now when neither limit is reached.
local function limit_room(limit, rate, maxc, now, cap)
  local room, full = cap, false
  local n, w = parse_rate(rate)
  local used, oldest = 0, now
  if n then
    used, oldest = rate_used(rate_key(limit), now, w)
    room = math.min(room, n - used)
  end
  maxc = tonumber(maxc)
  if maxc and maxc >= 1 then
    local free = maxc - slots_used(limit, maxc)
    if free <= room then full, room = true, free end
  end
  room = math.max(room, 0)
  if n and used + room >= n then return room, math.max(oldest + w + 1, now + 1) end
  if full then return room, now + CONCURRENCY_RECHECK_MS end
  return room, now
end

-- A job just popped from waiting (its HGETALL reply job, its waiting score): park it when its limit
-- is full, else take its start and slot. Returns true when parked.
local function park_or_take(id, score, job, now)
  local limit = entry_field(job, 'limit')
  local rate, maxc = entry_field(job, 'rate'), entry_field(job, 'maxc')
  local room, again = limit_room(limit, rate, maxc, now, 1)
  if room < 1 then
    redis.call('ZADD', parked_key(limit), score, id)
    redis.call('ZADD', K.limited, again, limit)
    return true
  end
  return false
end

-- Record that a job of a limit started (after park_or_take let it).
local function take_limit(job, id, eid, now)
  local limit = entry_field(job, 'limit')
  local n, w = parse_rate(entry_field(job, 'rate'))
  if n then rate_add(rate_key(limit), now, w, eid) end
  if (tonumber(entry_field(job, 'maxc')) or 0) >= 1 then redis.call('ZADD', running_key(limit), now, id) end
end

-- A running job of a concurrency limit ended: free its slot, and let a parked job go at once.
local function release_slot(id, maxc, limit)
  if not maxc or not limit then return end
  redis.call('ZREM', running_key(limit), id)
  if redis.call('EXISTS', parked_key(limit)) == 1 then
    redis.call('ZADD', K.limited, 0, limit)
    ring_doorbell(id)
  end
end

-- release_slot for a job whose fields are not at hand.
local function release_job_slot(id)
  local maxc, limit = unpack(redis.call('HMGET', job_key(id), 'maxc', 'limit'))
  release_slot(id, maxc, limit)
end

-- A job deleted while parked leaves its parked set.
local function unpark(id)
  local limit = redis.call('HGET', job_key(id), 'limit')
  if limit then redis.call('ZREM', parked_key(limit), id) end
end

-- Whether the keys a claim needs to look at a limit are declared (need() notes the missing ones):
-- its three keys and the records of the running members slots_used checks.
local function limit_ready(limit)
  if not need_limit(limit) then return false end
  local ready = true
  for _, id in ipairs(redis.call('ZRANGE', running_key(limit), 0, SLOT_CHECKS - 1)) do
    ready = need('job', id) and ready
  end
  return ready
end

-- Send back to waiting, in their order, the parked jobs of the due limits that may start now. A
-- limit whose keys, or its first parked job's record, are not declared is left due (noted: need).
-- Returns how many went back.
local function unpark_due(now)
  local due = redis.call('ZRANGEBYSCORE', K.limited, '-inf', now, 'LIMIT', 0, UNPARK_LIMITS)
  local moved = 0
  for _, limit in ipairs(due) do
    local head = limit_ready(limit) and redis.call('ZRANGE', parked_key(limit), 0, 0) or nil
    if head and (#head == 0 or need('job', head[1])) then
      local pk = parked_key(limit)
      local again = nil
      if #head > 0 then
        local fields = redis.call('HMGET', job_key(head[1]), 'rate', 'maxc')
        local room
        room, again = limit_room(limit, fields[1], fields[2], now, UNPARK_MAX - moved)
        if room > 0 then
          local jobs = redis.call('ZPOPMIN', pk, room)
          local scored = {}
          for i = 1, #jobs, 2 do scored[#scored + 1], scored[#scored + 2] = jobs[i + 1], jobs[i] end
          redis.call('ZADD', K.waiting, unpack(scored))
          moved = moved + #jobs / 2
        end
      end
      if redis.call('EXISTS', pk) == 0 then
        redis.call('ZREM', K.limited, limit)
      else
        redis.call('ZADD', K.limited, again or now, limit)
      end
    end
    if moved >= UNPARK_MAX then break end
  end
  if moved > 0 then ring_doorbell('limits') end
  return moved
end

-- Whether the keys start_entry (and a take-over's error record) may touch for stream entry eid
-- are declared: its job's record, errors and limit keys, or the failed record and errors an
-- invalid entry becomes (need() notes the missing ones). Reads only.
local function need_entry(eid)
  local entry = redis.call('XRANGE', K.stream, eid, eid)
  if #entry == 0 then return true end
  local id = entry_field(entry[1][2], 'job')
  if not nameable(id) then id = nil end  -- an invalid entry (start_entry)
  local ready = true
  if id and need('job', id) and redis.call('EXISTS', key_of('job', id)) == 1 then
    return need('errors', id) and need_job_limit(id)
  end
  if id then ready = need('errors', id) end
  ready = need('job', 'invalid-entry-' .. eid) and ready
  return need('errors', 'invalid-entry-' .. eid) and ready
end
