-- The ledger's times as integers: "timestamp", period_start and created_at
-- of api_usage_logs hold Unix microseconds instead of 27-character text
-- (issue 3, docs/BENCHMARKS.md "Ingestion").
--
-- SQLite's one writer is what ingestion waits for, and its cost follows
-- the bytes each ledger row puts into the table and into the indexes that
-- carry "timestamp" (a user's logs, the time index, the unusual statuses):
-- three texts of 27 bytes were about a third of a typical row. An integer
-- of microseconds is 8 bytes, orders like the text did, compares without a
-- collation and binds without a copy. Only this table changes: the other
-- tables keep the text layout of store.ts (usage_summaries.period_start
-- and last_event_at among them); store.logTime binds the ledger's times and
-- store.Reconcile compares the two forms. PostgreSQL keeps its timestamptz
-- columns (its migration 00014 does nothing).
--
-- SQLite cannot change a column's type in place, so the table is rebuilt:
-- every row is copied, converted exactly (whole seconds by unixepoch, the
-- six fraction digits as they are), and the indexes are built again. A
-- stored time not in store.ts's layout would convert to NULL and fail the
-- NOT NULL constraint, so the migration stops instead of guessing. On a
-- large ledger this takes a while (ten million rows: about 1 min 45 s on
-- this project's machine kind, docs/BENCHMARKS.md); the server is not
-- serving while it migrates. The old table's pages go to the file's free
-- list, which new rows reuse; VACUUM gives them back to the disk.

-- +goose Up
CREATE TABLE api_usage_logs_new (
    id                    INTEGER PRIMARY KEY,
    event_id              TEXT NOT NULL UNIQUE,
    user_id               TEXT NOT NULL,
    provider              TEXT NOT NULL,
    endpoint              TEXT NOT NULL DEFAULT '',
    method                TEXT NOT NULL DEFAULT '',
    model_used            TEXT NOT NULL DEFAULT '',
    tokens_input          INTEGER NOT NULL DEFAULT 0,
    tokens_output         INTEGER NOT NULL DEFAULT 0,
    tokens_total          INTEGER NOT NULL DEFAULT 0,
    tokens_cached_input   INTEGER NOT NULL DEFAULT 0,
    tokens_cache_write_5m INTEGER NOT NULL DEFAULT 0,
    tokens_cache_write_1h INTEGER NOT NULL DEFAULT 0,
    tokens_reasoning      INTEGER NOT NULL DEFAULT 0,
    request_count         INTEGER NOT NULL DEFAULT 0,
    search_count          INTEGER NOT NULL DEFAULT 0,
    image_count           INTEGER NOT NULL DEFAULT 0,
    page_count            INTEGER NOT NULL DEFAULT 0,
    cost_input            INTEGER NOT NULL DEFAULT 0,
    cost_output           INTEGER NOT NULL DEFAULT 0,
    cost_total            INTEGER NOT NULL DEFAULT 0,
    response_time         REAL NOT NULL DEFAULT 0,
    status_code           INTEGER NOT NULL DEFAULT 200,
    error_message         TEXT,
    retry_count           INTEGER NOT NULL DEFAULT 0,
    price_id              INTEGER REFERENCES api_provider_pricing(id),
    unpriced              INTEGER NOT NULL DEFAULT 0,
    partial               INTEGER NOT NULL DEFAULT 0,
    metadata              TEXT,
    timestamp             INTEGER NOT NULL, -- Unix microseconds
    billing_period        TEXT NOT NULL,
    period_start          INTEGER NOT NULL, -- Unix microseconds
    created_at            INTEGER NOT NULL  -- Unix microseconds
);
INSERT INTO api_usage_logs_new (id, event_id, user_id, provider, endpoint, method, model_used,
    tokens_input, tokens_output, tokens_total, tokens_cached_input, tokens_cache_write_5m, tokens_cache_write_1h,
    tokens_reasoning, request_count, search_count, image_count, page_count, cost_input, cost_output, cost_total,
    response_time, status_code, error_message, retry_count, price_id, unpriced, partial, metadata,
    "timestamp", billing_period, period_start, created_at)
SELECT id, event_id, user_id, provider, endpoint, method, model_used,
    tokens_input, tokens_output, tokens_total, tokens_cached_input, tokens_cache_write_5m, tokens_cache_write_1h,
    tokens_reasoning, request_count, search_count, image_count, page_count, cost_input, cost_output, cost_total,
    response_time, status_code, error_message, retry_count, price_id, unpriced, partial, metadata,
    CASE WHEN "timestamp" GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'
        THEN unixepoch(substr("timestamp", 1, 19)) * 1000000 + CAST(substr("timestamp", 21, 6) AS INTEGER) END,
    billing_period,
    CASE WHEN period_start GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'
        THEN unixepoch(substr(period_start, 1, 19)) * 1000000 + CAST(substr(period_start, 21, 6) AS INTEGER) END,
    CASE WHEN created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'
        THEN unixepoch(substr(created_at, 1, 19)) * 1000000 + CAST(substr(created_at, 21, 6) AS INTEGER) END
FROM api_usage_logs ORDER BY id;
DROP TABLE api_usage_logs;
ALTER TABLE api_usage_logs_new RENAME TO api_usage_logs;
CREATE INDEX api_usage_logs_user_log ON api_usage_logs (user_id, "timestamp", id, billing_period, provider);
CREATE INDEX api_usage_logs_time_calls ON api_usage_logs ("timestamp", id, provider, status_code, response_time);
CREATE INDEX api_usage_logs_unusual_status ON api_usage_logs
    (user_id, status_code, "timestamp", id, billing_period, provider) WHERE status_code <> 200;

-- +goose Down
-- Back to text. SQLite's / and % truncate toward zero, so the seconds and
-- the fraction are floored by hand: exact before 1970 too.
CREATE TABLE api_usage_logs_old (
    id                    INTEGER PRIMARY KEY,
    event_id              TEXT NOT NULL UNIQUE,
    user_id               TEXT NOT NULL,
    provider              TEXT NOT NULL,
    endpoint              TEXT NOT NULL DEFAULT '',
    method                TEXT NOT NULL DEFAULT '',
    model_used            TEXT NOT NULL DEFAULT '',
    tokens_input          INTEGER NOT NULL DEFAULT 0,
    tokens_output         INTEGER NOT NULL DEFAULT 0,
    tokens_total          INTEGER NOT NULL DEFAULT 0,
    tokens_cached_input   INTEGER NOT NULL DEFAULT 0,
    tokens_cache_write_5m INTEGER NOT NULL DEFAULT 0,
    tokens_cache_write_1h INTEGER NOT NULL DEFAULT 0,
    tokens_reasoning      INTEGER NOT NULL DEFAULT 0,
    request_count         INTEGER NOT NULL DEFAULT 0,
    search_count          INTEGER NOT NULL DEFAULT 0,
    image_count           INTEGER NOT NULL DEFAULT 0,
    page_count            INTEGER NOT NULL DEFAULT 0,
    cost_input            INTEGER NOT NULL DEFAULT 0,
    cost_output           INTEGER NOT NULL DEFAULT 0,
    cost_total            INTEGER NOT NULL DEFAULT 0,
    response_time         REAL NOT NULL DEFAULT 0,
    status_code           INTEGER NOT NULL DEFAULT 200,
    error_message         TEXT,
    retry_count           INTEGER NOT NULL DEFAULT 0,
    price_id              INTEGER REFERENCES api_provider_pricing(id),
    unpriced              INTEGER NOT NULL DEFAULT 0,
    partial               INTEGER NOT NULL DEFAULT 0,
    metadata              TEXT,
    timestamp             TEXT NOT NULL,
    billing_period        TEXT NOT NULL,
    period_start          TEXT NOT NULL,
    created_at            TEXT NOT NULL
);
INSERT INTO api_usage_logs_old (id, event_id, user_id, provider, endpoint, method, model_used,
    tokens_input, tokens_output, tokens_total, tokens_cached_input, tokens_cache_write_5m, tokens_cache_write_1h,
    tokens_reasoning, request_count, search_count, image_count, page_count, cost_input, cost_output, cost_total,
    response_time, status_code, error_message, retry_count, price_id, unpriced, partial, metadata,
    "timestamp", billing_period, period_start, created_at)
SELECT id, event_id, user_id, provider, endpoint, method, model_used,
    tokens_input, tokens_output, tokens_total, tokens_cached_input, tokens_cache_write_5m, tokens_cache_write_1h,
    tokens_reasoning, request_count, search_count, image_count, page_count, cost_input, cost_output, cost_total,
    response_time, status_code, error_message, retry_count, price_id, unpriced, partial, metadata,
    strftime('%Y-%m-%dT%H:%M:%S', ("timestamp" - (("timestamp" % 1000000) + 1000000) % 1000000) / 1000000, 'unixepoch')
        || printf('.%06dZ', (("timestamp" % 1000000) + 1000000) % 1000000),
    billing_period,
    strftime('%Y-%m-%dT%H:%M:%S', (period_start - ((period_start % 1000000) + 1000000) % 1000000) / 1000000, 'unixepoch')
        || printf('.%06dZ', ((period_start % 1000000) + 1000000) % 1000000),
    strftime('%Y-%m-%dT%H:%M:%S', (created_at - ((created_at % 1000000) + 1000000) % 1000000) / 1000000, 'unixepoch')
        || printf('.%06dZ', ((created_at % 1000000) + 1000000) % 1000000)
FROM api_usage_logs ORDER BY id;
DROP TABLE api_usage_logs;
ALTER TABLE api_usage_logs_old RENAME TO api_usage_logs;
CREATE INDEX api_usage_logs_user_log ON api_usage_logs (user_id, "timestamp", id, billing_period, provider);
CREATE INDEX api_usage_logs_time_calls ON api_usage_logs ("timestamp", id, provider, status_code, response_time);
CREATE INDEX api_usage_logs_unusual_status ON api_usage_logs
    (user_id, status_code, "timestamp", id, billing_period, provider) WHERE status_code <> 200;
