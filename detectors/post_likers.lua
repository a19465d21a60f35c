-- Distinct likers per post over the last day, for a whole batch in one call.
--
-- {ns}:likers:{post} is a sorted set: liker -> time of their latest like of the post (ZADD GT,
-- so a redelivered like changes nothing). Upkeep (trim to `retention` behind the post's newest
-- like of the batch, then to at most `cap` members, the oldest first; TTL `ttl`) runs when the
-- day's count passes a multiple of 32, whenever it reaches `cap`, and when the key is new:
-- counts never need it (they are ZCOUNTs over the day), a key holds at most about `cap` + 32
-- members, and a post liked fewer than 32 times in `ttl` may lose its likers early, which
-- only ever concerns posts far too quiet for any verdict.
--
-- ARGV: namespace, retention, cap, ttl, day (s),
--       then one JSON array, per post: [post, evaluation time, [liker, ts, liker, ts, ...]]
-- Returns one comma-separated string: per post, its distinct likers in (t - day, +inf), t
-- being its evaluation time (its newest like of the batch), and how many of them are new (were
-- not its likers before this call).
--
-- Work is per post of the batch, not per like: one ZADD with all its likers and a count.
local prefix = ARGV[1] .. ':likers:'
local retention = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local day_length = tonumber(ARGV[5])
local out = {}
for _, entry in ipairs(cjson.decode(ARGV[6])) do
  local key = prefix .. entry[1]
  local t = entry[2]
  local likes = entry[3]
  local added = 0
  -- In chunks: unpack() has a stack limit of a few thousand values.
  for first = 1, #likes, 1000 do
    local args = {}
    for j = first, math.min(#likes, first + 999), 2 do
      args[#args + 1] = likes[j + 1]
      args[#args + 1] = likes[j]
    end
    added = added + redis.call('ZADD', key, 'GT', unpack(args))
  end
  local day = redis.call('ZCOUNT', key, '(' .. string.format('%.6f', t - day_length), '+inf')
  if day >= cap or math.floor(day / 32) > math.floor((day - added) / 32) then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. string.format('%.6f', t - retention))
    local excess = redis.call('ZCARD', key) - cap
    if excess > 0 then redis.call('ZREMRANGEBYRANK', key, 0, excess - 1) end
    day = math.min(day, cap)
    redis.call('EXPIRE', key, ttl)
  elseif added == day then
    redis.call('EXPIRE', key, ttl)
  end
  out[#out + 1] = day
  out[#out + 1] = math.min(added, day)
end
return table.concat(out, ',')
