-- Renew the leases of a worker's running jobs (reset their idle time) without stealing any.
-- ARGV[2] consumer group
-- ARGV[3] consumer (worker) name
-- ARGV[4..] stream entry ids the worker believes it runs
-- Lost: the entry ids the worker no longer owns: taken over, or deleted from the stream while
-- pending (XDEL, XTRIM). A deleted entry cannot be renewed (Redis 7's XCLAIM drops it from the
-- pending list without a word, 6.2 keeps it), so on both versions it is acknowledged here and
-- reported lost: the worker's result will be refused, and sweep.lua sends the job back to waiting.
-- It also reports the renewed entries whose job was asked to stop (cancel.lua sets cancel_requested):
-- the worker missed the notice on the cancel channel (it publishes to whoever listens right then).
-- Returns {lost entry ids, entry ids whose job has cancel_requested}.
local group, consumer = ARGV[2], ARGV[3]
local lost, cancelled = {}, {}
for i = 4, #ARGV do
  local eid = ARGV[i]
  local pending = redis.pcall('XPENDING', K.stream, group, eid, eid, 1)
  if type(pending) == 'table' and not pending.err and #pending > 0 and pending[1][2] == consumer then
    local entry = redis.call('XRANGE', K.stream, eid, eid)
    if #entry == 0 then
      redis.call('XACK', K.stream, group, eid)
      lost[#lost + 1] = eid
    else
      redis.call('XCLAIM', K.stream, group, consumer, 0, eid, 'JUSTID')
      local id = entry_field(entry[1][2], 'job')
      if id and redis.call('HEXISTS', job_key(id), 'cancel_requested') == 1 then cancelled[#cancelled + 1] = eid end
    end
  else
    lost[#lost + 1] = eid
  end
end
return {lost, cancelled}
