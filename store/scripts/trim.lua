-- Trims the event stream up to the oldest entry the configured consumer
-- group still needs, atomically, so that the group cannot move between the
-- look and the trim (groups.lua, which the store prepends, defines groups).
-- KEYS[1] the event stream
-- ARGV[1] the consumer group
-- Returns {entries removed, name of every other group on the stream}.
--
-- Only the configured group counts: a group left over after a rename would
-- otherwise pin the trim point forever and Redis would grow without bound.
-- The others are returned so that the worker can report them.
--
-- The entries the group still needs start at its oldest pending entry, or,
-- with nothing pending, after its last delivered entry (which is kept too:
-- one acknowledged entry costs nothing and the id needs no arithmetic).
-- XTRIM MINID keeps every entry with an id at or above that bound; "~" lets
-- Redis remove only whole internal nodes, which is cheaper and never goes
-- past the bound.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0}
end
local bound = nil
local others = {}
for _, info in ipairs(groups(KEYS[1])) do
  if info['name'] == ARGV[1] then
    bound = info['last-delivered-id']
    if info['pending'] > 0 then
      bound = redis.call('XPENDING', KEYS[1], ARGV[1])[2]
    end
  else
    others[#others + 1] = info['name']
  end
end
if bound == nil then
  -- The group has not read the stream yet: everything is unprocessed.
  return {0, unpack(others)}
end
return {redis.call('XTRIM', KEYS[1], 'MINID', '~', bound), unpack(others)}
