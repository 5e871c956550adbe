-- +goose Up
-- The shard count (PHOENIX_REDIS_SHARDS) under which the workers apply
-- shards' batches side by side (Stats.ApplyOwned). A worker started with
-- another count sees the same shoppers under other shards, so its batches
-- apply alone until its count is the recorded one. 0: none recorded yet.
CREATE TABLE shard_layout (
    id     boolean PRIMARY KEY DEFAULT true CHECK (id),
    shards int NOT NULL DEFAULT 0 CHECK (shards >= 0)
);
INSERT INTO shard_layout DEFAULT VALUES;

-- +goose Down
DROP TABLE shard_layout;
