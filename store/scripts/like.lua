-- Sets or clears one shopper's Like of one product, atomically.
-- KEYS[1] the shopper's set of liked product ids
-- KEYS[2] the hash of live counts (product id -> likes)
-- KEYS[3] the event stream
-- ARGV[1] product id, ARGV[2] shopper id, ARGV[3] "like" or "unlike",
-- ARGV[4] time in unix milliseconds
-- Returns {changed (0 or 1), count after the call}. Each event also carries
-- the shopper's number of likes after it, so the worker can count shoppers
-- who like something (0 -> 1 and 1 -> 0) without a row per shopper.
-- Only a real change touches the counter and the stream, so repeating a
-- request (a double click, a client retry) never counts twice.
-- KEYS[4...], ARGV[5...] (optional) rate limits to charge first, as
-- ratelimit.lua's charge reads them (the store prepends that file): over a
-- limit nothing changes and the result is {-1, retry after in µs}. One round
-- trip for the limits and the Like.
if #KEYS > 3 then
  local allowed = charge(4, 5)
  if allowed[1] == 0 then return {-1, allowed[2]} end
end
local changed
if ARGV[3] == 'like' then
  changed = redis.call('SADD', KEYS[1], ARGV[1])
else
  changed = redis.call('SREM', KEYS[1], ARGV[1])
end
local count
if changed == 1 then
  local delta = 1
  if ARGV[3] ~= 'like' then delta = -1 end
  count = redis.call('HINCRBY', KEYS[2], ARGV[1], delta)
  redis.call('XADD', KEYS[3], '*', 'product', ARGV[1], 'shopper', ARGV[2], 'action', ARGV[3], 'at', ARGV[4],
    'likes', redis.call('SCARD', KEYS[1]))
else
  count = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
end
return {changed, count}
