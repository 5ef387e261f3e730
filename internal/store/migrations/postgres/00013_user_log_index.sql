-- The latest call of each period summary (last_event_at, the latest
-- "timestamp" of its ledger rows; store.Reconcile checks it): a filter of
-- the usage logs by period reads the user's index range from the period's
-- start to it. SQLite, whose migration of the same number replaces its two
-- indexes by user with one, needs the bound; PostgreSQL keeps both indexes
-- (its group commits meet their target with them) and uses the bound
-- alike.

-- +goose Up
ALTER TABLE usage_summaries ADD COLUMN last_event_at TIMESTAMPTZ;
UPDATE usage_summaries s SET last_event_at = (SELECT MAX(l."timestamp") FROM api_usage_logs l
    WHERE l.user_id = s.user_id AND l.billing_period = s.billing_period AND l.period_start = s.period_start);

-- +goose Down
ALTER TABLE usage_summaries DROP COLUMN last_event_at;
