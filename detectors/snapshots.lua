-- Newest-wins upsert of account and post snapshots (hashes), for a whole batch in one call.
--
-- ARGV: namespace, ttl, then per snapshot: kind ("acct" | "post"), id, ts, n_fields,
--       field, value, ...
-- A snapshot older than the stored one is ignored, so out-of-order and redelivered snapshots
-- leave the newest state in place. Returns per snapshot: 1 stored, 0 ignored as older.
local ns = ARGV[1]
local ttl = tonumber(ARGV[2])
local out = {}
local i = 3
local n = #ARGV
while i <= n do
  local key = ns .. ':' .. ARGV[i] .. ':' .. ARGV[i + 1]
  local ts = tonumber(ARGV[i + 2])
  local n_fields = tonumber(ARGV[i + 3])
  local stored = redis.call('HGET', key, 'ts')
  if stored and tonumber(stored) > ts then
    out[#out + 1] = 0
  else
    local args = {'ts', ARGV[i + 2]}
    for f = 0, n_fields - 1 do
      args[#args + 1] = ARGV[i + 4 + 2 * f]
      args[#args + 1] = ARGV[i + 5 + 2 * f]
    end
    redis.call('HSET', key, unpack(args))
    redis.call('EXPIRE', key, ttl)
    out[#out + 1] = 1
  end
  i = i + 4 + 2 * n_fields
end
return out
