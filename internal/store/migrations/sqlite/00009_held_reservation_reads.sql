-- The sweeper's index reservations_held (status, expires_at) held an entry
-- for every reservation ever journaled, and every settle of one added one
-- more. It now holds the held reservations only: what the sweeper and the
-- journal read. (The PostgreSQL migration of the same number also changes
-- the plan of alwrity_reserve_batch, a function SQLite does not have.)

-- +goose Up
DROP INDEX reservations_held;
CREATE INDEX reservations_held ON reservations (expires_at) WHERE status = 'held';

-- +goose Down
DROP INDEX reservations_held;
CREATE INDEX reservations_held ON reservations (status, expires_at);
