-- +goose Up
-- The catalog as the admin sees it; the worker keeps it in step with the
-- shop's catalog at start.
CREATE TABLE products (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    category    text NOT NULL,
    price_cents bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every Like event, keyed by its Redis stream entry id so that a replayed
-- entry is ignored (ON CONFLICT DO NOTHING).
CREATE TABLE like_events (
    stream_id  text PRIMARY KEY,
    product_id text NOT NULL,
    shopper_id text NOT NULL,
    action     text NOT NULL CHECK (action IN ('like', 'unlike')),
    at         timestamptz NOT NULL,
    synced_at  timestamptz NOT NULL DEFAULT now()
);

-- Per-product counters, changed only by events that were new. likes is the
-- net number of shoppers who like the product now.
CREATE TABLE product_counters (
    product_id text PRIMARY KEY,
    likes      bigint NOT NULL DEFAULT 0,
    like_events   bigint NOT NULL DEFAULT 0,
    unlike_events bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Likes and unlikes per product per minute, for charts and "last hour".
CREATE TABLE like_buckets (
    product_id text NOT NULL,
    minute     timestamptz NOT NULL,
    likes      bigint NOT NULL DEFAULT 0,
    unlikes    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (product_id, minute)
);
CREATE INDEX like_buckets_minute ON like_buckets (minute);

-- One row of totals: net likes, shoppers with at least one like now (each
-- event carries the shopper's like count after it, so the worker counts
-- 0 -> 1 and 1 -> 0 transitions), and events.
CREATE TABLE totals (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    likes    bigint NOT NULL DEFAULT 0,
    shoppers bigint NOT NULL DEFAULT 0,
    events   bigint NOT NULL DEFAULT 0
);
INSERT INTO totals (id) VALUES (true);

-- One row per worker consumer: its heartbeat and progress.
CREATE TABLE worker_status (
    consumer      text PRIMARY KEY,
    last_batch_at timestamptz,
    events_synced bigint NOT NULL DEFAULT 0,
    backlog       bigint NOT NULL DEFAULT 0,
    lag_ms        bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE worker_status;
DROP TABLE totals;
DROP TABLE like_buckets;
DROP TABLE product_counters;
DROP TABLE like_events;
DROP TABLE products;
