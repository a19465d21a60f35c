-- Admit or suppress candidate alerts: one alert per (detector, subject) per cool-down period.
--
-- ARGV: namespace, ttl, then per candidate: detector, subject_id, alert_id, event_time, cooldown
-- Returns per candidate: 1 admit (new, or the same alert_id again after a redelivery, so a
-- crash between storing and publishing loses nothing), 0 suppress.
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
  i = i + 5
  local stored = redis.call('HMGET', key, 'alert_id', 'start')
  if stored[1] == alert_id then
    out[#out + 1] = 1
  elseif stored[1] and event_time < tonumber(stored[2]) + cooldown
         and event_time > tonumber(stored[2]) - cooldown then
    out[#out + 1] = 0
  else
    redis.call('HSET', key, 'alert_id', alert_id, 'start', event_time_text)
    redis.call('EXPIRE', key, ttl)
    out[#out + 1] = 1
  end
end
return out
