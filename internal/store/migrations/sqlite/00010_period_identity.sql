-- A usage period is (user, billing_period, period_start), no longer
-- (user, billing_period). A subscription started mid-month has a first
-- period with the name of the month whose calendar period the user was in
-- until then ("2026-11" from Nov 15 besides "2026-11" from Nov 1); before,
-- both shared one summary row, so the month's earlier usage counted
-- towards the new plan's limits and alerts. See billing.Period.
--
-- Existing rows: a (user, name) whose ledger rows carry more than one
-- period_start (the ledger always stamped each call with its own period's
-- start) gets its summary rows rebuilt from the ledger, one per period;
-- every other row keeps its counters. The end of a rebuilt period is the
-- next period's start, or a month after its own start for the last one.
-- Held reservations take the latest period of their name; finished ones
-- need none. Limit alerts keep the start of the one summary row of their
-- name so far, and those of periods that do not start at a calendar month
-- get it in their dedupe key, as billing.Alert.DedupeKey now writes it.

-- +goose Up
ALTER TABLE usage_alerts ADD COLUMN period_start TEXT;
UPDATE usage_alerts SET period_start = (SELECT s.period_start FROM usage_summaries s
        WHERE s.user_id = usage_alerts.user_id AND s.billing_period = usage_alerts.billing_period)
 WHERE alert_type IN ('usage_warning', 'limit_reached', 'cost_warning', 'cost_overrun');
UPDATE usage_alerts SET dedupe_key = dedupe_key || '|' || strftime('%s', period_start)
 WHERE period_start IS NOT NULL AND substr(period_start, 9) <> '01T00:00:00.000000Z';

CREATE TEMP TABLE split_periods AS
    SELECT user_id, billing_period FROM api_usage_logs
     GROUP BY user_id, billing_period HAVING COUNT(DISTINCT period_start) > 1;

CREATE TABLE usage_summaries_next (
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
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    UNIQUE (user_id, billing_period, period_start)
);
INSERT INTO usage_summaries_next (id, user_id, billing_period, period_start, period_end, total_calls, total_errors,
        tokens_input, tokens_output, total_tokens, total_cost, response_time_sum, created_at, updated_at)
    SELECT id, user_id, billing_period, period_start, period_end, total_calls, total_errors,
           tokens_input, tokens_output, total_tokens, total_cost, response_time_sum, created_at, updated_at
      FROM usage_summaries s
     WHERE NOT EXISTS (SELECT 1 FROM split_periods x WHERE x.user_id = s.user_id AND x.billing_period = s.billing_period);
INSERT INTO usage_summaries_next (user_id, billing_period, period_start, period_end, total_calls, total_errors,
        tokens_input, tokens_output, total_tokens, total_cost, response_time_sum, created_at, updated_at)
    SELECT l.user_id, l.billing_period, l.period_start,
           COALESCE((SELECT MIN(n.period_start) FROM api_usage_logs n WHERE n.user_id = l.user_id
                        AND n.billing_period = l.billing_period AND n.period_start > l.period_start),
                    strftime('%Y-%m-%dT%H:%M:%S', l.period_start, '+1 month') || substr(l.period_start, 20)),
           COUNT(*), SUM(CASE WHEN l.status_code >= 400 THEN 1 ELSE 0 END), SUM(l.tokens_input), SUM(l.tokens_output),
           SUM(l.tokens_input + l.tokens_output), SUM(l.cost_total), SUM(l.response_time), MIN(l.created_at), MAX(l.created_at)
      FROM api_usage_logs l JOIN split_periods x ON x.user_id = l.user_id AND x.billing_period = l.billing_period
     GROUP BY l.user_id, l.billing_period, l.period_start;

CREATE TABLE usage_summary_providers_next (
    user_id           TEXT NOT NULL,
    billing_period    TEXT NOT NULL,
    period_start      TEXT NOT NULL,
    provider          TEXT NOT NULL,
    calls             INTEGER NOT NULL DEFAULT 0,
    errors            INTEGER NOT NULL DEFAULT 0,
    tokens_input      INTEGER NOT NULL DEFAULT 0,
    tokens_output     INTEGER NOT NULL DEFAULT 0,
    tokens            INTEGER NOT NULL DEFAULT 0,
    cost              INTEGER NOT NULL DEFAULT 0,
    response_time_sum REAL NOT NULL DEFAULT 0,
    updated_at        TEXT NOT NULL,
    PRIMARY KEY (user_id, billing_period, period_start, provider)
);
INSERT INTO usage_summary_providers_next (user_id, billing_period, period_start, provider, calls, errors,
        tokens_input, tokens_output, tokens, cost, response_time_sum, updated_at)
    SELECT p.user_id, p.billing_period, s.period_start, p.provider, p.calls, p.errors,
           p.tokens_input, p.tokens_output, p.tokens, p.cost, p.response_time_sum, p.updated_at
      FROM usage_summary_providers p
      JOIN usage_summaries s ON s.user_id = p.user_id AND s.billing_period = p.billing_period
     WHERE NOT EXISTS (SELECT 1 FROM split_periods x WHERE x.user_id = p.user_id AND x.billing_period = p.billing_period);
INSERT INTO usage_summary_providers_next (user_id, billing_period, period_start, provider, calls, errors,
        tokens_input, tokens_output, tokens, cost, response_time_sum, updated_at)
    SELECT l.user_id, l.billing_period, l.period_start, l.provider,
           COUNT(*), SUM(CASE WHEN l.status_code >= 400 THEN 1 ELSE 0 END), SUM(l.tokens_input), SUM(l.tokens_output),
           SUM(l.tokens_input + l.tokens_output), SUM(l.cost_total), SUM(l.response_time), MAX(l.created_at)
      FROM api_usage_logs l JOIN split_periods x ON x.user_id = l.user_id AND x.billing_period = l.billing_period
     GROUP BY l.user_id, l.billing_period, l.period_start, l.provider;

DROP TABLE usage_summary_providers;
DROP TABLE usage_summaries;
DROP TABLE split_periods;
ALTER TABLE usage_summaries_next RENAME TO usage_summaries;
ALTER TABLE usage_summary_providers_next RENAME TO usage_summary_providers;
CREATE INDEX usage_summaries_period_calls ON usage_summaries (billing_period, total_calls);

ALTER TABLE reservations ADD COLUMN period_start TEXT;
UPDATE reservations SET period_start = COALESCE(
        (SELECT MAX(s.period_start) FROM usage_summaries s
          WHERE s.user_id = reservations.user_id AND s.billing_period = reservations.billing_period),
        reservations.billing_period || '-01T00:00:00.000000Z')
 WHERE status = 'held';
DROP INDEX reservations_user_held;
CREATE INDEX reservations_user_held ON reservations (user_id, billing_period, period_start, provider) WHERE status = 'held';

-- +goose Down
DROP INDEX reservations_user_held;
ALTER TABLE reservations DROP COLUMN period_start;
CREATE INDEX reservations_user_held ON reservations (user_id, billing_period, provider) WHERE status = 'held';

CREATE TABLE usage_summaries_prev (
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
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    UNIQUE (user_id, billing_period)
);
INSERT INTO usage_summaries_prev (user_id, billing_period, period_start, period_end, total_calls, total_errors,
        tokens_input, tokens_output, total_tokens, total_cost, response_time_sum, created_at, updated_at)
    SELECT user_id, billing_period, MIN(period_start), MAX(period_end), SUM(total_calls), SUM(total_errors),
           SUM(tokens_input), SUM(tokens_output), SUM(total_tokens), SUM(total_cost), SUM(response_time_sum),
           MIN(created_at), MAX(updated_at)
      FROM usage_summaries GROUP BY user_id, billing_period;
CREATE TABLE usage_summary_providers_prev (
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
    updated_at        TEXT NOT NULL,
    PRIMARY KEY (user_id, billing_period, provider)
);
INSERT INTO usage_summary_providers_prev (user_id, billing_period, provider, calls, errors,
        tokens_input, tokens_output, tokens, cost, response_time_sum, updated_at)
    SELECT user_id, billing_period, provider, SUM(calls), SUM(errors), SUM(tokens_input), SUM(tokens_output),
           SUM(tokens), SUM(cost), SUM(response_time_sum), MAX(updated_at)
      FROM usage_summary_providers GROUP BY user_id, billing_period, provider;
DROP TABLE usage_summary_providers;
DROP TABLE usage_summaries;
ALTER TABLE usage_summaries_prev RENAME TO usage_summaries;
ALTER TABLE usage_summary_providers_prev RENAME TO usage_summary_providers;
CREATE INDEX usage_summaries_period_calls ON usage_summaries (billing_period, total_calls);

-- Alerts of two periods of one name become one: the calendar month's if
-- there is one, else the earliest.
DELETE FROM usage_alerts WHERE period_start IS NOT NULL AND substr(period_start, 9) <> '01T00:00:00.000000Z'
   AND EXISTS (SELECT 1 FROM usage_alerts o WHERE o.id <> usage_alerts.id
        AND o.user_id = usage_alerts.user_id AND o.alert_type = usage_alerts.alert_type
        AND o.limit_key = usage_alerts.limit_key AND o.threshold_percentage = usage_alerts.threshold_percentage
        AND o.billing_period = usage_alerts.billing_period
        AND (o.id < usage_alerts.id OR o.period_start IS NULL OR substr(o.period_start, 9) = '01T00:00:00.000000Z'));
UPDATE usage_alerts SET dedupe_key = substr(dedupe_key, 1, length(dedupe_key) - length(strftime('%s', period_start)) - 1)
 WHERE period_start IS NOT NULL AND substr(period_start, 9) <> '01T00:00:00.000000Z';
ALTER TABLE usage_alerts DROP COLUMN period_start;
