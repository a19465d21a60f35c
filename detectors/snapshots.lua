-- Account and post snapshots, for a whole batch in one call: the newest (a hash), and the
-- last few of the counters that verdicts read as of a like's time (a sorted set).
--
-- ARGV: namespace, ttl, then one JSON array, per snapshot: [kind ("acct" | "post"), id, ts,
--       [field, value, ...]], every value a string (stored as given).
-- A snapshot older than the stored one does not replace it, so out-of-order and redelivered
-- snapshots leave the newest state in place. Returns one string, per snapshot: 1 stored, 0
-- ignored as older.
--
-- Keys: {ns}:{kind}:{id} (hash: `ts`, the fields, and `first`: the oldest snapshot's time,
-- since when `created_at` is known), {ns}:{kind}:{id}:h (sorted set, score = snapshot time,
-- member = "ts<US>field<US>value..." of the fields in AS_OF; the newest HISTORY kept). A
-- reader judging a like at time t takes the newest member at or before t: what a stream
-- processed in event-time order would have read then, however far ahead of it the snapshots
-- were stored (a live worker's stage runs behind the workers that store them).
local HISTORY = 4
local AS_OF = {acct = {followers = true}, post = {views = true, completions = true}}
local US = '\31'
local ns = ARGV[1]
local ttl = tonumber(ARGV[2])
local out = {}
for n, snap in ipairs(cjson.decode(ARGV[3])) do
  local key = ns .. ':' .. snap[1] .. ':' .. snap[2]
  local ts, fields = snap[3], snap[4]
  local stored = redis.call('HMGET', key, 'ts', 'first')
  local newest = not stored[1] or tonumber(stored[1]) <= tonumber(ts)
  if newest then
    redis.call('HSET', key, 'ts', ts, unpack(fields))
  end
  if not stored[2] or tonumber(ts) < tonumber(stored[2]) then
    redis.call('HSET', key, 'first', ts)
  end
  redis.call('EXPIRE', key, ttl)
  local wanted = AS_OF[snap[1]]
  if wanted then
    local member = {ts}
    for j = 1, #fields, 2 do
      if wanted[fields[j]] then
        member[#member + 1] = fields[j]
        member[#member + 1] = fields[j + 1]
      end
    end
    local history = key .. ':h'
    redis.call('ZADD', history, ts, table.concat(member, US))
    redis.call('ZREMRANGEBYRANK', history, 0, -(HISTORY + 1))
    redis.call('EXPIRE', history, ttl)
  end
  out[n] = newest and 1 or 0
end
return table.concat(out, ',')
