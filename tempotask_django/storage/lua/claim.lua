-- Start up to COUNT jobs for one worker: promote due delayed jobs and the parked jobs their limits
-- let go (limits.lua), pop the best waiting jobs, give each a stream entry and deliver the entries
-- to the consumer (the lease). A popped job over its task's rate or concurrency limit is parked
-- instead (still 'waiting', no attempt counted) and the next best is popped: bounded rounds.
-- The queue's own rate limit (ARGV[6]) caps how many are popped at all; its log is own_key(1).
-- A fresh entry that a read did not deliver (bounded loop below) stays in the stream with its job
-- already processing and its attempt counted; the next read of any worker delivers it (start_entry).
-- ARGV[2] consumer group
-- ARGV[3] consumer (worker) name
-- ARGV[4] COUNT: how many jobs the worker can start now
-- ARGV[5] history size (for failed records of invalid entries)
-- ARGV[6] the queue's rate limit 'N/W' (N starts in any W ms), '' when none
-- Returns {jobs, next_due_in_ms, last_wake_id, paused}; jobs is a list of HGETALL replies, each
-- with the stream entry id in its 'entry' field.
BUILDS_KEYS = true  -- not declared yet: the records it pops, the limits it looks at
local group, consumer, count = ARGV[2], ARGV[3], tonumber(ARGV[4])
local max_failed = tonumber(ARGV[5])
local now = now_ms()
promote_due(now, 1000)
if redis.call('EXISTS', K.limited) == 1 then unpark_due(now) end
local wake_id = last_wake_id()
if redis.call('EXISTS', K.paused) == 1 then
  return {{}, next_due_in(now), wake_id, 1}
end
local want, qn, qw = count, parse_rate(ARGV[6])
local queue_due = -1
if qn then
  local used, oldest = rate_used(own_key(1), now, qw)
  want = math.min(count, qn - used)
  if used + want >= qn then queue_due = math.max(oldest + qw + 1 - now, 1) end
end
-- Each popped job becomes a running attempt of this consumer before the read that delivers its
-- entry, so a job is never out of every status set: one HGETALL (which also tells an id without
-- a record, skipped), one XADD, one HSET, and one ZADD for all.
local fresh, n_fresh, scored, parked = {}, 0, {}, 0
for _ = 1, 10 do
  if n_fresh >= want then break end
  local asked = want - n_fresh
  local popped = redis.call('ZPOPMIN', K.waiting, asked)
  for i = 1, #popped, 2 do
    local id = popped[i]
    local jk = job_key(id)
    local job = redis.call('HGETALL', jk)
    -- One pass over the fields finds both the attempt and the limit (most jobs have none).
    local attempt_field, limited = nil, nil
    for f = 1, #job, 2 do
      local name = job[f]
      if name == 'attempt' then attempt_field = job[f + 1] elseif name == 'limit' then limited = true end
    end
    if limited and park_or_take(id, popped[i + 1], job, now) then
      parked = parked + 1
    elseif #job > 0 then
      local eid = redis.call('XADD', K.stream, '*', 'job', id)
      local attempt = next_attempt(attempt_field)
      redis.call('HSET', jk, 'status', 'processing', 'entry', eid, 'id', id, 'worker', consumer,
        'started_at', now, 'attempt', attempt, 'counted', eid)
      if limited then take_limit(job, id, eid, now) end
      if qn then rate_add(own_key(1), now, qw, eid) end
      fresh[eid] = patch_fields(job, {status = 'processing', entry = eid, id = id, worker = consumer,
        started_at = tostring(now), attempt = tostring(attempt), counted = eid})
      n_fresh = n_fresh + 1
      scored[#scored + 1], scored[#scored + 2] = now, id
    end
  end
  if #popped < 2 * asked then break end -- the waiting set is empty
end
-- Parked jobs took rounds: if the rounds ran out before the waiting set did, say there is more.
if parked > 0 and n_fresh < want and redis.call('EXISTS', K.waiting) == 1 then ring_doorbell('limits') end
if #scored > 0 then redis.call('ZADD', K.processing, unpack(scored)) end
local jobs, delivered = {}, 0
-- Usually one read delivers exactly the fresh entries; older undelivered ones (foreign writers, a
-- recreated group) come first and are handled too, so loop a bounded number of times.
for _ = 1, 10 do
  local entries = read_new_entries(group, consumer, math.max(count, 1))
  if #entries == 0 then break end
  for _, entry in ipairs(entries) do
    local job = fresh[entry[1]]
    if job then
      delivered = delivered + 1
    else
      job = start_entry(group, consumer, entry[1], entry[2], now, max_failed, true)
    end
    if job then jobs[#jobs + 1] = job end
  end
  if delivered >= n_fresh then break end
end
local due = next_due_in(now)
if queue_due >= 0 and (due < 0 or queue_due < due) then due = queue_due end
return {jobs, due, wake_id, 0}
