-- Distinct likers per post over the last day, for a whole batch in one call.
--
-- {ns}:likers:{post} is a sorted set: liker -> time of their latest like of the post (ZADD GT,
-- so a redelivered like changes nothing), trimmed to `retention` before the post's newest like
-- of the batch and to at most `cap` members (the oldest go first), TTL `ttl`.
--
-- ARGV: namespace, retention, cap, ttl, recent (s),
--       then one JSON array, per post: [post, evaluation time, [liker, ts, liker, ts, ...]]
-- Returns one comma-separated string: per post, distinct likers in (t - recent, t] and in
-- (t - retention, t], t being its evaluation time.
--
-- Work is per post of the batch, not per like: one ZADD with all its likers, then trim, count
-- and expire.
local prefix = ARGV[1] .. ':likers:'
local retention = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local recent = tonumber(ARGV[5])
local out = {}
for _, entry in ipairs(cjson.decode(ARGV[6])) do
  local key = prefix .. entry[1]
  local t = entry[2]
  local likes = entry[3]
  -- In chunks: unpack() has a stack limit of a few thousand values.
  for first = 1, #likes, 1000 do
    local args = {}
    for j = first, math.min(#likes, first + 999), 2 do
      args[#args + 1] = likes[j + 1]
      args[#args + 1] = likes[j]
    end
    redis.call('ZADD', key, 'GT', unpack(args))
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. string.format('%.6f', t - retention))
  local day = redis.call('ZCARD', key)
  if day > cap then
    redis.call('ZREMRANGEBYRANK', key, 0, day - cap - 1)
    day = cap
  end
  local hour = day
  if day > 1 then
    hour = redis.call('ZCOUNT', key, '(' .. string.format('%.6f', t - recent), '+inf')
  end
  redis.call('EXPIRE', key, ttl)
  out[#out + 1] = hour
  out[#out + 1] = day
end
return table.concat(out, ',')
