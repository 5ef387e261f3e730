-- What reservations hold is the sum of the held reservations themselves,
-- no longer a counter kept beside the usage in the summary rows (see the
-- PostgreSQL migration of the same number for why). On SQLite the server
-- admits calls in memory and journals the holds that outlive a moment; the
-- journal's held rows are what a restart and the preflight read back.

-- +goose Up
ALTER TABLE usage_summaries DROP COLUMN reserved_calls;
ALTER TABLE usage_summaries DROP COLUMN reserved_tokens;
ALTER TABLE usage_summaries DROP COLUMN reserved_cost;
ALTER TABLE usage_summary_providers DROP COLUMN reserved_calls;
ALTER TABLE usage_summary_providers DROP COLUMN reserved_tokens;
ALTER TABLE usage_summary_providers DROP COLUMN reserved_cost;
CREATE INDEX reservations_user_held ON reservations (user_id, billing_period, provider) WHERE status = 'held';

-- +goose Down
DROP INDEX IF EXISTS reservations_user_held;
ALTER TABLE usage_summaries ADD COLUMN reserved_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_summaries ADD COLUMN reserved_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_summaries ADD COLUMN reserved_cost INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_summary_providers ADD COLUMN reserved_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_summary_providers ADD COLUMN reserved_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_summary_providers ADD COLUMN reserved_cost INTEGER NOT NULL DEFAULT 0;
UPDATE usage_summaries SET
    reserved_calls = (SELECT COALESCE(SUM(calls), 0) FROM reservations r WHERE r.status = 'held'
        AND r.user_id = usage_summaries.user_id AND r.billing_period = usage_summaries.billing_period),
    reserved_cost = (SELECT COALESCE(SUM(cost), 0) FROM reservations r WHERE r.status = 'held'
        AND r.user_id = usage_summaries.user_id AND r.billing_period = usage_summaries.billing_period);
UPDATE usage_summary_providers SET
    reserved_calls = (SELECT COALESCE(SUM(calls), 0) FROM reservations r WHERE r.status = 'held'
        AND r.user_id = usage_summary_providers.user_id AND r.billing_period = usage_summary_providers.billing_period
        AND r.provider = usage_summary_providers.provider),
    reserved_tokens = (SELECT COALESCE(SUM(tokens), 0) FROM reservations r WHERE r.status = 'held'
        AND r.user_id = usage_summary_providers.user_id AND r.billing_period = usage_summary_providers.billing_period
        AND r.provider = usage_summary_providers.provider),
    reserved_cost = (SELECT COALESCE(SUM(cost), 0) FROM reservations r WHERE r.status = 'held'
        AND r.user_id = usage_summary_providers.user_id AND r.billing_period = usage_summary_providers.billing_period
        AND r.provider = usage_summary_providers.provider);
