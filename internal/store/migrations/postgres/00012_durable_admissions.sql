-- Admissions commit durably.
--
-- alwrity_reserve and alwrity_reserve_batch (migration 00010) set
-- synchronous_commit off for their transaction, so that a reservation did
-- not wait for the WAL flush. A database server crash could then lose the
-- last moment's admissions: a lost hold frees units an admitted call is
-- using (the limit admits more than its room), a lost lease (a hold of up
-- to 256 calls one process hands out in memory) lets that process go on
-- admitting calls nothing holds, and the settle of a lost reservation
-- finds nothing to settle. Releases, expiries and lease give-backs stay
-- asynchronous: losing one of those only keeps units held longer, which
-- can refuse early but never admit past a limit.
--
-- A SET clause on a function restores the setting when the function
-- returns, undoing the set_config inside it, so the transaction commits
-- with the session's synchronous_commit (on) and the function bodies stay
-- as they are. Admissions are few on the gateway's hot path (a lease
-- serves many calls; reservations of one moment share one statement).

-- +goose Up
ALTER FUNCTION alwrity_reserve(TEXT, TEXT, TEXT, TIMESTAMPTZ, TEXT, TEXT, BIGINT, BIGINT, BIGINT,
    TIMESTAMPTZ, TIMESTAMPTZ, BIGINT, BIGINT, BIGINT, BIGINT) SET synchronous_commit = on;
ALTER FUNCTION alwrity_reserve_batch(TEXT[], TEXT[], TEXT[], TIMESTAMPTZ[], TEXT[], TEXT[], BIGINT[], BIGINT[],
    BIGINT[], TIMESTAMPTZ[], TIMESTAMPTZ[], BIGINT[], BIGINT[], BIGINT[], BIGINT[]) SET synchronous_commit = on;

-- +goose Down
ALTER FUNCTION alwrity_reserve(TEXT, TEXT, TEXT, TIMESTAMPTZ, TEXT, TEXT, BIGINT, BIGINT, BIGINT,
    TIMESTAMPTZ, TIMESTAMPTZ, BIGINT, BIGINT, BIGINT, BIGINT) RESET synchronous_commit;
ALTER FUNCTION alwrity_reserve_batch(TEXT[], TEXT[], TEXT[], TIMESTAMPTZ[], TEXT[], TEXT[], BIGINT[], BIGINT[],
    BIGINT[], TIMESTAMPTZ[], TIMESTAMPTZ[], BIGINT[], BIGINT[], BIGINT[], BIGINT[]) RESET synchronous_commit;
