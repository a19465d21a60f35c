-- fan_imbalance, one call per batch: followers of the batch's authors (and the best post of
-- those with enough followers to judge), snapshots of the posts with enough likes to judge,
-- and quick-like suspects.
--
-- ARGV: namespace, ttl, top_kept, lookback, cap, watch candidate (the batch's first ts),
--       min_followers, recent (s), then one JSON object:
--   authors: [[author, evaluation time t], ...]
--   tops:    [[author index (1-based), post, distinct likers in the day], ...]
--   quick:   [[post, [liker, ts, liker, ts, ...]], ...]  likes pressed with little dwell
--   posts:   [[post, evaluation time t], ...]             posts to judge
-- Returns one JSON object:
--   watch:   event time this namespace first saw likes
--   authors: per author [followers as of t, best post's likers, best post] ('' where unknown
--            or the author has fewer than min_followers)
--   posts:   per post [distinct likers in (t - recent, +inf), views, completions, snapshot
--            time, likers up to the snapshot's time, reported-until, 1 if a follow-up is
--            scheduled else 0] ('' where there is no snapshot / report); the snapshot is the
--            newest taken at or before t (see snapshots.lua), not one stored ahead of it
--
-- Keys: {ns}:acct:{id}:h, {ns}:post:{id}:h (snapshot histories, read), {ns}:likers:{post}
-- (distinct likers, read; see post_likers.lua), {ns}:fi:watch, {ns}:fi:top:{author} (post -> most distinct
-- likers seen in a day, the `top_kept` best, only for authors with min_followers),
-- {ns}:fi:sus:p:{post} (quick likers -> latest like time, within `lookback`, at most `cap`),
-- {ns}:fi:rep:{subject} and {ns}:fi:due (read; see suspects.lua). Every key has TTL `ttl`.
local ns = ARGV[1]
local ttl = tonumber(ARGV[2])
local top_kept = tonumber(ARGV[3])
local lookback = tonumber(ARGV[4])
local cap = tonumber(ARGV[5])
local min_followers = tonumber(ARGV[7])
local recent = tonumber(ARGV[8])
local batch = cjson.decode(ARGV[9])
local prefix = ns .. ':fi:'
local function fmt(x) return string.format('%.6f', x) end
local US = '\31'

-- The newest snapshot in `key`'s history (snapshots.lua) taken at or before t, as a table
-- {ts = ..., field = value, ...}; {} when there is none.
local function as_of(key, t)
  local found = redis.call('ZREVRANGEBYSCORE', key .. ':h', fmt(t), '-inf', 'LIMIT', 0, 1)
  local snap = {}
  if #found == 0 then return snap end
  local parts = {}
  for part in string.gmatch(found[1], '[^' .. US .. ']+') do parts[#parts + 1] = part end
  snap.ts = parts[1]
  for j = 2, #parts - 1, 2 do snap[parts[j]] = parts[j + 1] end
  return snap
end

local watch_key = prefix .. 'watch'
redis.call('SET', watch_key, ARGV[6], 'NX')
redis.call('EXPIRE', watch_key, ttl)
local result = { watch = redis.call('GET', watch_key) }

local followers, big = {}, {}
for a, entry in ipairs(batch.authors) do
  local snap = as_of(ns .. ':acct:' .. entry[1], entry[2])
  followers[a] = snap.followers or ''
  big[a] = (tonumber(followers[a]) or 0) >= min_followers
end
local touched = {}
for _, top in ipairs(batch.tops) do
  local a = top[1]
  if big[a] then
    redis.call('ZADD', prefix .. 'top:' .. batch.authors[a][1], 'GT', top[3], top[2])
    touched[a] = true
  end
end
local authors = {}
for a, entry in ipairs(batch.authors) do
  local best, best_post = '', ''
  if big[a] then
    local key = prefix .. 'top:' .. entry[1]
    if touched[a] then
      redis.call('ZREMRANGEBYRANK', key, 0, -(top_kept + 1))
      redis.call('EXPIRE', key, ttl)
    end
    local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    best, best_post = top[2] or '', top[1] or ''
  end
  authors[a] = { followers[a], best, best_post }
end
result.authors = authors

for _, entry in ipairs(batch.quick) do
  local key = prefix .. 'sus:p:' .. entry[1]
  local likes = entry[2]
  local newest = 0
  for first = 1, #likes, 1000 do
    local args = {}
    for j = first, math.min(#likes, first + 999), 2 do
      args[#args + 1] = likes[j + 1]
      args[#args + 1] = likes[j]
      if likes[j + 1] > newest then newest = likes[j + 1] end
    end
    redis.call('ZADD', key, 'GT', unpack(args))
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. fmt(newest - lookback))
  local excess = redis.call('ZCARD', key) - cap
  if excess > 0 then redis.call('ZREMRANGEBYRANK', key, 0, excess - 1) end
  redis.call('EXPIRE', key, ttl)
end

local due_key = prefix .. 'due'
local posts = {}
for p, entry in ipairs(batch.posts) do
  local post = entry[1]
  local likers_key = ns .. ':likers:' .. post
  local snap = as_of(ns .. ':post:' .. post, entry[2])
  local likes = ''
  if snap.ts then likes = redis.call('ZCOUNT', likers_key, '-inf', snap.ts) end
  posts[p] = {
    redis.call('ZCOUNT', likers_key, '(' .. fmt(entry[2] - recent), '+inf'),
    snap.views or '', snap.completions or '', snap.ts or '', likes,
    redis.call('HGET', prefix .. 'rep:p:' .. post, 'until') or '',
    redis.call('ZSCORE', due_key, 'p:' .. post) and 1 or 0,
  }
end
result.posts = posts

-- (An empty table encodes as {}: the caller reads it as an empty list.)
return cjson.encode(result)
