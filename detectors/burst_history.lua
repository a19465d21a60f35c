-- Per-account like history for the burst detector, for a whole batch in one call: fold the
-- batch's likes into the histories of the accounts that record them, and return the
-- histories the detector asked for.
--
-- {ns}:burst:watch is the event time this namespace started watching likes (set once).
-- {ns}:burst:hist:{account} is a hash:
--   s  decayed like count, scaled to the watch start: every like at time t adds
--      exp((t - watch) / tau), so the decayed count at time T is s * exp(-(T - watch) / tau).
--      Adding needs no read (HINCRBYFLOAT), and late likes fall into place by themselves.
--   f  event time the account was first recorded (only kept for accounts whose creation time
--      the events do not carry)
--
-- ARGV: namespace, tau (s), ttl (s), batch start time, n_record, then
--       n_record times: account, likes, their newest time, oldest time or '' (no f needed)
--       then the accounts whose history is wanted.
-- Returns: watch start, then s and f for each wanted account, as stored *before* this batch
-- was folded in ('' where absent). Numbers travel as strings: Redis would truncate Lua
-- numbers to integers.
local ns = ARGV[1]
local tau = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])

local watch_key = ns .. ':burst:watch'
redis.call('SET', watch_key, ARGV[4], 'NX')
redis.call('EXPIRE', watch_key, ttl)
local watch_text = redis.call('GET', watch_key)
local watch = tonumber(watch_text)
local prefix = ns .. ':burst:hist:'

local n_record = tonumber(ARGV[5])
local first_wanted = 6 + 4 * n_record
local out = { watch_text }
for i = first_wanted, #ARGV do
  local stored = redis.call('HMGET', prefix .. ARGV[i], 's', 'f')
  out[#out + 1] = stored[1] or ''
  out[#out + 1] = stored[2] or ''
end

for i = 6, first_wanted - 1, 4 do
  local key = prefix .. ARGV[i]
  local likes = tonumber(ARGV[i + 1])
  local newest = tonumber(ARGV[i + 2])
  redis.call('HINCRBYFLOAT', key, 's', likes * math.exp((newest - watch) / tau))
  if ARGV[i + 3] ~= '' then redis.call('HSETNX', key, 'f', ARGV[i + 3]) end
  redis.call('EXPIRE', key, ttl)
end
return out
