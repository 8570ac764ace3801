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
-- Declared: the records of the entries' jobs (asked for: needs_reply, nothing written).
-- Returns {lost entry ids, entry ids whose job has cancel_requested}.
local group, consumer = ARGV[2], ARGV[3]
local lost, cancelled, plan = {}, {}, {}
for i = 4, #ARGV do
  local eid = ARGV[i]
  local pending = redis.pcall('XPENDING', K.stream, group, eid, eid, 1)
  if type(pending) == 'table' and not pending.err and #pending > 0 and pending[1][2] == consumer then
    local entry = redis.call('XRANGE', K.stream, eid, eid)
    local id = #entry > 0 and entry_field(entry[1][2], 'job') or nil
    if not nameable(id) then id = nil end
    if id then need('job', id) end
    plan[#plan + 1] = {eid, #entry > 0, id}
  else
    lost[#lost + 1] = eid
  end
end
if #NEEDED > 0 then return needs_reply() end
for _, item in ipairs(plan) do
  local eid, id = item[1], item[3]
  if not item[2] then
    redis.call('XACK', K.stream, group, eid)
    lost[#lost + 1] = eid
  else
    redis.call('XCLAIM', K.stream, group, consumer, 0, eid, 'JUSTID')
    if id and redis.call('HEXISTS', job_key(id), 'cancel_requested') == 1 then cancelled[#cancelled + 1] = eid end
  end
end
return {lost, cancelled}
