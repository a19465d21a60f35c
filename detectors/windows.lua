-- Sliding event-time windows for a whole batch in one call.
--
-- Each window key is a sorted set: member = event id (or another id), score = event time.
-- Adding is idempotent (ZADD NX, or GT for "latest time per member" sets), so a redelivered
-- event never counts twice. Counts are taken at the event's own time, (ts - length, ts], so
-- they do not depend on the wall clock or on how far the stream has advanced since.
--
-- A *mirrored* family is counted by the caller, from its own copy of each key's scores (keys
-- of the partition key, which one worker owns): here its entries are only added, and a key
-- whose size or newest score is not what the caller's copy says (first touch, another writer,
-- an expired key) is sent back whole, before this batch's additions, so the copy is rebuilt.
-- A key the copy matches also takes the copy's oldest score, so the upkeep at the end runs only
-- what is due (a trim when the oldest entry has left the retention, a cap when the key is over
-- it) and refreshes the TTL only when the caller asks (it does so once in a while, not per
-- batch): most batches touch a key with one ZADD after the check.
--
-- ARGV: namespace, n_families,
--       per family: name, retention, max_members, ttl, mode ("nx" | "gt"), mirrored (0 | 1),
--       n_lengths, lengths... (a mirrored family has none)
--       then one JSON array of entries, each [family index (1-based), key, member, ts], and
--       for a mirrored family also [..., expected size, expected newest score, expected oldest
--       score, refresh the TTL (0 | 1)] (size -1: the caller has no copy); only a key's first
--       entry of the batch is read for these
-- Returns one string: per entry, status (1 added, 0 already there, -1 older than retention),
-- then one count per length of its family (zeros for late entries), comma-separated; then,
-- per mirrored key sent back, ";" entry index (1-based, the key's first entry) ":" its scores
-- separated by ",".
--
-- Entries travel as one JSON document and the answer as one string because packing and
-- parsing a RESP element per value costs the client far more than the Redis work itself.
--
-- Keys are built here from ARGV, so this script needs a single Redis node (or a proxy that
-- pins a namespace to one node); see docs/redis-keys.md.

local ns = ARGV[1]
local n_families = tonumber(ARGV[2])
local i = 3
local families = {}
for f = 1, n_families do
  local n_lengths = tonumber(ARGV[i + 6])
  local lengths = {}
  for l = 1, n_lengths do lengths[l] = tonumber(ARGV[i + 6 + l]) end
  families[f] = {
    prefix = ns .. ':w:' .. ARGV[i] .. ':',
    retention = tonumber(ARGV[i + 1]),
    max_members = tonumber(ARGV[i + 2]),
    ttl = tonumber(ARGV[i + 3]),
    mode = string.upper(ARGV[i + 4]),
    mirrored = ARGV[i + 5] == '1',
    lengths = lengths,
  }
  i = i + 7 + n_lengths
end

local out = {}
local sent = {}
-- Per key touched: its family and newest time. Trimming, capping and the TTL are applied once
-- per key at the end: counts never look further back than the retention, so members that are
-- due for trimming cannot change a count in the meantime.
local touched = {}
local entries = cjson.decode(ARGV[i])
for index, entry in ipairs(entries) do
  local family = families[entry[1]]
  local key = family.prefix .. entry[2]
  local member = entry[3]
  local ts = entry[4]
  local seen = touched[key]
  if seen == nil then
    local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    local top = newest[2] and tonumber(newest[2])
    seen = {family = family, top = top or ts, expire = true}
    if family.mirrored then
      -- Size and oldest score are tracked through the batch (`size`, `oldest`: nil when empty).
      local size = redis.call('ZCARD', key)
      seen.size = size
      if size ~= entry[5] or (size > 0 and top ~= entry[6]) then
        local scores = {}
        local all = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
        for s = 2, #all, 2 do scores[#scores + 1] = all[s] end
        sent[#sent + 1] = index .. ':' .. table.concat(scores, ',')
        if size > 0 then seen.oldest = tonumber(all[2]) end
      else
        if size > 0 then seen.oldest = entry[7] end
        seen.expire = entry[8] == 1
      end
    end
    touched[key] = seen
  end
  if ts > seen.top then seen.top = ts end
  if ts < seen.top - family.retention then
    out[#out + 1] = -1
    for _ = 1, #family.lengths do out[#out + 1] = 0 end
  else
    local added = redis.call('ZADD', key, family.mode, ts, member)
    out[#out + 1] = added
    if seen.size and added == 1 then
      seen.size = seen.size + 1
      if not seen.oldest or ts < seen.oldest then seen.oldest = ts end
    end
    if #family.lengths > 0 then
      local upper = string.format('%.6f', ts)
      for _, length in ipairs(family.lengths) do
        out[#out + 1] = redis.call('ZCOUNT', key, '(' .. string.format('%.6f', ts - length), upper)
      end
    end
  end
end
for key, seen in pairs(touched) do
  local family = seen.family
  local bound = string.format('%.6f', seen.top - family.retention)
  local size = seen.size
  if not size then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. bound)
    if family.max_members > 0 then size = redis.call('ZCARD', key) end
  elseif seen.oldest and seen.oldest < tonumber(bound) then
    size = size - redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. bound)
  end
  if family.max_members > 0 then
    local excess = size - family.max_members
    if excess > 0 then redis.call('ZREMRANGEBYRANK', key, 0, excess - 1) end
  end
  if seen.expire then redis.call('EXPIRE', key, family.ttl) end
end
local reply = table.concat(out, ',')
if #sent > 0 then reply = reply .. ';' .. table.concat(sent, ';') end
return reply
