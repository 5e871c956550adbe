-- +goose Up
-- The replicas alive, as their heartbeats last told: shops report into
-- Redis and the workers relay them, workers and admins report here
-- directly. counts are running totals since the process started; the
-- previous heartbeat's are kept beside them, so a rate needs no history.
-- backlog is per shard of the event stream (workers only).
CREATE TABLE replicas (
    role         text NOT NULL CHECK (role IN ('shop', 'worker', 'admin')),
    name         text NOT NULL,
    version      text NOT NULL,
    seen_at      timestamptz NOT NULL,
    counts       jsonb NOT NULL DEFAULT '{}',
    prev_seen_at timestamptz NOT NULL,
    prev_counts  jsonb NOT NULL DEFAULT '{}',
    backlog      bigint[] NOT NULL DEFAULT '{}',
    lag_ms       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (role, name)
);

-- Demo controls set from the admin (PHOENIX_DEMO_CONTROLS): a pause of the
-- workers, or latency or errors injected into a target's calls. Each ends
-- by itself at until; ending one early moves until to now. Rows stay as
-- the log of who set what.
CREATE TABLE controls (
    id          bigserial PRIMARY KEY,
    target      text NOT NULL CHECK (target IN ('workers', 'worker-postgres', 'shop-redis')),
    effect      text NOT NULL CHECK (effect IN ('pause', 'latency', 'error')),
    rate        double precision NOT NULL CHECK (rate > 0 AND rate <= 1),
    latency_ms  bigint NOT NULL DEFAULT 0 CHECK (latency_ms >= 0),
    until       timestamptz NOT NULL,
    set_by      text NOT NULL,
    request_id  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX controls_until ON controls (until);

-- +goose Down
DROP TABLE controls;
DROP TABLE replicas;
