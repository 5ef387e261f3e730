-- Subscription lifecycle and billing: plan versions and overage pricing,
-- scheduled changes and cancellation, the charges and credits a change
-- leaves for the next invoice, the history of every change and renewal,
-- and how far each subscription has been invoiced.

-- +goose Up
ALTER TABLE subscription_plans ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE subscription_plans ADD COLUMN replaced_by INTEGER REFERENCES subscription_plans(id);
ALTER TABLE subscription_plans ADD COLUMN soft_limits INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscription_plans ADD COLUMN overage_per_call INTEGER;
ALTER TABLE subscription_plans ADD COLUMN overage_per_1k_tokens INTEGER;

ALTER TABLE user_subscriptions ADD COLUMN pending_plan_id INTEGER REFERENCES subscription_plans(id);
ALTER TABLE user_subscriptions ADD COLUMN pending_billing_cycle TEXT;
ALTER TABLE user_subscriptions ADD COLUMN cancel_at_period_end INTEGER NOT NULL DEFAULT 0;
ALTER TABLE user_subscriptions ADD COLUMN invoiced_through TEXT;
ALTER TABLE user_subscriptions ADD COLUMN next_close_at TEXT;
UPDATE user_subscriptions SET invoiced_through = current_period_start, next_close_at = current_period_start;
CREATE INDEX user_subscriptions_next_close ON user_subscriptions (next_close_at);

ALTER TABLE billing_history ADD COLUMN issued_at TEXT;
ALTER TABLE billing_history ADD COLUMN voided_at TEXT;

-- Charges and credits waiting for the invoice of the usage period they
-- fall in (an upgrade's prorated difference, an immediate cancellation's
-- credit).
CREATE TABLE invoice_items (
    id               INTEGER PRIMARY KEY,
    subscription_id  INTEGER NOT NULL REFERENCES user_subscriptions(id),
    user_id          TEXT NOT NULL,
    billing_period   TEXT NOT NULL,
    kind             TEXT NOT NULL,
    description      TEXT NOT NULL,
    amount           INTEGER NOT NULL,
    period_start     TEXT NOT NULL,
    period_end       TEXT NOT NULL,
    created_at       TEXT NOT NULL
);
CREATE INDEX invoice_items_subscription ON invoice_items (subscription_id, billing_period);

-- Every start, renewal, plan change, cancellation and expiry, with the
-- usage of the period at that moment.
CREATE TABLE subscription_history (
    id               INTEGER PRIMARY KEY,
    user_id          TEXT NOT NULL,
    subscription_id  INTEGER NOT NULL REFERENCES user_subscriptions(id),
    event            TEXT NOT NULL,
    from_plan_id     INTEGER,
    from_plan_name   TEXT NOT NULL DEFAULT '',
    to_plan_id       INTEGER,
    to_plan_name     TEXT NOT NULL DEFAULT '',
    billing_cycle    TEXT NOT NULL,
    period_start     TEXT NOT NULL,
    period_end       TEXT NOT NULL,
    usage_calls      INTEGER NOT NULL DEFAULT 0,
    usage_tokens     INTEGER NOT NULL DEFAULT 0,
    usage_cost       INTEGER NOT NULL DEFAULT 0,
    effective_at     TEXT NOT NULL,
    created_at       TEXT NOT NULL
);
CREATE INDEX subscription_history_user ON subscription_history (user_id, effective_at);

-- +goose Down
DROP TABLE subscription_history;
DROP TABLE invoice_items;
ALTER TABLE billing_history DROP COLUMN voided_at;
ALTER TABLE billing_history DROP COLUMN issued_at;
DROP INDEX user_subscriptions_next_close;
ALTER TABLE user_subscriptions DROP COLUMN next_close_at;
ALTER TABLE user_subscriptions DROP COLUMN invoiced_through;
ALTER TABLE user_subscriptions DROP COLUMN cancel_at_period_end;
ALTER TABLE user_subscriptions DROP COLUMN pending_billing_cycle;
ALTER TABLE user_subscriptions DROP COLUMN pending_plan_id;
ALTER TABLE subscription_plans DROP COLUMN overage_per_1k_tokens;
ALTER TABLE subscription_plans DROP COLUMN overage_per_call;
ALTER TABLE subscription_plans DROP COLUMN soft_limits;
ALTER TABLE subscription_plans DROP COLUMN replaced_by;
ALTER TABLE subscription_plans DROP COLUMN version;
