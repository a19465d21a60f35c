-- Admit or suppress candidate alerts: one alert per (detector, subject) per cool-down period,
-- and record every admitted alert in an outbox keyed by the event that triggered it.
--
-- ARGV: namespace, ttl, then per candidate:
--       detector, subject_id, alert_id, event_time, cooldown, trigger_event_id, alert_json
-- Returns per candidate: 1 admit, 0 suppress.
--
-- The outbox ({ns}:outbox:{trigger_event_id}, a hash alert_id -> alert JSON) is what makes a
-- redelivery safe: the pipeline re-emits the stored alerts of redelivered events, so a crash
-- between this call and the broker acknowledging the alert loses nothing, and downstream
-- deduplicates by alert_id.
local ns = ARGV[1]
local ttl = tonumber(ARGV[2])
local out = {}
local i = 3
local n = #ARGV
while i <= n do
  local key = ns .. ':cd:' .. ARGV[i] .. ':' .. ARGV[i + 1]
  local alert_id = ARGV[i + 2]
  local event_time_text = ARGV[i + 3]
  local event_time = tonumber(event_time_text)
  local cooldown = tonumber(ARGV[i + 4])
  local trigger = ARGV[i + 5]
  local alert_json = ARGV[i + 6]
  i = i + 7
  local stored = redis.call('HMGET', key, 'alert_id', 'start')
  if stored[1] == alert_id then
    out[#out + 1] = 1
  elseif stored[1] and math.abs(event_time - tonumber(stored[2])) < cooldown then
    out[#out + 1] = 0
  else
    redis.call('HSET', key, 'alert_id', alert_id, 'start', event_time_text)
    redis.call('EXPIRE', key, ttl)
    local outbox = ns .. ':outbox:' .. trigger
    redis.call('HSET', outbox, alert_id, alert_json)
    redis.call('EXPIRE', outbox, ttl)
    out[#out + 1] = 1
  end
end
return out
