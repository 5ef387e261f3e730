-- Reservations (binding admissions) and the pricing catalog version that
-- lets every replica notice a price change within one batch.

-- +goose Up
CREATE TABLE reservations (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    billing_period  TEXT NOT NULL,
    provider        TEXT NOT NULL,
    model           TEXT NOT NULL DEFAULT '',
    calls           BIGINT NOT NULL,
    tokens          BIGINT NOT NULL,
    cost            BIGINT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'held',
    event_id        TEXT,
    expires_at      TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ
);
CREATE INDEX reservations_held ON reservations (status, expires_at);

-- One row; version increases in the same transaction as any change to
-- prices or aliases.
CREATE TABLE catalog_state (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  BIGINT NOT NULL
);
INSERT INTO catalog_state (id, version) VALUES (1, 1);

-- +goose Down
DROP TABLE IF EXISTS catalog_state;
DROP TABLE IF EXISTS reservations;
