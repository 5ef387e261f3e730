-- A usage period is (user, billing_period, period_start), no longer
-- (user, billing_period); see the SQLite migration of the same number for
-- why and for what happens to existing rows. Admission (alwrity_reserve,
-- alwrity_reserve_batch) takes the period's start beside its name and
-- reads and holds that period only; its advisory lock stays per (user,
-- name), which also serialises the rare second period of one name.

-- +goose Up
ALTER TABLE usage_alerts ADD COLUMN period_start TIMESTAMPTZ;
UPDATE usage_alerts a SET period_start = s.period_start
  FROM usage_summaries s
 WHERE s.user_id = a.user_id AND s.billing_period = a.billing_period
   AND a.alert_type IN ('usage_warning', 'limit_reached', 'cost_warning', 'cost_overrun');
UPDATE usage_alerts SET dedupe_key = dedupe_key || '|' || floor(extract(epoch FROM period_start))::BIGINT
 WHERE period_start IS NOT NULL
   AND period_start <> date_trunc('month', period_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';

CREATE TEMP TABLE split_periods ON COMMIT DROP AS
    SELECT user_id, billing_period FROM api_usage_logs
     GROUP BY user_id, billing_period HAVING COUNT(DISTINCT period_start) > 1;

ALTER TABLE usage_summary_providers ADD COLUMN period_start TIMESTAMPTZ;
UPDATE usage_summary_providers p SET period_start = s.period_start
  FROM usage_summaries s WHERE s.user_id = p.user_id AND s.billing_period = p.billing_period;
DELETE FROM usage_summary_providers p USING split_periods x
 WHERE x.user_id = p.user_id AND x.billing_period = p.billing_period;
DELETE FROM usage_summaries s USING split_periods x
 WHERE x.user_id = s.user_id AND x.billing_period = s.billing_period;
ALTER TABLE usage_summaries DROP CONSTRAINT usage_summaries_user_id_billing_period_key;
ALTER TABLE usage_summaries ADD CONSTRAINT usage_summaries_period_key UNIQUE (user_id, billing_period, period_start);
ALTER TABLE usage_summary_providers DROP CONSTRAINT usage_summary_providers_pkey;
ALTER TABLE usage_summary_providers ALTER COLUMN period_start SET NOT NULL;
ALTER TABLE usage_summary_providers ADD PRIMARY KEY (user_id, billing_period, period_start, provider);

INSERT INTO usage_summaries (user_id, billing_period, period_start, period_end, total_calls, total_errors,
        tokens_input, tokens_output, total_tokens, total_cost, response_time_sum, created_at, updated_at)
    SELECT l.user_id, l.billing_period, l.period_start,
           COALESCE((SELECT MIN(n.period_start) FROM api_usage_logs n WHERE n.user_id = l.user_id
                        AND n.billing_period = l.billing_period AND n.period_start > l.period_start),
                    l.period_start + INTERVAL '1 month'),
           COUNT(*), COUNT(*) FILTER (WHERE l.status_code >= 400), SUM(l.tokens_input), SUM(l.tokens_output),
           SUM(l.tokens_input + l.tokens_output), SUM(l.cost_total), SUM(l.response_time), MIN(l.created_at), MAX(l.created_at)
      FROM api_usage_logs l JOIN split_periods x ON x.user_id = l.user_id AND x.billing_period = l.billing_period
     GROUP BY l.user_id, l.billing_period, l.period_start;
INSERT INTO usage_summary_providers (user_id, billing_period, period_start, provider, calls, errors,
        tokens_input, tokens_output, tokens, cost, response_time_sum, updated_at)
    SELECT l.user_id, l.billing_period, l.period_start, l.provider,
           COUNT(*), COUNT(*) FILTER (WHERE l.status_code >= 400), SUM(l.tokens_input), SUM(l.tokens_output),
           SUM(l.tokens_input + l.tokens_output), SUM(l.cost_total), SUM(l.response_time), MAX(l.created_at)
      FROM api_usage_logs l JOIN split_periods x ON x.user_id = l.user_id AND x.billing_period = l.billing_period
     GROUP BY l.user_id, l.billing_period, l.period_start, l.provider;

ALTER TABLE reservations ADD COLUMN period_start TIMESTAMPTZ;
UPDATE reservations r SET period_start = COALESCE(
        (SELECT MAX(s.period_start) FROM usage_summaries s
          WHERE s.user_id = r.user_id AND s.billing_period = r.billing_period),
        (r.billing_period || '-01T00:00:00Z')::TIMESTAMPTZ)
 WHERE r.status = 'held';
DROP INDEX reservations_user_held;
CREATE INDEX reservations_user_held ON reservations (user_id, billing_period, period_start, provider) WHERE status = 'held';

DROP FUNCTION alwrity_reserve(TEXT, TEXT, TEXT, TEXT, TEXT, BIGINT, BIGINT, BIGINT, TIMESTAMPTZ, TIMESTAMPTZ,
    BIGINT, BIGINT, BIGINT, BIGINT);
DROP FUNCTION alwrity_reserve_batch(TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], BIGINT[], BIGINT[], BIGINT[],
    TIMESTAMPTZ[], TIMESTAMPTZ[], BIGINT[], BIGINT[], BIGINT[], BIGINT[]);

-- +goose StatementBegin
CREATE FUNCTION alwrity_reserve(
    p_id TEXT, p_user TEXT, p_period TEXT, p_start TIMESTAMPTZ, p_provider TEXT, p_model TEXT,
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
             WHERE r.user_id = p_user AND r.billing_period = p_period AND r.period_start = p_start AND r.status = 'held') AS h
      LEFT JOIN usage_summaries s ON s.user_id = p_user AND s.billing_period = p_period AND s.period_start = p_start
      LEFT JOIN usage_summary_providers p ON p.user_id = p_user AND p.billing_period = p_period
                                       AND p.period_start = p_start AND p.provider = p_provider;
    admitted := (lim_calls IS NULL OR used_calls + held_calls + p_calls <= lim_calls)
            AND (lim_cost IS NULL OR used_cost + held_cost + p_cost <= lim_cost)
            AND (lim_provider_calls IS NULL OR used_provider_calls + held_provider_calls + p_calls <= lim_provider_calls)
            AND (lim_provider_tokens IS NULL OR used_provider_tokens + held_provider_tokens + p_tokens <= lim_provider_tokens);
    IF admitted THEN
        INSERT INTO reservations (id, user_id, billing_period, period_start, provider, model, calls, tokens, cost, status, expires_at, created_at)
        VALUES (p_id, p_user, p_period, p_start, p_provider, p_model, p_calls, p_tokens, p_cost, 'held', p_expires, p_created);
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION alwrity_reserve_batch(
    p_ids TEXT[], p_users TEXT[], p_periods TEXT[], p_starts TIMESTAMPTZ[], p_providers TEXT[], p_models TEXT[],
    p_calls BIGINT[], p_tokens BIGINT[], p_costs BIGINT[], p_expires TIMESTAMPTZ[], p_created TIMESTAMPTZ[],
    lim_calls BIGINT[], lim_cost BIGINT[], lim_provider_calls BIGINT[], lim_provider_tokens BIGINT[])
RETURNS TABLE (ord INT, admitted BOOLEAN,
    used_calls BIGINT, held_calls BIGINT, used_cost BIGINT, held_cost BIGINT,
    used_provider_calls BIGINT, held_provider_calls BIGINT,
    used_provider_tokens BIGINT, held_provider_tokens BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    n INT := COALESCE(cardinality(p_ids), 0);
    lock_key BIGINT;
    -- Per request: its (user, period) group g and (user, period, provider)
    -- group gp, numbered from 1, and the state read once per group.
    g INT[]; gp INT[];
    b_used_calls BIGINT[]; b_held_calls BIGINT[]; b_used_cost BIGINT[]; b_held_cost BIGINT[];
    b_used_pcalls BIGINT[]; b_held_pcalls BIGINT[]; b_used_ptokens BIGINT[]; b_held_ptokens BIGINT[];
    -- What this batch has admitted so far, per group.
    acc_calls BIGINT[]; acc_cost BIGINT[]; acc_pcalls BIGINT[]; acc_ptokens BIGINT[];
    ok BOOLEAN[] := '{}';
    i INT;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    IF cardinality(p_users) <> n OR cardinality(p_periods) <> n OR cardinality(p_starts) <> n OR cardinality(p_providers) <> n
        OR cardinality(p_models) <> n OR cardinality(p_calls) <> n OR cardinality(p_tokens) <> n
        OR cardinality(p_costs) <> n OR cardinality(p_expires) <> n OR cardinality(p_created) <> n
        OR cardinality(lim_calls) <> n OR cardinality(lim_cost) <> n
        OR cardinality(lim_provider_calls) <> n OR cardinality(lim_provider_tokens) <> n THEN
        RAISE EXCEPTION 'alwrity_reserve_batch: the argument arrays differ in length';
    END IF;
    PERFORM set_config('synchronous_commit', 'off', true);
    FOR lock_key IN
        SELECT DISTINCT hashtextextended(u || chr(31) || p, 0) AS k
          FROM unnest(p_users, p_periods) AS t(u, p) ORDER BY k
    LOOP
        PERFORM pg_advisory_xact_lock(lock_key);
    END LOOP;

    WITH q AS (
        SELECT t.u, t.p, t.st, t.pr, t.o,
               dense_rank() OVER (ORDER BY t.u, t.p, t.st)::INT AS grp,
               dense_rank() OVER (ORDER BY t.u, t.p, t.st, t.pr)::INT AS pgrp
          FROM unnest(p_users, p_periods, p_starts, p_providers) WITH ORDINALITY AS t(u, p, st, pr, o)),
    k AS MATERIALIZED (SELECT DISTINCT q.u, q.p, q.st, q.pr FROM q),
    c AS MATERIALIZED (
        SELECT k.u, k.p, k.st, k.pr,
               COALESCE(s.total_calls, 0) AS uc, h.calls AS hc, COALESCE(s.total_cost, 0) AS ucost, h.cost AS hcost,
               COALESCE(sp.calls, 0) AS upc, h.provider_calls AS hpc, COALESCE(sp.tokens, 0) AS upt, h.provider_tokens AS hpt
          FROM k
          CROSS JOIN LATERAL (
                SELECT COALESCE(SUM(r.calls), 0) AS calls, COALESCE(SUM(r.cost), 0) AS cost,
                       COALESCE(SUM(r.calls) FILTER (WHERE r.provider = k.pr), 0) AS provider_calls,
                       COALESCE(SUM(r.tokens) FILTER (WHERE r.provider = k.pr), 0) AS provider_tokens
                  FROM reservations r
                 WHERE r.user_id = k.u AND r.billing_period = k.p AND r.period_start = k.st AND r.status = 'held') AS h
          LEFT JOIN usage_summaries s ON s.user_id = k.u AND s.billing_period = k.p AND s.period_start = k.st
          LEFT JOIN usage_summary_providers sp ON sp.user_id = k.u AND sp.billing_period = k.p AND sp.period_start = k.st
                                               AND sp.provider = k.pr)
    SELECT array_agg(q.grp ORDER BY q.o), array_agg(q.pgrp ORDER BY q.o),
           array_agg(c.uc ORDER BY q.o), array_agg(c.hc ORDER BY q.o),
           array_agg(c.ucost ORDER BY q.o), array_agg(c.hcost ORDER BY q.o),
           array_agg(c.upc ORDER BY q.o), array_agg(c.hpc ORDER BY q.o),
           array_agg(c.upt ORDER BY q.o), array_agg(c.hpt ORDER BY q.o)
      INTO g, gp, b_used_calls, b_held_calls, b_used_cost, b_held_cost,
           b_used_pcalls, b_held_pcalls, b_used_ptokens, b_held_ptokens
      FROM q JOIN c ON c.u = q.u AND c.p = q.p AND c.st = q.st AND c.pr = q.pr;
    IF COALESCE(cardinality(g), 0) <> n THEN
        RAISE EXCEPTION 'alwrity_reserve_batch: a request has no user, period or provider';
    END IF;

    acc_calls := array_fill(0::BIGINT, ARRAY[n]);
    acc_cost := array_fill(0::BIGINT, ARRAY[n]);
    acc_pcalls := array_fill(0::BIGINT, ARRAY[n]);
    acc_ptokens := array_fill(0::BIGINT, ARRAY[n]);
    FOR i IN 1..n LOOP
        ord := i;
        used_calls := b_used_calls[i];
        held_calls := b_held_calls[i] + acc_calls[g[i]];
        used_cost := b_used_cost[i];
        held_cost := b_held_cost[i] + acc_cost[g[i]];
        used_provider_calls := b_used_pcalls[i];
        held_provider_calls := b_held_pcalls[i] + acc_pcalls[gp[i]];
        used_provider_tokens := b_used_ptokens[i];
        held_provider_tokens := b_held_ptokens[i] + acc_ptokens[gp[i]];
        admitted := (lim_calls[i] IS NULL OR used_calls + held_calls + p_calls[i] <= lim_calls[i])
                AND (lim_cost[i] IS NULL OR used_cost + held_cost + p_costs[i] <= lim_cost[i])
                AND (lim_provider_calls[i] IS NULL
                     OR used_provider_calls + held_provider_calls + p_calls[i] <= lim_provider_calls[i])
                AND (lim_provider_tokens[i] IS NULL
                     OR used_provider_tokens + held_provider_tokens + p_tokens[i] <= lim_provider_tokens[i]);
        IF admitted THEN
            acc_calls[g[i]] := acc_calls[g[i]] + p_calls[i];
            acc_cost[g[i]] := acc_cost[g[i]] + p_costs[i];
            acc_pcalls[gp[i]] := acc_pcalls[gp[i]] + p_calls[i];
            acc_ptokens[gp[i]] := acc_ptokens[gp[i]] + p_tokens[i];
        END IF;
        ok[i] := admitted;
        RETURN NEXT;
    END LOOP;

    INSERT INTO reservations (id, user_id, billing_period, period_start, provider, model, calls, tokens, cost, status, expires_at, created_at)
    SELECT t.id, t.u, t.p, t.st, t.pr, t.m, t.calls, t.tokens, t.cost, 'held', t.exp, t.created
      FROM unnest(p_ids, p_users, p_periods, p_starts, p_providers, p_models, p_calls, p_tokens, p_costs, p_expires, p_created)
           WITH ORDINALITY AS t(id, u, p, st, pr, m, calls, tokens, cost, exp, created, o)
     WHERE ok[t.o];
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION alwrity_reserve(TEXT, TEXT, TEXT, TIMESTAMPTZ, TEXT, TEXT, BIGINT, BIGINT, BIGINT, TIMESTAMPTZ, TIMESTAMPTZ,
    BIGINT, BIGINT, BIGINT, BIGINT);
DROP FUNCTION alwrity_reserve_batch(TEXT[], TEXT[], TEXT[], TIMESTAMPTZ[], TEXT[], TEXT[], BIGINT[], BIGINT[], BIGINT[],
    TIMESTAMPTZ[], TIMESTAMPTZ[], BIGINT[], BIGINT[], BIGINT[], BIGINT[]);

DROP INDEX reservations_user_held;
ALTER TABLE reservations DROP COLUMN period_start;
CREATE INDEX reservations_user_held ON reservations (user_id, billing_period, provider) WHERE status = 'held';

CREATE TEMP TABLE merged_summaries ON COMMIT DROP AS
    SELECT user_id, billing_period, MIN(period_start) AS period_start, MAX(period_end) AS period_end,
           SUM(total_calls) AS total_calls, SUM(total_errors) AS total_errors, SUM(tokens_input) AS tokens_input,
           SUM(tokens_output) AS tokens_output, SUM(total_tokens) AS total_tokens, SUM(total_cost) AS total_cost,
           SUM(response_time_sum) AS response_time_sum, MIN(created_at) AS created_at, MAX(updated_at) AS updated_at
      FROM usage_summaries GROUP BY user_id, billing_period HAVING COUNT(*) > 1;
CREATE TEMP TABLE merged_providers ON COMMIT DROP AS
    SELECT p.user_id, p.billing_period, p.provider, SUM(p.calls) AS calls, SUM(p.errors) AS errors,
           SUM(p.tokens_input) AS tokens_input, SUM(p.tokens_output) AS tokens_output, SUM(p.tokens) AS tokens,
           SUM(p.cost) AS cost, SUM(p.response_time_sum) AS response_time_sum, MAX(p.updated_at) AS updated_at
      FROM usage_summary_providers p JOIN merged_summaries m ON m.user_id = p.user_id AND m.billing_period = p.billing_period
     GROUP BY p.user_id, p.billing_period, p.provider;
DELETE FROM usage_summaries s USING merged_summaries m WHERE m.user_id = s.user_id AND m.billing_period = s.billing_period;
DELETE FROM usage_summary_providers p USING merged_summaries m WHERE m.user_id = p.user_id AND m.billing_period = p.billing_period;
ALTER TABLE usage_summary_providers DROP CONSTRAINT usage_summary_providers_pkey;
ALTER TABLE usage_summary_providers DROP COLUMN period_start;
ALTER TABLE usage_summary_providers ADD PRIMARY KEY (user_id, billing_period, provider);
ALTER TABLE usage_summaries DROP CONSTRAINT usage_summaries_period_key;
ALTER TABLE usage_summaries ADD CONSTRAINT usage_summaries_user_id_billing_period_key UNIQUE (user_id, billing_period);
INSERT INTO usage_summaries (user_id, billing_period, period_start, period_end, total_calls, total_errors,
        tokens_input, tokens_output, total_tokens, total_cost, response_time_sum, created_at, updated_at)
    SELECT * FROM merged_summaries;
INSERT INTO usage_summary_providers (user_id, billing_period, provider, calls, errors, tokens_input, tokens_output,
        tokens, cost, response_time_sum, updated_at)
    SELECT * FROM merged_providers;

-- Alerts of two periods of one name become one: the calendar month's if
-- there is one, else the earliest.
DELETE FROM usage_alerts a USING usage_alerts o
 WHERE o.id <> a.id AND o.user_id = a.user_id AND o.alert_type = a.alert_type AND o.limit_key = a.limit_key
   AND o.threshold_percentage = a.threshold_percentage AND o.billing_period = a.billing_period
   AND a.period_start IS NOT NULL AND a.period_start <> date_trunc('month', a.period_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
   AND (o.id < a.id OR o.period_start IS NULL
        OR o.period_start = date_trunc('month', o.period_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC');
UPDATE usage_alerts SET dedupe_key = left(dedupe_key, length(dedupe_key) - length('|' || floor(extract(epoch FROM period_start))::BIGINT))
 WHERE period_start IS NOT NULL
   AND period_start <> date_trunc('month', period_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
ALTER TABLE usage_alerts DROP COLUMN period_start;

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

-- +goose StatementBegin
CREATE FUNCTION alwrity_reserve_batch(
    p_ids TEXT[], p_users TEXT[], p_periods TEXT[], p_providers TEXT[], p_models TEXT[],
    p_calls BIGINT[], p_tokens BIGINT[], p_costs BIGINT[], p_expires TIMESTAMPTZ[], p_created TIMESTAMPTZ[],
    lim_calls BIGINT[], lim_cost BIGINT[], lim_provider_calls BIGINT[], lim_provider_tokens BIGINT[])
RETURNS TABLE (ord INT, admitted BOOLEAN,
    used_calls BIGINT, held_calls BIGINT, used_cost BIGINT, held_cost BIGINT,
    used_provider_calls BIGINT, held_provider_calls BIGINT,
    used_provider_tokens BIGINT, held_provider_tokens BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    n INT := COALESCE(cardinality(p_ids), 0);
    lock_key BIGINT;
    -- Per request: its (user, period) group g and (user, period, provider)
    -- group gp, numbered from 1, and the state read once per group.
    g INT[]; gp INT[];
    b_used_calls BIGINT[]; b_held_calls BIGINT[]; b_used_cost BIGINT[]; b_held_cost BIGINT[];
    b_used_pcalls BIGINT[]; b_held_pcalls BIGINT[]; b_used_ptokens BIGINT[]; b_held_ptokens BIGINT[];
    -- What this batch has admitted so far, per group.
    acc_calls BIGINT[]; acc_cost BIGINT[]; acc_pcalls BIGINT[]; acc_ptokens BIGINT[];
    ok BOOLEAN[] := '{}';
    i INT;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    IF cardinality(p_users) <> n OR cardinality(p_periods) <> n OR cardinality(p_providers) <> n
        OR cardinality(p_models) <> n OR cardinality(p_calls) <> n OR cardinality(p_tokens) <> n
        OR cardinality(p_costs) <> n OR cardinality(p_expires) <> n OR cardinality(p_created) <> n
        OR cardinality(lim_calls) <> n OR cardinality(lim_cost) <> n
        OR cardinality(lim_provider_calls) <> n OR cardinality(lim_provider_tokens) <> n THEN
        RAISE EXCEPTION 'alwrity_reserve_batch: the argument arrays differ in length';
    END IF;
    PERFORM set_config('synchronous_commit', 'off', true);
    FOR lock_key IN
        SELECT DISTINCT hashtextextended(u || chr(31) || p, 0) AS k
          FROM unnest(p_users, p_periods) AS t(u, p) ORDER BY k
    LOOP
        PERFORM pg_advisory_xact_lock(lock_key);
    END LOOP;

    WITH q AS (
        SELECT t.u, t.p, t.pr, t.o,
               dense_rank() OVER (ORDER BY t.u, t.p)::INT AS grp,
               dense_rank() OVER (ORDER BY t.u, t.p, t.pr)::INT AS pgrp
          FROM unnest(p_users, p_periods, p_providers) WITH ORDINALITY AS t(u, p, pr, o)),
    k AS MATERIALIZED (SELECT DISTINCT q.u, q.p, q.pr FROM q),
    c AS MATERIALIZED (
        SELECT k.u, k.p, k.pr,
               COALESCE(s.total_calls, 0) AS uc, h.calls AS hc, COALESCE(s.total_cost, 0) AS ucost, h.cost AS hcost,
               COALESCE(sp.calls, 0) AS upc, h.provider_calls AS hpc, COALESCE(sp.tokens, 0) AS upt, h.provider_tokens AS hpt
          FROM k
          CROSS JOIN LATERAL (
                SELECT COALESCE(SUM(r.calls), 0) AS calls, COALESCE(SUM(r.cost), 0) AS cost,
                       COALESCE(SUM(r.calls) FILTER (WHERE r.provider = k.pr), 0) AS provider_calls,
                       COALESCE(SUM(r.tokens) FILTER (WHERE r.provider = k.pr), 0) AS provider_tokens
                  FROM reservations r
                 WHERE r.user_id = k.u AND r.billing_period = k.p AND r.status = 'held') AS h
          LEFT JOIN usage_summaries s ON s.user_id = k.u AND s.billing_period = k.p
          LEFT JOIN usage_summary_providers sp ON sp.user_id = k.u AND sp.billing_period = k.p AND sp.provider = k.pr)
    SELECT array_agg(q.grp ORDER BY q.o), array_agg(q.pgrp ORDER BY q.o),
           array_agg(c.uc ORDER BY q.o), array_agg(c.hc ORDER BY q.o),
           array_agg(c.ucost ORDER BY q.o), array_agg(c.hcost ORDER BY q.o),
           array_agg(c.upc ORDER BY q.o), array_agg(c.hpc ORDER BY q.o),
           array_agg(c.upt ORDER BY q.o), array_agg(c.hpt ORDER BY q.o)
      INTO g, gp, b_used_calls, b_held_calls, b_used_cost, b_held_cost,
           b_used_pcalls, b_held_pcalls, b_used_ptokens, b_held_ptokens
      FROM q JOIN c ON c.u = q.u AND c.p = q.p AND c.pr = q.pr;
    IF COALESCE(cardinality(g), 0) <> n THEN
        RAISE EXCEPTION 'alwrity_reserve_batch: a request has no user, period or provider';
    END IF;

    acc_calls := array_fill(0::BIGINT, ARRAY[n]);
    acc_cost := array_fill(0::BIGINT, ARRAY[n]);
    acc_pcalls := array_fill(0::BIGINT, ARRAY[n]);
    acc_ptokens := array_fill(0::BIGINT, ARRAY[n]);
    FOR i IN 1..n LOOP
        ord := i;
        used_calls := b_used_calls[i];
        held_calls := b_held_calls[i] + acc_calls[g[i]];
        used_cost := b_used_cost[i];
        held_cost := b_held_cost[i] + acc_cost[g[i]];
        used_provider_calls := b_used_pcalls[i];
        held_provider_calls := b_held_pcalls[i] + acc_pcalls[gp[i]];
        used_provider_tokens := b_used_ptokens[i];
        held_provider_tokens := b_held_ptokens[i] + acc_ptokens[gp[i]];
        admitted := (lim_calls[i] IS NULL OR used_calls + held_calls + p_calls[i] <= lim_calls[i])
                AND (lim_cost[i] IS NULL OR used_cost + held_cost + p_costs[i] <= lim_cost[i])
                AND (lim_provider_calls[i] IS NULL
                     OR used_provider_calls + held_provider_calls + p_calls[i] <= lim_provider_calls[i])
                AND (lim_provider_tokens[i] IS NULL
                     OR used_provider_tokens + held_provider_tokens + p_tokens[i] <= lim_provider_tokens[i]);
        IF admitted THEN
            acc_calls[g[i]] := acc_calls[g[i]] + p_calls[i];
            acc_cost[g[i]] := acc_cost[g[i]] + p_costs[i];
            acc_pcalls[gp[i]] := acc_pcalls[gp[i]] + p_calls[i];
            acc_ptokens[gp[i]] := acc_ptokens[gp[i]] + p_tokens[i];
        END IF;
        ok[i] := admitted;
        RETURN NEXT;
    END LOOP;

    INSERT INTO reservations (id, user_id, billing_period, provider, model, calls, tokens, cost, status, expires_at, created_at)
    SELECT t.id, t.u, t.p, t.pr, t.m, t.calls, t.tokens, t.cost, 'held', t.exp, t.created
      FROM unnest(p_ids, p_users, p_periods, p_providers, p_models, p_calls, p_tokens, p_costs, p_expires, p_created)
           WITH ORDINALITY AS t(id, u, p, pr, m, calls, tokens, cost, exp, created, o)
     WHERE ok[t.o];
END;
$$;
-- +goose StatementEnd
