-- +goose Up
-- Every Like inserted an entry into this index, for one reader: the repair
-- of a shard after Redis lost writes, which now reads the shard's liked
-- pairs from a scan of like_state. That repair is rare and rewrites the
-- whole shard anyway; the worker's drain applies 5 to 12 % more events a
-- second without the index (BenchmarkSync_Drain, two shards, interleaved).
DROP INDEX like_state_shard_shopper;

-- +goose Down
CREATE INDEX like_state_shard_shopper ON like_state (shard, shopper_id) WHERE liked;
