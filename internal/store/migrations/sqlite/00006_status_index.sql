-- The ledger rows whose status is not 200 (failed calls and the rare other
-- successes), for the usage-logs filter by status_code: without it a page
-- for a rare status walks the user's whole history, and its total_count
-- counted every matching ledger row. With it the count reads only these
-- rows (status 200 is the summaries' calls less them) and a page for any
-- other status reads its rows in page order. Partial, so the 97 % of calls
-- that succeed with 200 cost the write path nothing. store.ListLogs writes
-- the condition out exactly as here, or the planner will not use the index.

-- +goose Up
CREATE INDEX IF NOT EXISTS api_usage_logs_unusual_status ON api_usage_logs
    (user_id, status_code, "timestamp", id, billing_period, provider) WHERE status_code <> 200;

-- +goose Down
DROP INDEX IF EXISTS api_usage_logs_unusual_status;
