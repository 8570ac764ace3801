-- Forget a queue left with nothing: no job in any status, not paused, no stream entry (pending or
-- not). Its remaining keys (FIFO counter, stream with its consumer group, doorbell) are deleted, so
-- the next job enqueued there marks the queue as new again (mark_queue_used) and registers it; the
-- caller takes the queue out of the global set of queue names.
-- ARGV[2] consumer group
-- Returns 1 when the queue was forgotten, 0 when it still holds something.
local group = ARGV[2]
for _, key in ipairs({K.waiting, K.delayed, K.processing, K.completed, K.failed}) do
  if redis.call('ZCARD', key) > 0 then return 0 end
end
if redis.call('EXISTS', K.paused) == 1 or redis.call('XLEN', K.stream) > 0 then return 0 end
local pending = redis.pcall('XPENDING', K.stream, group)
if type(pending) == 'table' and not pending.err and tonumber(pending[1]) > 0 then return 0 end
redis.call('UNLINK', K.seq, K.stream, K.wake)
return 1
