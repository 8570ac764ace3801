-- Appended to every queue script by scripts.py, after the script itself, which runs as the function
-- script_body: a call sent again after its reply was lost must not act twice.
-- A call whose LAST key is the queue's reply key of a request id, P:{Q}:reply:<rid> (scripts.py adds one to
-- every script not in RESENT_WITHOUT_REQUEST_ID) stores its reply there; the same call sent again
-- finds it and returns it without running again. The caller deletes the key once it has the
-- reply; REPLY_TTL_MS only cleans up after callers that never got it (they died, or gave up).
-- No other key has the kind 'reply' (storage/keys.py), so a call without a request id is never
-- mistaken for one.
local REPLY_TTL_MS = 300000
local reply_key = KEYS[#KEYS]
local is_reply_key = false
for _, key in pairs(DECLARED.reply or {}) do
  if key == reply_key then is_reply_key = true end
end
if not is_reply_key then return script_body() end
local stored = redis.call('GET', reply_key)
if stored then return cmsgpack.unpack(stored)[1] end
local reply = script_body()
-- MessagePack keeps numbers exact (cjson would round them to 14 digits). A refused SET (OOM) must
-- not turn a done call into an error: the reply goes back all the same.
redis.pcall('SET', reply_key, cmsgpack.pack({reply}), 'PX', REPLY_TTL_MS)
return reply
