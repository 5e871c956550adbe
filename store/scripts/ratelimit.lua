-- charge(first_key, first_arg) checks and takes one request from every given
-- rate limit, atomically: either all limits allow the request and each is
-- charged, or none is. The store appends a call to it ("return charge(1, 1)")
-- for the Limiter, and prepends it to like.lua, which charges a Like's limits
-- in the same round trip as the Like.
-- Each limit is a GCRA (generic cell rate algorithm) bucket: it allows
-- bursts of `burst` requests, then one request per `interval`.
-- KEYS[k], k >= first_key            the limit's key (its "theoretical arrival time", in µs)
-- ARGV[first_arg + 2(k - first_key)] interval between requests in µs
-- the ARGV after that                burst (requests allowed at once)
-- Returns {allowed (0 or 1), retry after in µs}.
-- The time is Redis's own, so replicas with skewed clocks share one limit.
local function charge(first_key, first_arg)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local tats = {}
  local retry = 0
  for k = first_key, #KEYS do
    local a = first_arg + 2 * (k - first_key)
    local interval = tonumber(ARGV[a])
    local burst = tonumber(ARGV[a + 1])
    local tat = tonumber(redis.call('GET', KEYS[k]) or now)
    if tat < now then tat = now end
    local new = tat + interval
    local allowAt = new - burst * interval
    if allowAt > now then
      retry = math.max(retry, allowAt - now)
    end
    tats[k] = new
  end
  if retry > 0 then
    return {0, retry}
  end
  for k = first_key, #KEYS do
    redis.call('SET', KEYS[k], tats[k], 'PX', math.ceil((tats[k] - now) / 1000) + 1)
  end
  return {1, 0}
end
