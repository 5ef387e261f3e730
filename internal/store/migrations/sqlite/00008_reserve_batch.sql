-- Nothing to do on SQLite: this version adds alwrity_reserve_batch, the
-- PostgreSQL function that admits a group of reservations in one statement
-- (see the PostgreSQL migration of the same number). On SQLite the server
-- admits calls in memory. The migration exists so that both dialects stay
-- at the same schema version.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
