-- Counts a consumer group's backlog from what the stream holds, atomically
-- (groups.lua, which the store prepends, defines groups).
-- KEYS[1] the event stream
-- ARGV[1] the consumer group
-- ARGV[2] how many entries a count may read before it gives up
-- Returns {found, undelivered, pending, exact, last-delivered-id,
-- last-generated-id}; found is 0 when the group does not exist (then every
-- entry is undelivered).
--
-- Not XINFO's lag: Redis 7.0 gets it wrong after a restart that replays the
-- append-only file (redis/redis#13337). Undelivered is XLEN minus the
-- entries at or before the group's last-delivered id. Trimming keeps that
-- head short, so it is counted first; when it is long (the trim has not run
-- yet), the entries after the id are counted instead; when both are long,
-- the estimate is the smaller of the lag and an upper bound, and exact is 0.
local cap = tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, 0, 0, 1, '0-0', '0-0'}
end
local len = redis.call('XLEN', KEYS[1])
local stream = redis.call('XINFO', 'STREAM', KEYS[1])
local lastGenerated = '0-0'
for i = 1, #stream, 2 do
  if stream[i] == 'last-generated-id' then
    lastGenerated = stream[i + 1]
  end
end
local group = nil
for _, info in ipairs(groups(KEYS[1])) do
  if info['name'] == ARGV[1] then
    group = info
  end
end
if group == nil then
  return {0, len, 0, 1, '0-0', lastGenerated}
end
local last = group['last-delivered-id']
local pending = group['pending']
local head = #redis.call('XRANGE', KEYS[1], '-', last, 'COUNT', cap + 1)
if head <= cap then
  return {1, len - head, pending, 1, last, lastGenerated}
end
local tail = #redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', cap + 1)
if tail <= cap then
  return {1, tail, pending, 1, last, lastGenerated}
end
local undelivered = len - head -- an upper bound: the head is longer
local lag = group['lag']
if type(lag) == 'number' and lag >= tail and lag < undelivered then
  undelivered = lag
end
return {1, undelivered, pending, 0, last, lastGenerated}
