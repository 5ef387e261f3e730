-- alwrity_reserve_batch admits a group of reservations in one statement
-- and one transaction: a process queues its concurrent reservations and
-- sends everything waiting at that moment at once (metering's group
-- reservation), so a round trip, a transaction and a lock acquisition per
-- (user, period) are shared by the whole group instead of paid per call.
--
-- The requests come as parallel arrays, one element per request, and are
-- decided in array order (the order they arrived in), each exactly as
-- alwrity_reserve (migration 00007) would decide it alone: admitted only
-- if every limit has room for it on top of the settled usage, the holds
-- committed before, and the holds admitted earlier in this batch. A
-- refused request takes nothing, so a later, smaller one of the same user
-- may still fit, as it would have one call later.
--
-- Every distinct (user, period) of the batch is locked once, with the same
-- transaction-scoped advisory lock alwrity_reserve takes, in ascending
-- order of the lock key itself (not of the text it hashes, whose order can
-- differ from the keys' when two hash alike): every process takes its
-- locks in that one order, so batches of several processes on one
-- database cannot deadlock, and alwrity_reserve takes a single lock.
-- Only after the last lock is the state read, in ONE statement (one
-- snapshot: a settle that commits meanwhile is seen whole or not at all),
-- and the sums over held reservations are computed once per distinct
-- (user, period, provider), not once per request.
--
-- It returns one row per request, ord (its 1-based position) first, with
-- admitted and the counters alwrity_reserve returns, the holds admitted
-- earlier in the batch included in held_*, so store.Counters.Exceeded can
-- name the limit that refused it. The admitted requests are inserted in
-- one statement at the end; if any insert fails (a reused id) the whole
-- batch fails and admits nothing, and the caller retries its requests one
-- by one. Like alwrity_reserve it commits without waiting for the WAL
-- flush: it writes holds only, never usage.

-- +goose Up
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
    k AS (SELECT DISTINCT q.u, q.p, q.pr FROM q),
    c AS (
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

-- +goose Down
DROP FUNCTION IF EXISTS alwrity_reserve_batch;
