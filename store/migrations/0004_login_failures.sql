-- +goose Up
-- Failed admin logins per client address in a fixed window, shared by every
-- admin replica; the row '*' counts all clients together.
CREATE TABLE login_failures (
    client       text PRIMARY KEY,
    failures     integer NOT NULL,
    window_start timestamptz NOT NULL
);

-- +goose Down
DROP TABLE login_failures;
