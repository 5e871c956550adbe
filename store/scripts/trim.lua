-- Trims the event stream up to the oldest entry that some consumer group
-- still needs, atomically, so that no group can move between the look and
-- the trim.
-- KEYS[1] the event stream
-- Returns the number of entries removed.
--
-- For each group, the entries it still needs start at its oldest pending
-- entry, or, with nothing pending, after its last delivered entry (which is
-- kept too: one acknowledged entry costs nothing and the id needs no
-- arithmetic). XTRIM
-- MINID keeps every entry with an id at or above the smallest such bound;
-- "~" lets Redis remove only whole internal nodes, which is cheaper and
-- never goes past the bound.
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function less(a, b)
  local ams, aseq = parse(a)
  local bms, bseq = parse(b)
  return ams < bms or (ams == bms and aseq < bseq)
end

if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then
  -- Nobody reads the stream yet: everything is unprocessed.
  return 0
end
local bound = nil
for _, g in ipairs(groups) do
  local info = {}
  for i = 1, #g, 2 do
    info[g[i]] = g[i + 1]
  end
  local need = info['last-delivered-id']
  if info['pending'] > 0 then
    need = redis.call('XPENDING', KEYS[1], info['name'])[2]
  end
  if bound == nil or less(need, bound) then
    bound = need
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', bound)
