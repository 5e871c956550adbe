-- Sets or clears one shopper's Like of one product, atomically, after the
-- back-pressure check and the rate limits (ratelimit.lua, which the store
-- prepends, defines charge and now_us).
-- KEYS[1] the shopper's set of liked product ids
-- KEYS[2] the hash of live counts (product id -> likes)
-- KEYS[3] the event stream
-- KEYS[4] the shopper's rate limit, KEYS[5] the client address's
-- KEYS[6] the shard's repairing flag (set while Redis is repaired from
-- PostgreSQL, see store/repair.go)
-- ARGV[1] product id, ARGV[2] shopper id, ARGV[3] "like" or "unlike",
-- ARGV[4] the backlog bound (0: none),
-- ARGV[5], ARGV[6] the shopper's limit: interval in µs (0: none), burst
-- ARGV[7], ARGV[8] the address's limit, likewise
-- ARGV[9] the request's W3C traceparent, or "" (tracing off or the request
-- not sampled): the event carries it only when set, so that the worker's
-- batch span can link to the request, and tracing off adds no bytes
-- Returns {1 or 0 (changed or not), count after the call},
-- {-1, retry after in µs} over a rate limit, {-2, stream length} when the
-- stream is over its bound, or {-3, 0} while the shard is repaired; those
-- change nothing.
--
-- Back-pressure: the worker trims acknowledged entries, so the stream's
-- length is what the workers have not yet delivered and acknowledged; with
-- the workers stopped it is exactly the undelivered backlog. XLEN is O(1),
-- and refusing new events here never trims unread ones.
if redis.call('EXISTS', KEYS[6]) == 1 then return {-3, 0} end
local bound = tonumber(ARGV[4])
if bound > 0 then
  local n = redis.call('XLEN', KEYS[3])
  if n >= bound then return {-2, n} end
end
local now = now_us()
local allowed = charge({{KEYS[4], ARGV[5], ARGV[6]}, {KEYS[5], ARGV[7], ARGV[8]}}, now)
if allowed[1] == 0 then return {-1, allowed[2]} end
local changed
if ARGV[3] == 'like' then
  changed = redis.call('SADD', KEYS[1], ARGV[1])
else
  changed = redis.call('SREM', KEYS[1], ARGV[1])
end
-- Each event carries the shopper's number of likes after it, so the worker
-- can count shoppers who like something (0 -> 1 and 1 -> 0) without a row
-- per shopper. Only a real change touches the counter and the stream, so a
-- repeated request (a double click, a retry) never counts twice. Its time
-- is Redis's (in ms), not the shop's clock, which may drift.
local count
if changed == 1 then
  local delta = 1
  if ARGV[3] ~= 'like' then delta = -1 end
  count = redis.call('HINCRBY', KEYS[2], ARGV[1], delta)
  local ms = math.floor(now / 1000)
  local at, likes = string.format('%d', ms), redis.call('SCARD', KEYS[1])
  -- A stream that is not there was lost (the worker creates it with its
  -- group): ids start again from the clock, and one of this millisecond
  -- may be in PostgreSQL already, under which this event would be parked
  -- as a conflict. The next millisecond is past every id this server gave
  -- out before (its clock runs forward).
  local id = '*'
  if redis.call('EXISTS', KEYS[3]) == 0 then id = string.format('%d-0', ms + 1) end
  if ARGV[9] ~= nil and ARGV[9] ~= '' then
    redis.call('XADD', KEYS[3], id, 'product', ARGV[1], 'shopper', ARGV[2], 'action', ARGV[3],
      'at', at, 'likes', likes, 'traceparent', ARGV[9])
  else
    redis.call('XADD', KEYS[3], id, 'product', ARGV[1], 'shopper', ARGV[2], 'action', ARGV[3],
      'at', at, 'likes', likes)
  end
else
  count = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
end
return {changed, count}
