-- Charges one new shopper id to a client address (ratelimit.lua, which the
-- store prepends, defines charge).
-- KEYS[1] the address's limit, ARGV[1] interval in µs, ARGV[2] burst.
-- Returns {allowed (0 or 1), retry after in µs}.
return charge({{KEYS[1], ARGV[1], ARGV[2]}}, now_us())
