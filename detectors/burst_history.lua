-- Per-account like history for the burst detector, for a whole batch in one call: fold the
-- batch's likes into the histories of the accounts that record them, and return the
-- histories the detector asked for.
--
-- {ns}:burst:watch is the event time this namespace started watching likes (set once).
-- {ns}:burst:hist:{account} is a hash:
--   s  decayed like count, scaled to the watch start: every like at time t adds
--      exp((t - watch) / tau), so the decayed count at time T is s * exp(-(T - watch) / tau).
--      Late likes fall into place by themselves.
--   f  event time the account was first recorded (only kept for accounts whose creation time
--      the events do not carry)
--   qa, qq, qt  the recent likes and, of them, the quick ones (pressed without viewing),
--      both decayed with the short time constant quick_tau, as of event time qt (the newest
--      recorded). A short time constant cannot be scaled to the watch start (it would leave
--      a double within weeks), so these are decayed to the newest like as they are written.
-- A recorded account's hash is read once (HMGET, shared with its answer when it is also
-- wanted) and written once (HSET, EXPIRE).
--
-- ARGV: namespace, tau (s), ttl (s), batch start time, quick_tau (s), n_record, then
--       n_record times: account, likes, the likes and the quick likes decayed with quick_tau
--       to the newest of them, their newest time, oldest time or '' (no f needed),
--       then the accounts whose history is wanted.
-- Returns: watch start, then s, f, qa, qq, qt for each wanted account, as stored *before*
-- this batch was folded in ('' where absent). Numbers travel as strings: Redis would
-- truncate Lua numbers to integers.
local ns = ARGV[1]
local tau = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local quick_tau = tonumber(ARGV[5])

local watch_key = ns .. ':burst:watch'
redis.call('SET', watch_key, ARGV[4], 'NX')
redis.call('EXPIRE', watch_key, ttl)
local watch_text = redis.call('GET', watch_key)
local watch = tonumber(watch_text)
local prefix = ns .. ':burst:hist:'

local n_record = tonumber(ARGV[6])
local first_wanted = 7 + 6 * n_record
local fields = { 's', 'f', 'qa', 'qq', 'qt' }
local stored_of = {}
local out = { watch_text }
for i = first_wanted, #ARGV do
  local key = prefix .. ARGV[i]
  local stored = redis.call('HMGET', key, unpack(fields))
  stored_of[key] = stored
  for k = 1, 5 do out[#out + 1] = stored[k] or '' end
end

local function text(x) return string.format('%.17g', x) end
for i = 7, first_wanted - 1, 6 do
  local key = prefix .. ARGV[i]
  local stored = stored_of[key] or redis.call('HMGET', key, unpack(fields))
  local newest = tonumber(ARGV[i + 4])
  local at = tonumber(stored[5]) or newest
  local now = math.max(at, newest)
  local keep, add = math.exp((at - now) / quick_tau), math.exp((newest - now) / quick_tau)
  local likes = tonumber(ARGV[i + 1])
  local update = {
    's', text((tonumber(stored[1]) or 0) + likes * math.exp((newest - watch) / tau)),
    'qa', text((tonumber(stored[3]) or 0) * keep + tonumber(ARGV[i + 2]) * add),
    'qq', text((tonumber(stored[4]) or 0) * keep + tonumber(ARGV[i + 3]) * add),
    'qt', text(now),
  }
  if ARGV[i + 5] ~= '' and not stored[2] then
    update[#update + 1] = 'f'
    update[#update + 1] = ARGV[i + 5]
  end
  redis.call('HSET', key, unpack(update))
  redis.call('EXPIRE', key, ttl)
end
return out
