-- +goose Up
-- One row per (shopper, product) pair the record has seen, liked or not.
-- An unliked pair keeps its row, with the stream position of its last
-- event, so that an older event arriving late still changes nothing. Those
-- rows lived apart in like_gone, which cost every batch a second lookup per
-- pair and a delete and an insert per change; now a change is one upsert.
ALTER TABLE like_state ADD COLUMN liked boolean NOT NULL DEFAULT true;
INSERT INTO like_state (shopper_id, product_id, shard, liked_at, last_ms, last_seq, liked)
SELECT shopper_id, product_id, shard, 'epoch', last_ms, last_seq, false FROM like_gone;
ALTER TABLE like_state ALTER COLUMN liked DROP DEFAULT;
DROP TABLE like_gone;

-- A repair reads a shard's likes, "also liked" a product's recent likers,
-- the history's retention the unliked pairs it may forget.
DROP INDEX like_state_shard_shopper;
CREATE INDEX like_state_shard_shopper ON like_state (shard, shopper_id) WHERE liked;
DROP INDEX like_state_product_liked;
CREATE INDEX like_state_product_liked ON like_state (product_id, liked_at DESC) WHERE liked;
CREATE INDEX like_state_unliked_last ON like_state (last_ms) WHERE NOT liked;

-- +goose Down
CREATE TABLE like_gone (
    shopper_id text NOT NULL,
    product_id text NOT NULL,
    shard      int NOT NULL,
    last_ms    bigint NOT NULL,
    last_seq   bigint NOT NULL,
    PRIMARY KEY (shopper_id, product_id)
);
CREATE INDEX like_gone_last ON like_gone (last_ms);
INSERT INTO like_gone (shopper_id, product_id, shard, last_ms, last_seq)
SELECT shopper_id, product_id, shard, last_ms, last_seq FROM like_state WHERE NOT liked;
DELETE FROM like_state WHERE NOT liked;
DROP INDEX like_state_unliked_last;
DROP INDEX like_state_product_liked;
CREATE INDEX like_state_product_liked ON like_state (product_id, liked_at DESC);
DROP INDEX like_state_shard_shopper;
CREATE INDEX like_state_shard_shopper ON like_state (shard, shopper_id);
ALTER TABLE like_state DROP COLUMN liked;
