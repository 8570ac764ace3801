-- Read-only: the counts and health of one queue, for queue_stats() and the admin overview.
-- Declared: the records of the oldest waiting jobs (asked for: needs_reply).
-- ARGV[2] consumer group
-- ARGV[3] most priority bands to visit when looking for the oldest waiting job
-- Returns {now_ms, waiting, delayed, processing, completed, failed, cancelled, paused (0/1), consumers,
--          next_since_ms, oldest_since_ms, parked}; next/oldest are false when nothing waits.
-- waiting counts the jobs held back by a rate or concurrency limit too (parked: status waiting,
-- out of the claimable set; lua/limits.lua), parked counts those alone, over the first
-- STATS_LIMITS limits holding jobs (their parked sets declared: asked for).
-- "since" is when a job last entered waiting: the latest of its enqueue, due and last-failure times.
local group, max_bands = ARGV[2], tonumber(ARGV[3])
local now = now_ms()

local function waiting_since(id)
  if not need('job', id) then return false end
  local t = redis.call('HMGET', job_key(id), 'enqueued_at', 'run_at', 'finished_at')
  local since = false
  for _, value in ipairs(t) do
    local n = tonumber(value)
    if n and (not since or n > since) then since = n end
  end
  return since
end

local consumers = 0
local groups = redis.pcall('XINFO', 'GROUPS', K.stream)
if type(groups) == 'table' and not groups.err then
  for _, info in ipairs(groups) do
    if entry_field(info, 'name') == group then consumers = tonumber(entry_field(info, 'consumers')) end
  end
end

-- The waiting set is ordered by priority band, then FIFO sequence within a band (see make_waiting),
-- so the job that entered first is the lowest sequence among the heads of the bands.
local next_since, oldest_since = false, false
local oldest_seq, oldest_id = nil, nil
local start = '-inf'
for band_index = 1, max_bands do
  local head = redis.call('ZRANGEBYSCORE', K.waiting, start, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #head == 0 then break end
  local score = tonumber(head[2])
  local band = math.floor(score / PRIORITY_BAND)
  local seq = score - band * PRIORITY_BAND
  if band_index == 1 then next_since = waiting_since(head[1]) end
  if not oldest_seq or seq < oldest_seq then oldest_seq, oldest_id = seq, head[1] end
  start = string.format('%.0f', (band + 1) * PRIORITY_BAND)
end
if oldest_id then oldest_since = waiting_since(oldest_id) end

local STATS_LIMITS = 100
local parked = 0
for _, limit in ipairs(redis.call('ZRANGE', K.limited, 0, STATS_LIMITS - 1)) do
  if need('parked', limit) then parked = parked + redis.call('ZCARD', key_of('parked', limit)) end
end
-- Asks once (a first call declares no keys of its own); sent again, it reads what it was given: the
-- head may have moved meanwhile (workers claim), and a time it cannot read is reported as none.
if #NEEDED > 0 and #KEYS == QUEUE_KEY_COUNT then return needs_reply() end

return {
  now,
  redis.call('ZCARD', K.waiting) + parked, redis.call('ZCARD', K.delayed), redis.call('ZCARD', K.processing),
  redis.call('ZCARD', K.completed), redis.call('ZCARD', K.failed), redis.call('ZCARD', K.cancelled),
  redis.call('EXISTS', K.paused), consumers, next_since, oldest_since, parked,
}
