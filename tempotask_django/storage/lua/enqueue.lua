-- Add jobs, each unless its id is active (each job is deduplicated on its own), and ring the
-- doorbell once for all of them.
-- ARGV[2..] per job: id, priority (integer, higher runs first), delay in ms from the server's now
--   (0 = none), absolute due time in ms (0 = none; wins over the delay), N = how many field values
--   follow, then the N values (name, value, name, value ...)
-- Returns one {added, status} per job, in order: {1, status} when added, {0, status} when an active
-- job already has its id.
local now = now_ms()
local replies, rung_for = {}, nil
local i = 2
while i <= #ARGV do
  local id, priority, delay, due = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local n = tonumber(ARGV[i + 4])
  local fields = {}
  for j = i + 5, i + 4 + n do fields[#fields + 1] = ARGV[j] end
  i = i + 5 + n
  if due == 0 and delay > 0 then due = now + delay end
  local reply = enqueue_job(id, fields, priority, due, now)
  if reply[1] == 1 and reply[2] == 'waiting' then rung_for = id end
  replies[#replies + 1] = reply
end
if rung_for then ring_doorbell(rung_for) end
return replies
