-- +goose Up
-- like_events keyed by shard and stream id (ids are unique only within a
-- shard's stream) and partitioned by day of the id's time part, stream_ms:
-- the same (shard, id) always lands in the same partition, so the primary
-- key still sees every replay and every conflict, and old history is
-- dropped a partition at a time (PHOENIX_EVENT_RETENTION). Events of a
-- day without a partition land in like_events_default; creating that
-- day's partition moves them.
ALTER TABLE like_events RENAME TO like_events_unpartitioned;
ALTER INDEX like_events_pkey RENAME TO like_events_unpartitioned_pkey;
CREATE TABLE like_events (
    shard      int NOT NULL DEFAULT 0,
    stream_id  text NOT NULL,
    stream_ms  bigint NOT NULL,
    product_id text NOT NULL,
    shopper_id text NOT NULL,
    action     text NOT NULL CHECK (action IN ('like', 'unlike')),
    at         timestamptz NOT NULL,
    synced_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shard, stream_ms, stream_id)
) PARTITION BY RANGE (stream_ms);
CREATE TABLE like_events_default PARTITION OF like_events DEFAULT;

-- The start of the history kept (unix ms): events older than it cannot be
-- told from replays any more, so the worker parks them instead of applying
-- them. It moves forward as retention drops partitions.
CREATE TABLE event_history (
    id           boolean PRIMARY KEY DEFAULT true CHECK (id),
    kept_from_ms bigint NOT NULL DEFAULT 0
);
INSERT INTO event_history (id) VALUES (true);

-- like_events_partition makes sure the partition of a day (days since the
-- epoch, UTC) exists, moving that day's rows out of the default partition;
-- it reports whether it created it. Days before the kept history get none.
-- +goose StatementBegin
CREATE FUNCTION like_events_partition(day bigint) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    name text := 'like_events_' || to_char(timestamp 'epoch' + day * interval '1 day', 'YYYYMMDD');
    lo   bigint := day * 86400000;
    hi   bigint := (day + 1) * 86400000;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('phoenix like_events partitions'));
    IF to_regclass(name) IS NOT NULL OR hi <= (SELECT kept_from_ms FROM event_history) THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE like_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    EXECUTE format('WITH moved AS (DELETE FROM like_events_default WHERE stream_ms >= %s AND stream_ms < %s RETURNING *)
        INSERT INTO %I SELECT * FROM moved', lo, hi, name);
    EXECUTE format('ALTER TABLE like_events ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)', name, lo, hi);
    RETURN true;
END $$;
-- +goose StatementEnd

INSERT INTO like_events (shard, stream_id, stream_ms, product_id, shopper_id, action, at, synced_at)
SELECT 0, stream_id, split_part(stream_id, '-', 1)::bigint, product_id, shopper_id, action, at, synced_at
FROM like_events_unpartitioned;
SELECT like_events_partition(d) FROM (SELECT DISTINCT stream_ms / 86400000 AS d FROM like_events) days ORDER BY d;
DROP TABLE like_events_unpartitioned;

-- +goose Down
CREATE TABLE like_events_unpartitioned (
    stream_id  text PRIMARY KEY,
    product_id text NOT NULL,
    shopper_id text NOT NULL,
    action     text NOT NULL CHECK (action IN ('like', 'unlike')),
    at         timestamptz NOT NULL,
    synced_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO like_events_unpartitioned (stream_id, product_id, shopper_id, action, at, synced_at)
SELECT stream_id, product_id, shopper_id, action, at, synced_at FROM like_events WHERE shard = 0
ON CONFLICT DO NOTHING;
DROP TABLE like_events;
DROP FUNCTION like_events_partition(bigint);
DROP TABLE event_history;
ALTER TABLE like_events_unpartitioned RENAME TO like_events;
ALTER INDEX like_events_unpartitioned_pkey RENAME TO like_events_pkey;
