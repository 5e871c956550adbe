-- Checks and takes one request from every given rate limit, atomically:
-- either all limits allow the request and each is charged, or none is.
-- Each limit is a GCRA (generic cell rate algorithm) bucket: it allows
-- bursts of `burst` requests, then one request per `interval`.
-- KEYS[i]       the limit's key (its "theoretical arrival time", in µs)
-- ARGV[2i-1]    interval between requests in µs
-- ARGV[2i]      burst (requests allowed at once)
-- Returns {allowed (0 or 1), retry after in µs}.
-- The time is Redis's own, so replicas with skewed clocks share one limit.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
local retry = 0
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new = tat + interval
  local allowAt = new - burst * interval
  if allowAt > now then
    retry = math.max(retry, allowAt - now)
  end
  tats[i] = new
end
if retry > 0 then
  return {0, retry}
end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, tats[i], 'PX', math.ceil((tats[i] - now) / 1000) + 1)
end
return {1, 0}
