-- Indexes that keep the read routes flat as the ledger grows (issue 3,
-- docs/BENCHMARKS.md "Reads as the ledger grows").

-- +goose Up
-- A user's logs of one period in page order ("timestamp", id), for the
-- usage-logs filter by billing_period: without it a page walks the user's
-- whole history back to that period. Provider comes last so a provider
-- filter is checked in the index and only matching rows are read.
CREATE INDEX IF NOT EXISTS api_usage_logs_user_period_time ON api_usage_logs (user_id, billing_period, "timestamp", id, provider);

-- The newest calls in page order ("timestamp", id), with what the health
-- window reads (provider, status, latency): health then reads no table
-- rows, which halved the cost of a 10,000-call window, and the all-users
-- page needs no sort of equal timestamps. It replaces the plain time
-- index in every query that used it (also provider error counts).
CREATE INDEX IF NOT EXISTS api_usage_logs_time_calls ON api_usage_logs ("timestamp", id, provider, status_code, response_time);
DROP INDEX IF EXISTS api_usage_logs_time;

-- An all-users usage-logs page counts its matches from the summaries (one
-- row per user and period); SQLite sums total_calls from this narrow index
-- instead of reading the wide rows, three times faster.
CREATE INDEX IF NOT EXISTS usage_summaries_period_calls ON usage_summaries (billing_period, total_calls);

-- +goose Down
CREATE INDEX IF NOT EXISTS api_usage_logs_time ON api_usage_logs ("timestamp");
DROP INDEX IF EXISTS usage_summaries_period_calls;
DROP INDEX IF EXISTS api_usage_logs_time_calls;
DROP INDEX IF EXISTS api_usage_logs_user_period_time;
