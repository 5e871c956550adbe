-- Shared by the scripts the store prepends it to (trim.lua, backlog.lua).
-- groups returns the consumer groups of a stream as tables keyed by
-- XINFO GROUPS' field names (name, pending, last-delivered-id, lag, ...).
local function groups(stream)
  local out = {}
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local info = {}
    for i = 1, #g, 2 do
      info[g[i]] = g[i + 1]
    end
    out[#out + 1] = info
  end
  return out
end
