-- What reservations hold is the sum of the held reservations themselves,
-- no longer a counter kept beside the usage in the summary rows.
--
-- Before, a reservation added its units to reserved_* columns of the user's
-- summary rows and a settle took them off again in the transaction that
-- recorded the usage. A settle's transaction holds those rows until its
-- WAL flush, so every reservation of the same user queued behind every
-- settle, at commit latency (one user's calls serialised at a few hundred
-- a second). Now a settle touches only the usage columns and the
-- reservation's own row, and admission reads the summaries without
-- locking them.
--
-- alwrity_reserve is one atomic admission: serialised per (user, period)
-- by a transaction-scoped advisory lock, it reads the settled usage and
-- what held reservations hold in ONE statement (one snapshot, so a settle
-- that commits meanwhile is seen whole or not at all: usage added and its
-- hold gone together), compares them with the limits and inserts the
-- reservation only if every limit has room. It commits without waiting for
-- the WAL flush (holds only, never usage), so the lock is held for the
-- function's run, not a disk flush. Called as a statement of its own, it
-- is one round trip. store.Counters.Exceeded (Go) applies the same checks
-- to the counters this returns, to describe a refusal.

-- +goose Up
ALTER TABLE usage_summaries DROP COLUMN reserved_calls, DROP COLUMN reserved_tokens, DROP COLUMN reserved_cost;
ALTER TABLE usage_summary_providers DROP COLUMN reserved_calls, DROP COLUMN reserved_tokens, DROP COLUMN reserved_cost;
CREATE INDEX reservations_user_held ON reservations (user_id, billing_period, provider) WHERE status = 'held';

-- +goose StatementBegin
CREATE FUNCTION alwrity_reserve(
    p_id TEXT, p_user TEXT, p_period TEXT, p_provider TEXT, p_model TEXT,
    p_calls BIGINT, p_tokens BIGINT, p_cost BIGINT, p_expires TIMESTAMPTZ, p_created TIMESTAMPTZ,
    lim_calls BIGINT, lim_cost BIGINT, lim_provider_calls BIGINT, lim_provider_tokens BIGINT,
    OUT admitted BOOLEAN,
    OUT used_calls BIGINT, OUT held_calls BIGINT, OUT used_cost BIGINT, OUT held_cost BIGINT,
    OUT used_provider_calls BIGINT, OUT held_provider_calls BIGINT,
    OUT used_provider_tokens BIGINT, OUT held_provider_tokens BIGINT)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM pg_advisory_xact_lock(hashtextextended(p_user || chr(31) || p_period, 0));
    SELECT COALESCE(s.total_calls, 0), h.calls, COALESCE(s.total_cost, 0), h.cost,
           COALESCE(p.calls, 0), h.provider_calls, COALESCE(p.tokens, 0), h.provider_tokens
      INTO used_calls, held_calls, used_cost, held_cost,
           used_provider_calls, held_provider_calls, used_provider_tokens, held_provider_tokens
      FROM (SELECT COALESCE(SUM(r.calls), 0) AS calls, COALESCE(SUM(r.cost), 0) AS cost,
                   COALESCE(SUM(r.calls) FILTER (WHERE r.provider = p_provider), 0) AS provider_calls,
                   COALESCE(SUM(r.tokens) FILTER (WHERE r.provider = p_provider), 0) AS provider_tokens
              FROM reservations r
             WHERE r.user_id = p_user AND r.billing_period = p_period AND r.status = 'held') AS h
      LEFT JOIN usage_summaries s ON s.user_id = p_user AND s.billing_period = p_period
      LEFT JOIN usage_summary_providers p ON p.user_id = p_user AND p.billing_period = p_period AND p.provider = p_provider;
    admitted := (lim_calls IS NULL OR used_calls + held_calls + p_calls <= lim_calls)
            AND (lim_cost IS NULL OR used_cost + held_cost + p_cost <= lim_cost)
            AND (lim_provider_calls IS NULL OR used_provider_calls + held_provider_calls + p_calls <= lim_provider_calls)
            AND (lim_provider_tokens IS NULL OR used_provider_tokens + held_provider_tokens + p_tokens <= lim_provider_tokens);
    IF admitted THEN
        INSERT INTO reservations (id, user_id, billing_period, provider, model, calls, tokens, cost, status, expires_at, created_at)
        VALUES (p_id, p_user, p_period, p_provider, p_model, p_calls, p_tokens, p_cost, 'held', p_expires, p_created);
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION IF EXISTS alwrity_reserve;
DROP INDEX IF EXISTS reservations_user_held;
ALTER TABLE usage_summaries ADD COLUMN reserved_calls BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN reserved_tokens BIGINT NOT NULL DEFAULT 0, ADD COLUMN reserved_cost BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_summary_providers ADD COLUMN reserved_calls BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN reserved_tokens BIGINT NOT NULL DEFAULT 0, ADD COLUMN reserved_cost BIGINT NOT NULL DEFAULT 0;
-- +goose StatementBegin
UPDATE usage_summaries s SET reserved_calls = h.calls, reserved_cost = h.cost
  FROM (SELECT user_id, billing_period, SUM(calls) AS calls, SUM(cost) AS cost FROM reservations
         WHERE status = 'held' GROUP BY user_id, billing_period) h
 WHERE s.user_id = h.user_id AND s.billing_period = h.billing_period;
-- +goose StatementEnd
-- +goose StatementBegin
UPDATE usage_summary_providers s SET reserved_calls = h.calls, reserved_tokens = h.tokens, reserved_cost = h.cost
  FROM (SELECT user_id, billing_period, provider, SUM(calls) AS calls, SUM(tokens) AS tokens, SUM(cost) AS cost
          FROM reservations WHERE status = 'held' GROUP BY user_id, billing_period, provider) h
 WHERE s.user_id = h.user_id AND s.billing_period = h.billing_period AND s.provider = h.provider;
-- +goose StatementEnd
