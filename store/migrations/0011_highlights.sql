-- +goose Up
-- The shop's highlights ("most liked", "trending now", "also liked") are
-- derived from this record by one worker a round and written to Redis
-- (see store/highlights.go).

-- "Also liked" reads a product's most recent likers.
CREATE INDEX like_state_product_liked ON like_state (product_id, liked_at DESC);

-- Every write of a product's counters takes the next number: the batches
-- that write them commit one at a time (the apply lock), so the products
-- changed since a number are exactly those with a higher one.
CREATE SEQUENCE product_changes;
ALTER TABLE product_counters ADD COLUMN changed bigint NOT NULL DEFAULT 0;
UPDATE product_counters SET changed = nextval('product_changes');
CREATE INDEX product_counters_changed ON product_counters (changed);

-- The round lease: a worker runs a round only when it moves this time
-- forward past the interval, so replicas do not repeat each other's work.
CREATE TABLE highlight_rounds (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    at timestamptz NOT NULL DEFAULT 'epoch'
);
INSERT INTO highlight_rounds (id) VALUES (true);

-- +goose Down
DROP TABLE highlight_rounds;
DROP INDEX product_counters_changed;
ALTER TABLE product_counters DROP COLUMN changed;
DROP SEQUENCE product_changes;
DROP INDEX like_state_product_liked;
