-- The seed's seven billing tables (ALwrity's names and column names) plus
-- providers, model aliases and API keys. Money is INTEGER pico-dollars
-- because SQLite sums decimal text in floating point. Times are fixed-width
-- UTC text ("2006-01-02T15:04:05.000000Z") so they sort as they compare.

-- +goose Up
CREATE TABLE api_providers (
    name          TEXT PRIMARY KEY,
    display_name  TEXT NOT NULL,
    kind          TEXT NOT NULL,
    meters_tokens INTEGER NOT NULL DEFAULT 0,
    sort_order    INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
);

CREATE TABLE subscription_plans (
    id                      INTEGER PRIMARY KEY,
    name                    TEXT NOT NULL UNIQUE,
    tier                    TEXT NOT NULL,
    price_monthly           INTEGER NOT NULL DEFAULT 0,
    price_yearly            INTEGER NOT NULL DEFAULT 0,
    description             TEXT NOT NULL DEFAULT '',
    features                TEXT NOT NULL DEFAULT '[]',
    is_active               INTEGER NOT NULL DEFAULT 1,
    total_calls_limit       INTEGER,
    monthly_cost_limit      INTEGER,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL
);

-- Per-provider limits are rows, not columns, because providers are data.
CREATE TABLE plan_provider_limits (
    plan_id      INTEGER NOT NULL REFERENCES subscription_plans(id) ON DELETE CASCADE,
    provider     TEXT NOT NULL REFERENCES api_providers(name),
    calls_limit  INTEGER,
    tokens_limit INTEGER,
    PRIMARY KEY (plan_id, provider)
);

CREATE TABLE user_subscriptions (
    id                   INTEGER PRIMARY KEY,
    user_id              TEXT NOT NULL,
    plan_id              INTEGER NOT NULL REFERENCES subscription_plans(id),
    billing_cycle        TEXT NOT NULL DEFAULT 'monthly',
    status               TEXT NOT NULL DEFAULT 'active',
    auto_renew           INTEGER NOT NULL DEFAULT 1,
    period_anchor        TEXT NOT NULL,
    time_zone            TEXT NOT NULL DEFAULT '',
    current_period_start TEXT NOT NULL,
    current_period_end   TEXT NOT NULL,
    cancelled_at         TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
CREATE INDEX user_subscriptions_user ON user_subscriptions (user_id, status);

CREATE TABLE api_provider_pricing (
    id                              INTEGER PRIMARY KEY,
    provider                        TEXT NOT NULL REFERENCES api_providers(name),
    model_name                      TEXT NOT NULL,
    cost_per_input_token            INTEGER NOT NULL DEFAULT 0,
    cost_per_output_token           INTEGER NOT NULL DEFAULT 0,
    cost_per_cached_input_token     INTEGER,
    cost_per_cache_write_5m_token   INTEGER,
    cost_per_cache_write_1h_token   INTEGER,
    cost_per_reasoning_token        INTEGER,
    cost_per_request                INTEGER NOT NULL DEFAULT 0,
    cost_per_search                 INTEGER NOT NULL DEFAULT 0,
    cost_per_image                  INTEGER NOT NULL DEFAULT 0,
    cost_per_page                   INTEGER NOT NULL DEFAULT 0,
    long_context_threshold          INTEGER,
    lc_cost_per_input_token         INTEGER,
    lc_cost_per_output_token        INTEGER,
    lc_cost_per_cached_input_token  INTEGER,
    lc_cost_per_cache_write_5m_token INTEGER,
    lc_cost_per_cache_write_1h_token INTEGER,
    lc_cost_per_reasoning_token     INTEGER,
    description                     TEXT NOT NULL DEFAULT '',
    is_active                       INTEGER NOT NULL DEFAULT 1,
    effective_date                  TEXT NOT NULL,
    effective_to                    TEXT,
    created_at                      TEXT NOT NULL,
    updated_at                      TEXT NOT NULL,
    UNIQUE (provider, model_name, effective_date)
);

CREATE TABLE model_aliases (
    provider   TEXT NOT NULL REFERENCES api_providers(name),
    alias      TEXT NOT NULL,
    model_name TEXT NOT NULL,
    PRIMARY KEY (provider, alias)
);

-- The ledger: append-only, one row per metered call, event_id unique.
CREATE TABLE api_usage_logs (
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
CREATE INDEX api_usage_logs_user_time ON api_usage_logs (user_id, timestamp);
CREATE INDEX api_usage_logs_time ON api_usage_logs (timestamp);

-- Derived from the ledger in the same transaction as each log row.
CREATE TABLE usage_summaries (
    id                INTEGER PRIMARY KEY,
    user_id           TEXT NOT NULL,
    billing_period    TEXT NOT NULL,
    period_start      TEXT NOT NULL,
    period_end        TEXT NOT NULL,
    total_calls       INTEGER NOT NULL DEFAULT 0,
    total_errors      INTEGER NOT NULL DEFAULT 0,
    tokens_input      INTEGER NOT NULL DEFAULT 0,
    tokens_output     INTEGER NOT NULL DEFAULT 0,
    total_tokens      INTEGER NOT NULL DEFAULT 0,
    total_cost        INTEGER NOT NULL DEFAULT 0,
    response_time_sum REAL NOT NULL DEFAULT 0,
    reserved_calls    INTEGER NOT NULL DEFAULT 0,
    reserved_tokens   INTEGER NOT NULL DEFAULT 0,
    reserved_cost     INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    UNIQUE (user_id, billing_period)
);

CREATE TABLE usage_summary_providers (
    user_id           TEXT NOT NULL,
    billing_period    TEXT NOT NULL,
    provider          TEXT NOT NULL,
    calls             INTEGER NOT NULL DEFAULT 0,
    errors            INTEGER NOT NULL DEFAULT 0,
    tokens_input      INTEGER NOT NULL DEFAULT 0,
    tokens_output     INTEGER NOT NULL DEFAULT 0,
    tokens            INTEGER NOT NULL DEFAULT 0,
    cost              INTEGER NOT NULL DEFAULT 0,
    response_time_sum REAL NOT NULL DEFAULT 0,
    reserved_calls    INTEGER NOT NULL DEFAULT 0,
    reserved_tokens   INTEGER NOT NULL DEFAULT 0,
    reserved_cost     INTEGER NOT NULL DEFAULT 0,
    updated_at        TEXT NOT NULL,
    PRIMARY KEY (user_id, billing_period, provider)
);

CREATE TABLE usage_alerts (
    id                   INTEGER PRIMARY KEY,
    user_id              TEXT NOT NULL,
    alert_type           TEXT NOT NULL,
    limit_key            TEXT NOT NULL DEFAULT '',
    threshold_percentage INTEGER NOT NULL DEFAULT 0,
    provider             TEXT,
    title                TEXT NOT NULL,
    message              TEXT NOT NULL,
    severity             TEXT NOT NULL DEFAULT 'info',
    is_sent              INTEGER NOT NULL DEFAULT 0,
    sent_at              TEXT,
    is_read              INTEGER NOT NULL DEFAULT 0,
    read_at              TEXT,
    billing_period       TEXT NOT NULL,
    dedupe_key           TEXT NOT NULL UNIQUE,
    created_at           TEXT NOT NULL
);
CREATE INDEX usage_alerts_user ON usage_alerts (user_id, created_at);

CREATE TABLE billing_history (
    id               INTEGER PRIMARY KEY,
    user_id          TEXT NOT NULL,
    subscription_id  INTEGER REFERENCES user_subscriptions(id),
    invoice_number   TEXT UNIQUE,
    billing_period   TEXT NOT NULL,
    period_start     TEXT NOT NULL,
    period_end       TEXT NOT NULL,
    plan_name        TEXT NOT NULL,
    base_cost        INTEGER NOT NULL DEFAULT 0,
    usage_cost       INTEGER NOT NULL DEFAULT 0,
    overage_cost     INTEGER NOT NULL DEFAULT 0,
    credits          INTEGER NOT NULL DEFAULT 0,
    total_amount     INTEGER NOT NULL DEFAULT 0,
    total_api_calls  INTEGER NOT NULL DEFAULT 0,
    total_tokens     INTEGER NOT NULL DEFAULT 0,
    line_items       TEXT NOT NULL DEFAULT '[]',
    status           TEXT NOT NULL DEFAULT 'draft',
    payment_date     TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (subscription_id, billing_period)
);
CREATE INDEX billing_history_user ON billing_history (user_id, period_start);

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    key_prefix   TEXT NOT NULL UNIQUE,
    key_hash     TEXT NOT NULL,
    user_id      TEXT NOT NULL DEFAULT '',
    role         TEXT NOT NULL,
    name         TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);
CREATE INDEX api_keys_user ON api_keys (user_id);

-- Which default rows have been seeded once. Seeding skips these even when an
-- admin later renamed or removed the row, so defaults never undo an edit.
CREATE TABLE seeded_defaults (
    kind      TEXT NOT NULL,
    seed_key  TEXT NOT NULL,
    seeded_at TEXT NOT NULL,
    PRIMARY KEY (kind, seed_key)
);

-- +goose Down
DROP TABLE seeded_defaults;
DROP TABLE api_keys;
DROP TABLE billing_history;
DROP TABLE usage_alerts;
DROP TABLE usage_summary_providers;
DROP TABLE usage_summaries;
DROP TABLE api_usage_logs;
DROP TABLE model_aliases;
DROP TABLE api_provider_pricing;
DROP TABLE user_subscriptions;
DROP TABLE plan_provider_limits;
DROP TABLE subscription_plans;
DROP TABLE api_providers;
