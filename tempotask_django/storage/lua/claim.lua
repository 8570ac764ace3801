-- Start up to COUNT jobs for one worker: promote due delayed jobs, pop the best waiting jobs,
-- give each a stream entry and deliver the entries to the consumer (the lease).
-- ARGV[2] consumer group
-- ARGV[3] consumer (worker) name
-- ARGV[4] COUNT: how many jobs the worker can start now
-- ARGV[5] history size (for failed records of invalid entries)
-- Returns {jobs, next_due_in_ms, last_wake_id, paused}; jobs is a list of HGETALL replies, each
-- with the stream entry id in its 'entry' field.
local group, consumer, count = ARGV[2], ARGV[3], tonumber(ARGV[4])
local max_failed = tonumber(ARGV[5])
local now = now_ms()
promote_due(now, 1000)
local wake_id = last_wake_id()
if redis.call('EXISTS', K.paused) == 1 then
  return {{}, next_due_in(now), wake_id, 1}
end
local popped = redis.call('ZPOPMIN', K.waiting, count)
local fresh = 0
for i = 1, #popped, 2 do
  local id = popped[i]
  local jk = job_key(id)
  if redis.call('EXISTS', jk) == 1 then
    local eid = redis.call('XADD', K.stream, '*', 'job', id)
    redis.call('HSET', jk, 'status', 'processing', 'entry', eid)
    fresh = fresh + 1
  end
end
local jobs = {}
-- Usually one read delivers exactly the fresh entries; older undelivered ones (foreign writers, a
-- recreated group) come first and are handled too, so loop a bounded number of times.
for _ = 1, 10 do
  local entries = read_new_entries(group, consumer, math.max(count, 1))
  if #entries == 0 then break end
  for _, entry in ipairs(entries) do
    local job = start_entry(group, consumer, entry[1], entry[2], now, max_failed)
    if job then jobs[#jobs + 1] = job end
  end
  if #jobs >= fresh then break end
end
return {jobs, next_due_in(now), wake_id, 0}
