-- Start up to COUNT jobs for one worker: promote due delayed jobs and the parked jobs their limits
-- let go (limits.lua), pop the best waiting jobs, give each a stream entry and deliver the entries
-- to the consumer (the lease). A popped job over its task's rate or concurrency limit is parked
-- instead (still 'waiting', no attempt counted) and the next best is popped: bounded rounds.
-- The queue's own rate limit (ARGV[6]) caps how many are popped at all; its log is own_key(1).
-- A fresh entry that a read did not deliver (bounded loop below) stays in the stream with its job
-- already processing and its attempt counted; the next read of any worker delivers it (start_entry).
-- Keys: own_key(1) the queue's rate log, then the records of the jobs it may start and the keys of
-- their limits, as the caller knows them: store.py declares those the previous claim named. The
-- jobs are found here, so a job whose keys are not declared is left as it is (a due delayed job
-- stays delayed, a popped waiting job goes back with its score, a due limit stays due, an entry of
-- another writer that the read delivered stays pending, named in the reply and passed back in
-- ARGV[7..]) and its keys are named in the reply, with the next waiting jobs: the caller claims
-- again with them declared.
-- ARGV[2] consumer group
-- ARGV[3] consumer (worker) name
-- ARGV[4] COUNT: how many jobs the worker can start now
-- ARGV[5] history size (for failed records of invalid entries)
-- ARGV[6] the queue's rate limit 'N/W' (N starts in any W ms), '' when none
-- ARGV[7..] entries delivered to this consumer by an earlier claim and not started for lack of keys
-- Returns {jobs, next_due_in_ms, last_wake_id, paused, needed, lacked, unstarted}; jobs is a list of
-- HGETALL replies, each with the stream entry id in its 'entry' field; needed the {kind, id} pairs
-- of the keys to declare in the next claim; lacked 1 when it left jobs it could start for lack of
-- keys (the caller claims again at once); unstarted the delivered entries it could not start yet.
local group, consumer, count = ARGV[2], ARGV[3], tonumber(ARGV[4])
local max_failed = tonumber(ARGV[5])
local now = now_ms()
promote_due(now, 1000, count)
if redis.call('EXISTS', K.limited) == 1 then unpark_due(now) end
local wake_id = last_wake_id()
local jobs, unstarted = {}, {}
-- Delivered to this consumer and not started yet: started now if its keys are declared.
local function start_delivered(eid, fields)
  if not need_entry(eid) then
    unstarted[#unstarted + 1] = eid
    return
  end
  local job = start_entry(group, consumer, eid, fields, now, max_failed, true)
  if job then jobs[#jobs + 1] = job end
end
if redis.call('EXISTS', K.paused) == 1 then
  for i = 7, #ARGV do unstarted[#unstarted + 1] = ARGV[i] end  -- started once the queue is resumed
  return {jobs, next_due_in(now), wake_id, 1, NEEDED, 0, unstarted}
end
for i = 7, #ARGV do
  local eid = ARGV[i]
  local pending = redis.pcall('XPENDING', K.stream, group, eid, eid, 1)
  if type(pending) == 'table' and not pending.err and #pending > 0 and pending[1][2] == consumer then
    local entry = redis.call('XRANGE', K.stream, eid, eid)
    if #entry > 0 then start_delivered(eid, entry[1][2]) end
  end
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
-- A popped job whose keys are not declared goes back with its score once the popping is over
-- (no round pops it again), and stops the popping once there are as many as the batch.
local fresh, n_fresh, scored, parked, back = {}, 0, {}, 0, {}
for _ = 1, 10 do
  if n_fresh >= want or #back >= 2 * want then break end
  local asked = want - n_fresh
  local popped = redis.call('ZPOPMIN', K.waiting, asked)
  for i = 1, #popped, 2 do
    local id = popped[i]
    if not nameable(id) then  -- names no job of ours: dropped, as an id without a record is
    elseif not need('job', id) then
      back[#back + 1], back[#back + 2] = popped[i + 1], id
    else
      local jk = job_key(id)
      local job = redis.call('HGETALL', jk)
      -- One pass over the fields finds both the attempt and the limit (most jobs have none).
      local attempt_field, limited = nil, nil
      for f = 1, #job, 2 do
        local name = job[f]
        if name == 'attempt' then attempt_field = job[f + 1] elseif name == 'limit' then limited = job[f + 1] end
      end
      if limited and not limit_ready(limited) then  -- its limit's keys are not declared (named in NEEDED)
        back[#back + 1], back[#back + 2] = popped[i + 1], id
      elseif limited and park_or_take(id, popped[i + 1], job, now) then
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
  end
  if #popped < 2 * asked then break end -- the waiting set is empty
end
if #back > 0 then redis.call('ZADD', K.waiting, unpack(back)) end
-- Parked jobs took rounds: if the rounds ran out before the waiting set did, say there is more.
if parked > 0 and n_fresh < want and #back == 0 and redis.call('EXISTS', K.waiting) == 1 then
  ring_doorbell('limits')
end
if #scored > 0 then redis.call('ZADD', K.processing, unpack(scored)) end
local delivered = 0
-- Usually one read delivers exactly the fresh entries; older undelivered ones (foreign writers, a
-- recreated group) come first and are handled too when their keys are declared, so loop a bounded
-- number of times.
for _ = 1, 10 do
  local entries = read_new_entries(group, consumer, math.max(count, 1))
  if #entries == 0 then break end
  for _, entry in ipairs(entries) do
    local job = fresh[entry[1]]
    if job then
      delivered = delivered + 1
      jobs[#jobs + 1] = job
    else
      start_delivered(entry[1], entry[2])
    end
  end
  if delivered >= n_fresh then break end
end
-- Keys were missing for jobs it could start now: the caller claims again at once with them.
local lacked = #NEEDED > 0 and 1 or 0
-- The next jobs to start, for the next claim.
if count > 0 then
  for _, id in ipairs(redis.call('ZRANGE', K.waiting, 0, count - 1)) do need('job', id) end
end
local due = next_due_in(now)
if queue_due >= 0 and (due < 0 or queue_due < due) then due = queue_due end
return {jobs, due, wake_id, 0, NEEDED, lacked, unstarted}
