-- wrk script: htmx Likes and Unlikes from many shoppers, each request a
-- real change. shoppers.lua (written by tools/bench, path in BENCH_DATA)
-- defines shoppers = {{cookie, token}, ...} and products = {id, ...}.
dofile(os.getenv("BENCH_DATA"))
local n = tonumber(os.getenv("BENCH_OFFSET") or "0")

request = function()
  n = n + 1
  local s = shoppers[(n % #shoppers) + 1]
  local round = math.floor(n / #shoppers)
  -- Each shopper likes a product, then unlikes it, then likes the next.
  local p = products[(math.floor(round / 2) % #products) + 1]
  local action = "like"
  if round % 2 == 1 then action = "unlike" end
  return wrk.format("POST", "/products/" .. p .. "/" .. action,
    {["Cookie"] = s[1], ["X-CSRF-Token"] = s[2], ["HX-Request"] = "true"}, "")
end
