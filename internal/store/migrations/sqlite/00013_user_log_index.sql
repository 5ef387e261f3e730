-- One index for a user's logs instead of two, and the bound that lets it
-- serve a period's logs (issue 3, docs/BENCHMARKS.md "Ingestion").
--
-- Every ledger row is written into each index of its table, and on SQLite
-- the one writer's commits are what ingestion waits for: the two indexes
-- by user, (user_id, "timestamp") and (user_id, billing_period,
-- "timestamp", id, provider), cost every row two B-tree inserts. The one
-- index that replaces them keeps a user's rows in page order
-- ("timestamp", id) and carries the period and provider, so a filter by
-- either is checked in the index. A filter by period reads only the index
-- range from the period's start to the period's latest call, which the
-- period's summary now records (last_event_at, the latest "timestamp" of
-- its ledger rows; store.Reconcile checks it). A period's rows do not lie
-- between the starts of the periods named before and after it (calls made
-- under a subscription that is cancelled at once fall in the days of the
-- calendar month that follows), so the name alone gives no tight bound.
--
-- On a large ledger this takes a while: at ten million rows, about 25 s to
-- build the index and 15 s to fill last_event_at on this project's
-- machine kind; the server is not serving while it migrates.

-- +goose Up
ALTER TABLE usage_summaries ADD COLUMN last_event_at TEXT;
UPDATE usage_summaries SET last_event_at = (SELECT MAX(l."timestamp") FROM api_usage_logs l
    WHERE l.user_id = usage_summaries.user_id AND l.billing_period = usage_summaries.billing_period
      AND l.period_start = usage_summaries.period_start);
CREATE INDEX api_usage_logs_user_log ON api_usage_logs (user_id, "timestamp", id, billing_period, provider);
DROP INDEX api_usage_logs_user_period_time;
DROP INDEX api_usage_logs_user_time;

-- +goose Down
CREATE INDEX api_usage_logs_user_time ON api_usage_logs (user_id, "timestamp");
CREATE INDEX api_usage_logs_user_period_time ON api_usage_logs (user_id, billing_period, "timestamp", id, provider);
DROP INDEX api_usage_logs_user_log;
ALTER TABLE usage_summaries DROP COLUMN last_event_at;
