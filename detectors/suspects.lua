-- Suspect reports of the account-centred detectors, for a whole batch in one call.
--
-- A subject (a post "p:{id}" or an author "a:{id}") under report has a sorted set of suspicious
-- likers, {ns}:{prefix}:sus:{subject} (liker -> time of their latest like), written by the
-- detector's batch script. This script reads the suspects liked in (since, until], records that
-- they are reported, and schedules the next follow-up in {ns}:{prefix}:due.
--
-- ARGV: namespace, prefix, ttl, max members per answer, report_every,
--       then per request: subject, since ('' = where the last report ended), until,
--       initial (1 | 0), author ('' if none)
-- Returns per request: author, first alert time ('' if none), suspects reported so far, the
--       `since` and `until` used, n, then n suspects (oldest first).
-- An initial request always schedules a follow-up; a follow-up schedules the next one only
-- when it found new suspects, so a report ends by itself once the fake likes stop. An answer
-- cut at `max members` ends at its last suspect's time, and the rest is due at once.
local ns = ARGV[1]
local prefix = ns .. ':' .. ARGV[2] .. ':'
local ttl = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local every = tonumber(ARGV[5])
local due_key = prefix .. 'due'
local out = {}
local i = 6
local n = #ARGV
while i <= n do
  local subject = ARGV[i]
  local since = ARGV[i + 1]
  local upto = ARGV[i + 2]
  local initial = ARGV[i + 3] == '1'
  local author = ARGV[i + 4]
  i = i + 5
  local rep_key = prefix .. 'rep:' .. subject
  local stored = redis.call('HMGET', rep_key, 'author', 'first', 'n', 'until')
  if since == '' then since = stored[4] or upto end
  local found = redis.call('ZRANGEBYSCORE', prefix .. 'sus:' .. subject, '(' .. since, upto,
                           'WITHSCORES', 'LIMIT', 0, cap)
  local members = {}
  for j = 1, #found, 2 do members[#members + 1] = found[j] end
  local next_due = tonumber(upto) + every
  if #members >= cap and cap > 0 then
    upto = found[#found]
    next_due = tonumber(upto)
  end
  if author == '' then author = stored[1] or '' end
  local first = stored[2]
  if first == '' then first = false end
  if initial and not first then first = upto end
  local total = tonumber(stored[3] or '0') + #members
  redis.call('HSET', rep_key, 'until', upto, 'author', author, 'first', first or '', 'n', total)
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
return out
