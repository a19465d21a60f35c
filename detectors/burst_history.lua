-- Per-account like history for the burst detector: read the stored history and fold in the
-- batch's fresh likes, for every account of a batch in one call.
--
-- {ns}:burst:hist:{account} is a hash:
--   s  decayed like count: every like counts 1 and fades as exp(-age / tau)
--   t  event time s was last brought up to date (newest like folded in)
--   f  event time the account was first seen liking
-- {ns}:burst:watch is the event time this namespace started watching likes (set once).
--
-- ARGV: namespace, tau (s), ttl (s), batch start time, then per account:
--       account, fresh likes in the batch, their newest time, their oldest time, want (0 | 1)
-- Returns: watch start, then for each account with want = 1: s, t, f as stored *before* this
-- batch ('' when the account has no history yet). Numbers travel as strings, because Redis
-- would truncate Lua numbers to integers.
local ns = ARGV[1]
local tau = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])

local watch_key = ns .. ':burst:watch'
redis.call('SET', watch_key, ARGV[4], 'NX')
redis.call('EXPIRE', watch_key, ttl)
local out = { redis.call('GET', watch_key) }

local i = 5
local n = #ARGV
while i <= n do
  local key = ns .. ':burst:hist:' .. ARGV[i]
  local fresh = tonumber(ARGV[i + 1])
  local newest = tonumber(ARGV[i + 2])
  local oldest = ARGV[i + 3]
  local want = ARGV[i + 4]
  i = i + 5
  local old = redis.call('HMGET', key, 's', 't', 'f')
  if want == '1' then
    out[#out + 1] = old[1] or ''
    out[#out + 1] = old[2] or ''
    out[#out + 1] = old[3] or ''
  end
  if fresh > 0 then
    local s = tonumber(old[1])
    local t = tonumber(old[2])
    if s == nil or t == nil then
      redis.call('HSET', key, 's', fresh, 't', newest, 'f', oldest)
    elseif newest >= t then
      redis.call('HSET', key, 's', s * math.exp((t - newest) / tau) + fresh, 't', newest)
    else
      -- Late likes (older than the history's clock) count with their age already applied.
      redis.call('HSET', key, 's', s + fresh * math.exp((newest - t) / tau))
    end
    redis.call('EXPIRE', key, ttl)
  end
end
return out
