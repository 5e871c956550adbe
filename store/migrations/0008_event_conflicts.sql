-- +goose Up
-- Events the worker parked instead of applying: a different event arriving
-- under a (shard, stream id) already stored (reason 'conflict', typically
-- Redis reusing ids after it lost writes), with the stored version beside
-- it, or an event older than the kept history (reason 'expired'), which
-- cannot be told from a replay. Each is logged and counted
-- (phoenix_worker_event_conflicts_total); a redelivery parks nothing new.
CREATE TABLE event_conflicts (
    shard             int NOT NULL,
    stream_id         text NOT NULL,
    reason            text NOT NULL CHECK (reason IN ('conflict', 'expired')),
    product_id        text NOT NULL,
    shopper_id        text NOT NULL,
    action            text NOT NULL,
    at                timestamptz NOT NULL,
    stored_product_id text,
    stored_shopper_id text,
    stored_action     text,
    stored_at         timestamptz,
    parked_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shard, stream_id, product_id, shopper_id, action, at)
);

-- +goose Down
DROP TABLE event_conflicts;
