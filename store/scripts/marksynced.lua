-- Raises a shard's synced mark (the highest stream id committed to
-- PostgreSQL and acknowledged), never lowers it: workers finish batches in
-- any order. With ARGV[2] (PostgreSQL's mark before the batch), it raises
-- only a mark at least that high: a mark behind it, or none, means Redis
-- lost writes (a flush, a cut append-only tail), and raising it would hide
-- the loss from the check before the repair.
-- KEYS[1] the synced mark, ARGV[1] a stream id (ms-seq), ARGV[2] "" or one
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function less(am, as, bm, bs) return am < bm or (am == bm and as < bs) end
local cur = redis.call('GET', KEYS[1])
if ARGV[2] ~= '' then
  if not cur then return 0 end
  local cm, cs = parse(cur)
  local pm, ps = parse(ARGV[2])
  if not cm or less(cm, cs, pm, ps) then return 0 end
end
if cur then
  local cm, cs = parse(cur)
  local nm, ns = parse(ARGV[1])
  if cm and not less(cm, cs, nm, ns) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
