-- Suspect reports of the account-centred detectors, for a whole batch in one call.
--
-- A subject (a post "p:{id}" or an author "a:{id}") under report has a sorted set of suspicious
-- likers, {ns}:{prefix}:sus:{subject} (liker -> time of their latest like), written by the
-- detector's batch script. This script reads the suspects liked in (since, until], records that
-- they are reported, and schedules the next follow-up in {ns}:{prefix}:due.
--
-- Late suspects: with several workers, another worker may write a suspect whose like time is
-- at or before where the last report ended (it is behind in event time, or the two process the
-- same minutes at once); the (since, until] cursor alone would never name it. So every named
-- suspect goes into {ns}:{prefix}:named:{subject}, the report remembers where it started
-- (`from`), and each request also names the suspects liked in (from, since] that are not named
-- yet, ahead of the new ones. In one event-time-ordered stream (replay, one worker) there are
-- none, except a like tied in time with where a report ended or cut.
--
-- ARGV: namespace, prefix, ttl, max members per answer, report_every, claim until (-inf:
--       claim nothing), then per request: subject, since ('' = where the last report ended), until,
--       initial (1 | 0), author ('' if none)
-- Returns per request: author, first alert time ('' if none), suspects reported so far, the
--       `since` and `until` used, n, then n suspects (oldest first); then, after the requests
--       are done, m, the m follow-ups due by `claim until` as subject, due time pairs (claimed:
--       removed from the queue), and the earliest follow-up still queued ('' if none).
-- An initial request always schedules a follow-up `report_every` after its `until`; a follow-up
-- schedules the next one only when it found new suspects, so a report ends by itself once the
-- fake likes stop. Follow-ups fall due on that grid of event times whatever batches the stream
-- comes in, and the caller asks for a due follow-up with its due time as `until`, so what a
-- report names and when does not depend on where batches end. An answer cut at `max members`
-- ends at its last suspect's time, and the rest (up to the request's `until`) is due at once.
local ns = ARGV[1]
local prefix = ns .. ':' .. ARGV[2] .. ':'
local ttl = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local every = tonumber(ARGV[5])
local claim_until = ARGV[6]
local due_key = prefix .. 'due'
local out = {}
local i = 7
local n = #ARGV
while i <= n do
  local subject = ARGV[i]
  local since = ARGV[i + 1]
  local upto = ARGV[i + 2]
  local initial = ARGV[i + 3] == '1'
  local author = ARGV[i + 4]
  i = i + 5
  local rep_key = prefix .. 'rep:' .. subject
  local stored = redis.call('HMGET', rep_key, 'author', 'first', 'n', 'until', 'from')
  if since == '' then since = stored[4] or upto end
  local from = stored[5] or since
  local sus_key = prefix .. 'sus:' .. subject
  local named_key = prefix .. 'named:' .. subject
  local members = {}
  if tonumber(from) < tonumber(since) then
    local old = redis.call('ZRANGEBYSCORE', sus_key, '(' .. from, since)
    if #old > 0 then
      local flags = redis.call('SMISMEMBER', named_key, unpack(old))
      for j, flag in ipairs(flags) do
        if flag == 0 and #members < cap then members[#members + 1] = old[j] end
      end
    end
  end
  local late = #members
  local found = {}
  if late < cap then
    found = redis.call('ZRANGEBYSCORE', sus_key, '(' .. since, upto, 'WITHSCORES', 'LIMIT', 0,
                       cap - late)
  end
  for j = 1, #found, 2 do members[#members + 1] = found[j] end
  local next_due = tonumber(upto) + every
  if #members >= cap and cap > 0 then
    -- Cut: the rest, up to this request's `until`, is due at once (late suspects not named
    -- yet are found again then), from the last new suspect named, or from where the last
    -- report ended if none was.
    next_due = tonumber(upto)
    if #found > 0 then upto = found[#found] else upto = since end
  end
  for k = 1, #members, 1000 do
    redis.call('SADD', named_key, unpack(members, k, math.min(#members, k + 999)))
  end
  if #members > 0 then redis.call('EXPIRE', named_key, ttl) end
  if author == '' then author = stored[1] or '' end
  local first = stored[2]
  if first == '' then first = false end
  if initial and not first then first = upto end
  local total = tonumber(stored[3] or '0') + #members
  redis.call('HSET', rep_key, 'until', upto, 'author', author, 'first', first or '', 'n', total,
             'from', from)
  redis.call('EXPIRE', rep_key, ttl)
  if initial or #members > 0 then
    redis.call('ZADD', due_key, next_due, subject)
    redis.call('EXPIRE', due_key, ttl)
  else
    redis.call('ZREM', due_key, subject)
  end
  out[#out + 1] = author
  out[#out + 1] = first or ''
  out[#out + 1] = total
  out[#out + 1] = since
  out[#out + 1] = upto
  out[#out + 1] = #members
  for _, member in ipairs(members) do out[#out + 1] = member end
end
local claimed = redis.call('ZRANGEBYSCORE', due_key, '-inf', claim_until, 'WITHSCORES')
for j = 1, #claimed, 2 do redis.call('ZREM', due_key, claimed[j]) end
out[#out + 1] = #claimed / 2
for _, value in ipairs(claimed) do out[#out + 1] = value end
out[#out + 1] = redis.call('ZRANGE', due_key, 0, 0, 'WITHSCORES')[2] or ''
return out
