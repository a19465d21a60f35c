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
--   qa, qq, qt  the recent likes and, of them, the quick ones (pressed without viewing),
--      both decayed with the short time constant quick_tau, as of event time qt (the newest
--      recorded). A short time constant cannot be scaled to the watch start (it would leave
--      a double within weeks), so these are read, decayed and written back.
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
local out = { watch_text }
for i = first_wanted, #ARGV do
  local stored = redis.call('HMGET', prefix .. ARGV[i], 's', 'f', 'qa', 'qq', 'qt')
  for k = 1, 5 do out[#out + 1] = stored[k] or '' end
end

local function text(x) return string.format('%.17g', x) end
for i = 7, first_wanted - 1, 6 do
  local key = prefix .. ARGV[i]
  local likes = tonumber(ARGV[i + 1])
  local newest = tonumber(ARGV[i + 4])
  redis.call('HINCRBYFLOAT', key, 's', likes * math.exp((newest - watch) / tau))
  if ARGV[i + 5] ~= '' then redis.call('HSETNX', key, 'f', ARGV[i + 5]) end
  local stored = redis.call('HMGET', key, 'qa', 'qq', 'qt')
  local at = tonumber(stored[3]) or newest
  local now = math.max(at, newest)
  local keep, add = math.exp((at - now) / quick_tau), math.exp((newest - now) / quick_tau)
  redis.call('HSET', key,
             'qa', text((tonumber(stored[1]) or 0) * keep + tonumber(ARGV[i + 2]) * add),
             'qq', text((tonumber(stored[2]) or 0) * keep + tonumber(ARGV[i + 3]) * add),
             'qt', text(now))
  redis.call('EXPIRE', key, ttl)
end
return out
