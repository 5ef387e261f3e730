-- Usage marks and billed usage.
--
-- An immediate plan change in the middle of a usage period
-- bills the old plan's overage for the usage so far, and its history entry
-- marks that usage as priced, so that the plan in effect when the period
-- closes prices only the usage above the mark. usage_period names the
-- period whose usage the entry marks (NULL for entries that mark none);
-- usage_providers holds that usage per provider as a JSON object of
-- {calls, tokens_input, tokens_output, cost}, for the per-provider token
-- limits.
--
-- Invoice items keep an overage line's quantity and unit price, which the
-- invoice shows as it does for overage priced at the close.
--
-- Invoices record the usage they have billed: the plan that priced it at
-- the close, and the calls, tokens, provider cost and overage billed so
-- far (at the close, then moved on by each later adjustment). Usage that
-- reaches a period after its invoice was written is the difference, and is
-- billed once on the next invoice. Invoices written before this migration
-- have no billed_plan_id and are never adjusted.

-- +goose Up
ALTER TABLE subscription_history ADD COLUMN usage_period TEXT;
ALTER TABLE subscription_history ADD COLUMN usage_providers TEXT;
CREATE INDEX subscription_history_marks ON subscription_history (subscription_id, usage_period);

ALTER TABLE invoice_items ADD COLUMN quantity BIGINT NOT NULL DEFAULT 0;
ALTER TABLE invoice_items ADD COLUMN unit_price BIGINT NOT NULL DEFAULT 0;

ALTER TABLE billing_history ADD COLUMN billed_plan_id BIGINT;
ALTER TABLE billing_history ADD COLUMN billed_calls BIGINT NOT NULL DEFAULT 0;
ALTER TABLE billing_history ADD COLUMN billed_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE billing_history ADD COLUMN billed_cost BIGINT NOT NULL DEFAULT 0;
ALTER TABLE billing_history ADD COLUMN billed_overage BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE billing_history DROP COLUMN billed_overage;
ALTER TABLE billing_history DROP COLUMN billed_cost;
ALTER TABLE billing_history DROP COLUMN billed_tokens;
ALTER TABLE billing_history DROP COLUMN billed_calls;
ALTER TABLE billing_history DROP COLUMN billed_plan_id;
ALTER TABLE invoice_items DROP COLUMN unit_price;
ALTER TABLE invoice_items DROP COLUMN quantity;
DROP INDEX subscription_history_marks;
ALTER TABLE subscription_history DROP COLUMN usage_providers;
ALTER TABLE subscription_history DROP COLUMN usage_period;
