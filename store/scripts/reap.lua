-- Deletes the group's consumers that have nothing pending and have been idle
-- for at least ARGV[2] milliseconds, atomically: a consumer cannot receive
-- entries between the look and the delete, so no pending entry is dropped
-- (XGROUP DELCONSUMER forgets a consumer's pending entries).
-- KEYS[1] the event stream
-- ARGV[1] the consumer group
-- ARGV[2] the idle threshold in milliseconds
-- ARGV[3] the calling consumer, never deleted
-- Returns the names of the deleted consumers.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {}
end
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then
  return {} -- no such group (yet)
end
local idle = tonumber(ARGV[2])
local deleted = {}
for _, c in ipairs(consumers) do
  local info = {}
  for i = 1, #c, 2 do
    info[c[i]] = c[i + 1]
  end
  if info['pending'] == 0 and info['idle'] >= idle and info['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    deleted[#deleted + 1] = info['name']
  end
end
return deleted
