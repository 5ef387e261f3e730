-- SQLite's migration 00014 stores the ledger's times as Unix microseconds.
-- PostgreSQL's timestamptz columns are 8-byte integers of microseconds
-- already, so its schema stays as it is; this migration keeps the two
-- dialects' schema versions equal.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
