-- Delete a job in any status, with its logs and errors. A running job's entry is released, so
-- its worker's finish is refused.
-- own_key(1..4) the job's record, logs, errors and children set (delete_job_keys deletes them, and
-- takes the job out of its parent's children set, a key known from the record only: asked for with
-- needs_reply, as are the keys of its limit)
-- ARGV[2] consumer group
-- ARGV[3] job id
-- Returns {the status the job had, 1 when the queue was left with nothing and forgotten (see
-- forget_if_empty) else 0}, or false when the job did not exist.
local group, id = ARGV[2], ARGV[3]
local current = redis.call('HMGET', own_key(1), 'status', 'entry')
if not current[1] then return false end
can_delete(id)
need_job_limit(id)
if #NEEDED > 0 then return needs_reply() end
local zkey = status_key(current[1])
if zkey then redis.call('ZREM', zkey, id) end
if current[1] == 'waiting' then unpark(id) end
if current[1] == 'processing' then release_job_slot(id) end
-- A damaged entry field names no stream entry; XDEL would fail on it after the ZREM above, and Lua
-- does not roll back. The real entry, if any, is dropped as stale when it is read.
if current[2] and string.match(current[2], '^%d+%-%d+$') then
  redis.pcall('XACK', K.stream, group, current[2])
  redis.call('XDEL', K.stream, current[2])
end
delete_job_keys(id)
return {current[1], forget_if_empty(group)}
