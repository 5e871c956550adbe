-- +goose Up
-- Every repair of Redis from PostgreSQL's record (the worker's, when it
-- noticed that Redis lost writes, or phoenix reconcile's): the admin reads
-- PostgreSQL only, and shows the recent ones as a notice.
CREATE TABLE redis_repairs (
    id                 bigserial PRIMARY KEY,
    shard              int NOT NULL,
    reason             text NOT NULL,
    repaired_by        text NOT NULL,
    drained            bigint NOT NULL DEFAULT 0,
    shoppers_fixed     bigint NOT NULL DEFAULT 0,
    products_recounted bigint NOT NULL DEFAULT 0,
    started_at         timestamptz NOT NULL,
    finished_at        timestamptz NOT NULL
);
CREATE INDEX redis_repairs_finished_at ON redis_repairs (finished_at);

-- +goose Down
DROP TABLE redis_repairs;
