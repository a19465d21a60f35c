-- new_account_spike, one call per batch: account ages, new likers per post and per author,
-- and follow-up reports that fell due.
--
-- ARGV: namespace, max_age, window, ttl, cap, now,
--       n_actors, then per actor: actor, created_at from the event ('' = look it up),
--       n_likes, then per like by a new (or not yet known) account: actor index (1-based),
--             post, author, ts,
--       n_posts, then per post: post, evaluation time,
--       n_authors, then per author: author, evaluation time
-- Returns: per actor its created_at ('' unknown: neither the event nor a snapshot has it),
--       per post and then per author: new likers in (t - window, t], reported-until time
--       ('' none), 1 if a follow-up is scheduled else 0,
--       then the number of due follow-ups and their subjects (claimed: removed from the queue).
--
-- Keys: {ns}:acct:{id} (account snapshots, read), {ns}:na:sus:p:{post} and
-- {ns}:na:sus:a:{author} (new likers -> latest like time, trimmed to `window`, at most `cap`
-- members, TTL `ttl`), {ns}:na:rep:{subject} and {ns}:na:due (see suspects.lua).
local ns = ARGV[1]
local max_age = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local cap = tonumber(ARGV[5])
local now = ARGV[6]
local prefix = ns .. ':na:'
local out = {}

local i = 7
local n_actors = tonumber(ARGV[i])
i = i + 1
local actors, created = {}, {}
for a = 1, n_actors do
  actors[a] = ARGV[i]
  local value = ARGV[i + 1]
  if value == '' then
    value = redis.call('HGET', ns .. ':acct:' .. ARGV[i], 'created_at') or ''
  end
  created[a] = tonumber(value)
  out[#out + 1] = value
  i = i + 2
end

local touched = {}
local n_likes = tonumber(ARGV[i])
i = i + 1
for _ = 1, n_likes do
  local a = tonumber(ARGV[i])
  local born = created[a]
  local ts = tonumber(ARGV[i + 3])
  if born and ts - born < max_age then
    for _, key in ipairs({prefix .. 'sus:p:' .. ARGV[i + 1], prefix .. 'sus:a:' .. ARGV[i + 2]}) do
      redis.call('ZADD', key, 'GT', ARGV[i + 3], actors[a])
      if not touched[key] or touched[key] < ts then touched[key] = ts end
    end
  end
  i = i + 4
end
for key, newest in pairs(touched) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. string.format('%.6f', newest - window))
  local excess = redis.call('ZCARD', key) - cap
  if excess > 0 then redis.call('ZREMRANGEBYRANK', key, 0, excess - 1) end
  redis.call('EXPIRE', key, ttl)
end

local due_key = prefix .. 'due'
for _, kind in ipairs({'p:', 'a:'}) do
  local count = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, count do
    local subject = kind .. ARGV[i]
    local t = tonumber(ARGV[i + 1])
    out[#out + 1] = redis.call('ZCOUNT', prefix .. 'sus:' .. subject,
                               '(' .. string.format('%.6f', t - window), ARGV[i + 1])
    out[#out + 1] = redis.call('HGET', prefix .. 'rep:' .. subject, 'until') or ''
    out[#out + 1] = redis.call('ZSCORE', due_key, subject) and 1 or 0
    i = i + 2
  end
end

local due = redis.call('ZRANGEBYSCORE', due_key, '-inf', now)
out[#out + 1] = #due
for _, subject in ipairs(due) do
  redis.call('ZREM', due_key, subject)
  out[#out + 1] = subject
end
return out
