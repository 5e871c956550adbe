-- +goose Up
-- Simulated shoppers started from the demo page: a control like the
-- others (it ends by itself, logged with who set it), whose load the admin
-- replica that took it (owner) generates against the shop, recording its
-- progress here for every admin to show. rate is the share of requests
-- that are Likes or Unlikes; the rest are page views.
ALTER TABLE controls DROP CONSTRAINT controls_target_check,
    ADD CONSTRAINT controls_target_check CHECK (target IN ('workers', 'worker-postgres', 'shop-redis', 'shoppers')),
    DROP CONSTRAINT controls_effect_check,
    ADD CONSTRAINT controls_effect_check CHECK (effect IN ('pause', 'latency', 'error', 'load')),
    ADD COLUMN per_second integer NOT NULL DEFAULT 0 CHECK (per_second >= 0),
    ADD COLUMN shoppers integer NOT NULL DEFAULT 0 CHECK (shoppers >= 0),
    ADD COLUMN owner text NOT NULL DEFAULT '',
    ADD COLUMN sent bigint NOT NULL DEFAULT 0,
    ADD COLUMN failed bigint NOT NULL DEFAULT 0,
    ADD COLUMN progress_at timestamptz;

-- +goose Down
DELETE FROM controls WHERE target = 'shoppers';
ALTER TABLE controls DROP COLUMN progress_at, DROP COLUMN failed, DROP COLUMN sent,
    DROP COLUMN owner, DROP COLUMN shoppers, DROP COLUMN per_second,
    DROP CONSTRAINT controls_effect_check,
    ADD CONSTRAINT controls_effect_check CHECK (effect IN ('pause', 'latency', 'error')),
    DROP CONSTRAINT controls_target_check,
    ADD CONSTRAINT controls_target_check CHECK (target IN ('workers', 'worker-postgres', 'shop-redis'));
