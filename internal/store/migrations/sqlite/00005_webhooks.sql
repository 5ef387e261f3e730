-- Webhooks: the endpoints administrators register, the outbox of events
-- (written in the same transaction as the change each reports), one
-- delivery per event and subscribed endpoint, and every attempt made.
-- Times are fixed-width UTC text, as everywhere in this dialect.

-- +goose Up
CREATE TABLE webhook_endpoints (
    id                          INTEGER PRIMARY KEY,
    url                         TEXT NOT NULL,
    -- The signing secret. It cannot be hashed: the server signs with it.
    secret                      TEXT NOT NULL,
    -- A rotated-out secret keeps signing (beside the new one) until
    -- previous_secret_until, so receivers can switch without losing
    -- deliveries.
    previous_secret             TEXT,
    previous_secret_until       TEXT,
    events                      TEXT NOT NULL,   -- JSON array of event types
    description                 TEXT NOT NULL DEFAULT '',
    active                      INTEGER NOT NULL DEFAULT 1,
    created_at                  TEXT NOT NULL,
    deactivated_at              TEXT,
    secret_rotated_at           TEXT
);

CREATE TABLE webhook_events (
    id          INTEGER PRIMARY KEY,
    event_id    TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    payload     TEXT NOT NULL,                   -- JSON: the event's data
    created_at  TEXT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY,
    event_id         TEXT NOT NULL REFERENCES webhook_events(event_id),
    endpoint_id      INTEGER NOT NULL REFERENCES webhook_endpoints(id),
    status           TEXT NOT NULL DEFAULT 'pending', -- pending | delivered | failed
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    -- A worker's claim: no other worker takes the delivery before
    -- lease_until, and only the holder of lease_token records its outcome.
    lease_until      TEXT,
    lease_token      TEXT,
    last_status      INTEGER,
    last_error       TEXT,
    delivered_at     TEXT,
    created_at       TEXT NOT NULL,
    UNIQUE (event_id, endpoint_id)
);
-- What the workers look for: pending deliveries by due time.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);

CREATE TABLE webhook_attempts (
    id            INTEGER PRIMARY KEY,
    delivery_id   INTEGER NOT NULL REFERENCES webhook_deliveries(id),
    attempt       INTEGER NOT NULL,
    attempted_at  TEXT NOT NULL,
    status_code   INTEGER,
    error         TEXT,
    duration_ms   INTEGER NOT NULL,
    -- Each claim numbers its attempt, so an attempt is recorded once.
    UNIQUE (delivery_id, attempt)
);

-- +goose Down
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_events;
DROP TABLE webhook_endpoints;
