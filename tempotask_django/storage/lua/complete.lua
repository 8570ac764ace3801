-- Finish running jobs successfully, each only if the calling worker still owns it.
-- Declared: each job's record, and the keys of the limits of the jobs that have one (asked for:
-- needs_reply). The history is trimmed by trim.lua, called after it.
-- ARGV[2] consumer group
-- ARGV[3] consumer (worker) name
-- ARGV[4] history size (unused: trim.lua trims)
-- ARGV[5..] three values per job: stream entry id, job id, result (JSON)
-- Returns one reply per job, in order: 1 when done, else the reason it was refused (nothing written
-- for that job). Every ownership is checked before the first write.
local group, consumer, max_kept = ARGV[2], ARGV[3], tonumber(ARGV[4])
local replies, owned, eids = {}, {}, {}
for i = 5, #ARGV, 3 do eids[#eids + 1] = ARGV[i] end
local held = #eids > 1 and held_by(group, consumer, eids) or nil
for i = 5, #ARGV, 3 do
  local problem = ownership_problem(group, consumer, ARGV[i], ARGV[i + 1], held)
  replies[#replies + 1] = problem or 1
  if not problem then owned[#owned + 1] = i end
end
if #owned == 0 then return replies end
for _, i in ipairs(owned) do need_job_limit(ARGV[i + 1]) end
if #NEEDED > 0 then return needs_reply() end
local now = now_ms()
-- The stream, processing and completed writes take every job at once (variadic commands).
local eids, ids, scored = {}, {}, {}
for _, i in ipairs(owned) do
  local id = ARGV[i + 1]
  eids[#eids + 1], ids[#ids + 1] = ARGV[i], id
  scored[#scored + 1], scored[#scored + 2] = now, id
  local jk = job_key(id)
  release_slot(id, count_job(jk, 'completed', now, true))
  redis.call('HDEL', jk, 'entry')
  redis.call('HSET', jk, 'status', 'completed', 'result', ARGV[i + 2], 'finished_at', now)
end
redis.call('XACK', K.stream, group, unpack(eids))
redis.call('XDEL', K.stream, unpack(eids))
redis.call('ZREM', K.processing, unpack(ids))
redis.call('ZADD', K.completed, unpack(scored))
count_stat('completed', now, #owned)
return replies
