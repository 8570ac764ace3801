-- Appended to every queue script by scripts.py, after the script itself, which runs as the function
-- script_body: a call sent again after its reply was lost must not act twice.
-- A call whose LAST key is the queue's BASE .. 'reply:' .. <request id> (scripts.py adds one to
-- every script not in RESENT_WITHOUT_REQUEST_ID) stores its reply there; the same call sent again
-- finds it and returns it without running again. The caller deletes the key once it has the
-- reply; REPLY_TTL_MS only cleans up after callers that never got it (they died, or gave up).
-- No other key can start with 'reply:' after the base (storage/keys.py), so a call without a
-- request id is never mistaken for one.
local REPLY_TTL_MS = 300000
local reply_key = KEYS[#KEYS]
local reply_kind = BASE .. 'reply:'
if reply_key == nil or string.sub(reply_key, 1, #reply_kind) ~= reply_kind then return script_body() end
local stored = redis.call('GET', reply_key)
if stored then return cmsgpack.unpack(stored)[1] end
local reply = script_body()
-- MessagePack keeps numbers exact (cjson would round them to 14 digits). A refused SET (OOM) must
-- not turn a done call into an error: the reply goes back all the same.
redis.pcall('SET', reply_key, cmsgpack.pack({reply}), 'PX', REPLY_TTL_MS)
return reply
