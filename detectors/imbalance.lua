-- fan_imbalance, one call per batch: followers and best post of each author, post snapshots
-- for the posts with enough likes to judge, quick-like suspects, and due follow-up reports.
--
-- ARGV: namespace, ttl, top_kept, lookback, cap, now, watch candidate (the batch's first ts),
--       n_authors, then per author: author,
--       n_tops, then per (author, post) of the batch: author index (1-based), post, distinct
--             likers of the post in the day,
--       n_quick, then per quick like: post, actor, ts,
--       n_posts, then per post to judge: post
-- Returns: watch start, then per author: followers ('' unknown), best post's likers, best post
--       ('' none); per post: views, completions, snapshot ts, likers up to the snapshot ts
--       ('' where there is no snapshot), reported-until ('' none), 1 if a follow-up is
--       scheduled else 0; then the number of due follow-ups and their subjects (claimed).
--
-- Keys: {ns}:acct:{id}, {ns}:post:{id} (snapshots, read), {ns}:w:likers_by_post:{post}
-- (window family, read), {ns}:fi:watch (event time likes were first seen), {ns}:fi:top:{author}
-- (post -> most distinct likers seen in a day, top `top_kept`), {ns}:fi:sus:p:{post} (quick
-- likers -> latest like time, within `lookback`, at most `cap`), {ns}:fi:rep:{subject} and
-- {ns}:fi:due (see suspects.lua). Every key has TTL `ttl`.
local ns = ARGV[1]
local ttl = tonumber(ARGV[2])
local top_kept = tonumber(ARGV[3])
local lookback = tonumber(ARGV[4])
local cap = tonumber(ARGV[5])
local now = ARGV[6]
local prefix = ns .. ':fi:'

local watch_key = prefix .. 'watch'
redis.call('SET', watch_key, ARGV[7], 'NX')
redis.call('EXPIRE', watch_key, ttl)
local out = { redis.call('GET', watch_key) }

local i = 8
local authors = {}
local n_authors = tonumber(ARGV[i])
i = i + 1
for a = 1, n_authors do
  authors[a] = ARGV[i]
  i = i + 1
end

local n_tops = tonumber(ARGV[i])
i = i + 1
for _ = 1, n_tops do
  redis.call('ZADD', prefix .. 'top:' .. authors[tonumber(ARGV[i])], 'GT', ARGV[i + 2], ARGV[i + 1])
  i = i + 3
end
for a = 1, n_authors do
  local top_key = prefix .. 'top:' .. authors[a]
  redis.call('ZREMRANGEBYRANK', top_key, 0, -(top_kept + 1))
  redis.call('EXPIRE', top_key, ttl)
  out[#out + 1] = redis.call('HGET', ns .. ':acct:' .. authors[a], 'followers') or ''
  local best = redis.call('ZRANGE', top_key, -1, -1, 'WITHSCORES')
  out[#out + 1] = best[2] or 0
  out[#out + 1] = best[1] or ''
end

local touched = {}
local n_quick = tonumber(ARGV[i])
i = i + 1
for _ = 1, n_quick do
  local key = prefix .. 'sus:p:' .. ARGV[i]
  local ts = tonumber(ARGV[i + 2])
  redis.call('ZADD', key, 'GT', ARGV[i + 2], ARGV[i + 1])
  if not touched[key] or touched[key] < ts then touched[key] = ts end
  i = i + 3
end
for key, newest in pairs(touched) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. string.format('%.6f', newest - lookback))
  local excess = redis.call('ZCARD', key) - cap
  if excess > 0 then redis.call('ZREMRANGEBYRANK', key, 0, excess - 1) end
  redis.call('EXPIRE', key, ttl)
end

local due_key = prefix .. 'due'
local n_posts = tonumber(ARGV[i])
i = i + 1
for _ = 1, n_posts do
  local post = ARGV[i]
  i = i + 1
  local snap = redis.call('HMGET', ns .. ':post:' .. post, 'views', 'completions', 'ts')
  out[#out + 1] = snap[1] or ''
  out[#out + 1] = snap[2] or ''
  out[#out + 1] = snap[3] or ''
  if snap[3] then
    out[#out + 1] = redis.call('ZCOUNT', ns .. ':w:likers_by_post:' .. post, '-inf', snap[3])
  else
    out[#out + 1] = ''
  end
  out[#out + 1] = redis.call('HGET', prefix .. 'rep:p:' .. post, 'until') or ''
  out[#out + 1] = redis.call('ZSCORE', due_key, 'p:' .. post) and 1 or 0
end

local due = redis.call('ZRANGEBYSCORE', due_key, '-inf', now)
out[#out + 1] = #due
for _, subject in ipairs(due) do
  redis.call('ZREM', due_key, subject)
  out[#out + 1] = subject
end
return out
