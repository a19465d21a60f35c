-- Newest-wins upsert of account and post snapshots (hashes), for a whole batch in one call.
--
-- ARGV: namespace, ttl, then one JSON array, per snapshot: [kind ("acct" | "post"), id, ts,
--       [field, value, ...]], every value a string (stored as given).
-- A snapshot older than the stored one is ignored, so out-of-order and redelivered snapshots
-- leave the newest state in place. Returns one string, per snapshot: 1 stored, 0 ignored as
-- older.
local ns = ARGV[1]
local ttl = tonumber(ARGV[2])
local out = {}
for n, snap in ipairs(cjson.decode(ARGV[3])) do
  local key = ns .. ':' .. snap[1] .. ':' .. snap[2]
  local stored = redis.call('HGET', key, 'ts')
  if stored and tonumber(stored) > tonumber(snap[3]) then
    out[n] = 0
  else
    redis.call('HSET', key, 'ts', snap[3], unpack(snap[4]))
    redis.call('EXPIRE', key, ttl)
    out[n] = 1
  end
end
return table.concat(out, ',')
