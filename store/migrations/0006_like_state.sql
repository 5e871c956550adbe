-- +goose Up
-- PostgreSQL is the record of which shopper likes which product now; the
-- counters move only when this state changes, so a Like repeated after
-- Redis lost data counts once. last_ms/last_seq is the stream id of the
-- newest event applied to the pair: an older event delivered late (another
-- worker's batch committed first) changes nothing.
CREATE TABLE like_state (
    shopper_id text NOT NULL,
    product_id text NOT NULL,
    shard      int NOT NULL,
    liked_at   timestamptz NOT NULL,
    last_ms    bigint NOT NULL,
    last_seq   bigint NOT NULL,
    PRIMARY KEY (shopper_id, product_id)
);
CREATE INDEX like_state_shard_shopper ON like_state (shard, shopper_id);

-- Pairs whose newest applied event was an unlike: the tombstone that keeps
-- a like delivered late from bringing the pair back. Rows older than the
-- kept history are pruned with it (older events are not applied anyway).
CREATE TABLE like_gone (
    shopper_id text NOT NULL,
    product_id text NOT NULL,
    shard      int NOT NULL,
    last_ms    bigint NOT NULL,
    last_seq   bigint NOT NULL,
    PRIMARY KEY (shopper_id, product_id)
);
CREATE INDEX like_gone_last ON like_gone (last_ms);

-- The highest stream id applied per shard, compared as (ms, seq): when a
-- shard's stream generates ids below it, Redis lost writes PostgreSQL has.
CREATE TABLE stream_marks (
    shard      int PRIMARY KEY,
    last_ms    bigint NOT NULL,
    last_seq   bigint NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Backfill from the history: every event so far came from the one stream
-- (shard 0); a pair's state is its newest event.
CREATE TEMP TABLE last_events ON COMMIT DROP AS
SELECT DISTINCT ON (shopper_id, product_id) shopper_id, product_id, action, at, ms, seq
FROM (SELECT shopper_id, product_id, action, at,
             split_part(stream_id, '-', 1)::bigint AS ms, split_part(stream_id, '-', 2)::bigint AS seq
      FROM like_events) e
ORDER BY shopper_id, product_id, ms DESC, seq DESC;

INSERT INTO like_state (shopper_id, product_id, shard, liked_at, last_ms, last_seq)
SELECT shopper_id, product_id, 0, at, ms, seq FROM last_events WHERE action = 'like';
INSERT INTO like_gone (shopper_id, product_id, shard, last_ms, last_seq)
SELECT shopper_id, product_id, 0, ms, seq FROM last_events WHERE action = 'unlike';

INSERT INTO stream_marks (shard, last_ms, last_seq, updated_at)
SELECT 0, ms, seq, now() FROM last_events ORDER BY ms DESC, seq DESC LIMIT 1;

-- The counters now follow the state; where Redis had lost data and a like
-- was counted twice, this is where it stops.
UPDATE product_counters c SET likes = COALESCE(s.n, 0)
FROM (SELECT p.product_id, n FROM product_counters p
      LEFT JOIN (SELECT product_id, count(*) AS n FROM like_state GROUP BY product_id) l USING (product_id)) s
WHERE s.product_id = c.product_id AND c.likes IS DISTINCT FROM COALESCE(s.n, 0);
UPDATE totals SET likes = (SELECT count(*) FROM like_state),
    shoppers = (SELECT count(DISTINCT shopper_id) FROM like_state);

-- +goose Down
DROP TABLE stream_marks;
DROP TABLE like_gone;
DROP TABLE like_state;
