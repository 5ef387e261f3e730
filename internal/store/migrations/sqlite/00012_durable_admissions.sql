-- Nothing to do on SQLite: this version makes PostgreSQL's admission
-- functions commit durably (see the PostgreSQL migration of the same
-- number). On SQLite the server admits calls in memory. The migration
-- exists so that both dialects stay at the same schema version.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
