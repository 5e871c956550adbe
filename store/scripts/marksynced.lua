-- Raises a shard's synced mark (the highest stream id committed to
-- PostgreSQL and acknowledged), never lowers it: workers finish batches in
-- any order.
-- KEYS[1] the synced mark, ARGV[1] a stream id (ms-seq)
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local cur = redis.call('GET', KEYS[1])
if cur then
  local cm, cs = parse(cur)
  local nm, ns = parse(ARGV[1])
  if cm and (nm < cm or (nm == cm and ns <= cs)) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
