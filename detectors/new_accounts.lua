-- new_account_spike, one call per batch: account ages, and new likers per post.
--
-- ARGV: namespace, max_age, window, ttl, cap, min_new, min_share, day, then one JSON object:
--   actors: [[actor, created_at from an event or '' (look it up)], ...]
--   likes:  [[actor index (1-based), post, ts], ...]  likes by new or not yet known accounts
--   posts:  [[post, [ts, ...]], ...]   posts those likes went to, with the likes' times
-- Returns one JSON object:
--   created: per actor, created_at ('' unknown: neither the event nor a snapshot has it)
--   known:   per actor, since when its created_at is known ('' from the event, or the first
--            snapshot's time: a like before it is by an account of unknown age, as it was
--            to a stream processed in event-time order, however far ahead snapshots are)
--   posts:   per post [new likers, distinct likers, position (1-based) of the like they are
--            counted at, new likers and distinct likers over the day (0 unless both bars are
--            met), reported-until ('' none),
--            1 if a follow-up is scheduled else 0]. Counts are over (t - window, t] (and
--            (t - day, t]) at the post's first like (of those given) where both bars are met
--            (at least min_new new likers, making at least min_share of all), else at its
--            last: the finding's time is the like that crossed the bar, not the end of the
--            batch. A post under report (a follow-up scheduled) is not judged, nor its likes
--            at or before where its last report ended: those are the report's.
--
-- Writing a like twice (a batch judged again once a report ended) changes nothing.
-- Keys: {ns}:acct:{id} (account snapshots, read), {ns}:likers:{post} (distinct likers, read;
-- see post_likers.lua), {ns}:na:sus:p:{post} (new likers -> latest like time, trimmed to
-- `day`, at most `cap` members, TTL `ttl`), {ns}:na:rep:{subject} and {ns}:na:due (read; see
-- suspects.lua).
local ns = ARGV[1]
local max_age = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local cap = tonumber(ARGV[5])
local min_new = tonumber(ARGV[6])
local min_share = tonumber(ARGV[7])
local day = tonumber(ARGV[8])
local batch = cjson.decode(ARGV[9])
local prefix = ns .. ':na:'

local created, known, born, since = {}, {}, {}, {}
for a, actor in ipairs(batch.actors) do
  local value, first = actor[2], ''
  if value == '' then
    local snap = redis.call('HMGET', ns .. ':acct:' .. actor[1], 'created_at', 'first')
    value, first = snap[1] or '', snap[2] or ''
  end
  created[a], known[a] = value, first
  born[a], since[a] = tonumber(value), tonumber(first) or -math.huge
end

local touched = {}
for _, like in ipairs(batch.likes) do
  local a, ts = like[1], like[3]
  if born[a] and ts >= since[a] and ts - born[a] < max_age then
    local key = prefix .. 'sus:p:' .. like[2]
    redis.call('ZADD', key, 'GT', ts, batch.actors[a][1])
    if not touched[key] or touched[key] < ts then touched[key] = ts end
  end
end
for key, newest in pairs(touched) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. string.format('%.6f', newest - day))
  local excess = redis.call('ZCARD', key) - cap
  if excess > 0 then redis.call('ZREMRANGEBYRANK', key, 0, excess - 1) end
  redis.call('EXPIRE', key, ttl)
end

local due_key = prefix .. 'due'
local posts = {}
local function count(key, t, length)
  return redis.call('ZCOUNT', key, '(' .. string.format('%.6f', t - (length or window)),
                    string.format('%.6f', t))
end
for p, post in ipairs(batch.posts) do
  local subject = 'p:' .. post[1]
  local sus_key, likers_key = prefix .. 'sus:' .. subject, ns .. ':likers:' .. post[1]
  local times = post[2]
  local reported_until = redis.call('HGET', prefix .. 'rep:' .. subject, 'until') or ''
  local scheduled = redis.call('ZSCORE', due_key, subject) and 1 or 0
  local after = tonumber(reported_until) or -math.huge
  local new, likers, at = 0, 0, #times
  if scheduled == 0 then
    for k, t in ipairs(times) do
      if t > after then
        new = count(sus_key, t)
        -- Only a like that could cross the bar needs the total.
        if new >= min_new or k == #times then
          likers = math.max(new, count(likers_key, t))
          if new >= min_new and new >= min_share * likers then
            at = k
            break
          end
        end
      end
    end
  end
  -- Over the day too, for whether the post's engagement is the new accounts' doing.
  local new_day, likers_day = 0, 0
  if new >= min_new and new >= min_share * likers then
    new_day = count(sus_key, times[at], day)
    likers_day = math.max(new_day, count(likers_key, times[at], day))
  end
  posts[p] = {new, likers, at, new_day, likers_day, reported_until, scheduled}
end

-- (An empty table encodes as {}: the caller reads it as an empty list.)
return cjson.encode({created = created, known = known, posts = posts})
