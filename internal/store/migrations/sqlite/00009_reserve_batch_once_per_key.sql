-- Nothing to do on SQLite: this version changes the plan of
-- alwrity_reserve_batch, a PostgreSQL function (see the PostgreSQL
-- migration of the same number). The migration exists so that both
-- dialects stay at the same schema version.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
