-- Add jobs, each unless its id is active (each job is deduplicated on its own), and ring the
-- doorbell once for all of them. The waiting ones get their FIFO numbers from one INCRBY and go
-- into the waiting set with one ZADD; the delayed ones with another.
-- Declared: each job's record and, for a job with a parent, the parent's children set; a finished
-- job with a given id is deleted first, so its logs, errors and children sets too (asked for when
-- one is found: needs_reply, nothing written).
-- ARGV[2..] per job: id; '1' when the id was given by the caller (checked against active jobs) or
--   '0' when it is new (a random id); priority (integer, higher runs first); delay in ms from the
--   server's now (0 = none); absolute due time in ms (0 = none; wins over the delay); then the
--   record's values in the order of JOB_FIELDS (lib.lua)
-- Returns {replies, new_queue}: one {added, status, now} per job, in order ({1, status, now} when
-- added (now: its enqueued_at), {0, status, now} when an active job already has its id), and
-- new_queue 1 when the queue had no mark of use (see mark_queue_used): the caller registers it.
local i = 2
while i <= #ARGV do
  if ARGV[i + 1] == '1' then can_replace(ARGV[i]) end
  need('job', ARGV[i])
  local parent = ARGV[i + 5 + 6]
  if parent ~= '' then need('children', parent) end
  i = i + 5 + #JOB_FIELDS
end
if #NEEDED > 0 then return needs_reply() end
local now = now_ms()
local new_queue = mark_queue_used()
local replies, waiting, delayed = {}, {}, {}
i = 2
while i <= #ARGV do
  local id, checked = ARGV[i], ARGV[i + 1] == '1'
  local priority, delay, due = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  if due == 0 and delay > 0 then due = now + delay end
  local active = checked and active_status(id) or nil
  if active then
    replies[#replies + 1] = {0, active, now}
  elseif write_record(id, i + 5, priority, due, now) then
    delayed[#delayed + 1], delayed[#delayed + 2] = due, id
    replies[#replies + 1] = {1, 'delayed', now}
  else
    waiting[#waiting + 1] = {id, priority}
    replies[#replies + 1] = {1, 'waiting', now}
  end
  i = i + 5 + #JOB_FIELDS
end
if #delayed > 0 then redis.call('ZADD', K.delayed, unpack(delayed)) end
if #waiting > 0 then
  local seq = redis.call('INCRBY', K.seq, #waiting) - #waiting
  local scored = {}
  for n, job in ipairs(waiting) do
    scored[#scored + 1], scored[#scored + 2] = -job[2] * PRIORITY_BAND + seq + n, job[1]
  end
  redis.call('ZADD', K.waiting, unpack(scored))
  ring_doorbell(waiting[#waiting][1])
end
return {replies, new_queue}
