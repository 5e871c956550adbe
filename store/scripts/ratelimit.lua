-- charge(limits, now) checks and takes one request from every given rate
-- limit, atomically: either all limits allow the request and each is
-- charged, or none is. The store prepends this file to like.lua (a Like's
-- limits are charged in the Like's own round trip) and to admit.lua (new
-- shopper ids per client address).
-- Each limit is {key, interval between requests in µs, burst}, a GCRA
-- (generic cell rate algorithm) bucket: bursts of `burst` requests, then one
-- request per `interval`; an interval of 0 limits nothing. The key holds the
-- limit's "theoretical arrival time" in µs and expires when it is spent.
-- now is Redis's own time in µs (now_us), so replicas with skewed clocks
-- share one limit.
-- Returns {allowed (0 or 1), retry after in µs}.
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function charge(limits, now)
  local tats = {}
  local retry = 0
  for i, l in ipairs(limits) do
    local interval, burst = tonumber(l[2]), tonumber(l[3])
    if interval > 0 then
      local tat = tonumber(redis.call('GET', l[1]) or now)
      if tat < now then tat = now end
      local new = tat + interval
      local allowAt = new - burst * interval
      if allowAt > now then
        retry = math.max(retry, allowAt - now)
      end
      tats[i] = new
    end
  end
  if retry > 0 then
    return {0, retry}
  end
  for i, l in ipairs(limits) do
    if tats[i] then
      redis.call('SET', l[1], tats[i], 'PX', math.ceil((tats[i] - now) / 1000) + 1)
    end
  end
  return {1, 0}
end
