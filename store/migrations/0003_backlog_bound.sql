-- +goose Up
-- The backlog bound the worker runs with (PHOENIX_MAX_BACKLOG), so that the
-- admin, which reads PostgreSQL only, can show the backlog against it.
ALTER TABLE worker_status ADD COLUMN max_backlog bigint NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE worker_status DROP COLUMN max_backlog;
