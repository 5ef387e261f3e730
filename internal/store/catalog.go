package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// ListProviders returns the known providers in display order.
func (db *DB) ListProviders(ctx context.Context) ([]billing.Provider, error) {
	rows, err := db.readRows(ctx,
		`SELECT name, display_name, kind, meters_tokens, sort_order FROM api_providers ORDER BY sort_order, name`)
	if err != nil {
		return nil, fmt.Errorf("list providers: %w", err)
	}
	defer rows.Close()
	var out []billing.Provider
	for rows.Next() {
		var p billing.Provider
		if err := rows.Scan(&p.Name, &p.DisplayName, &p.Kind, &p.MetersTokens, &p.SortOrder); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

const planColumns = `id, name, tier, price_monthly, price_yearly, description, features, is_active,
	total_calls_limit, monthly_cost_limit, created_at, updated_at, version, replaced_by, soft_limits,
	overage_per_call, overage_per_1k_tokens`

// ListPlans returns plans by ascending monthly price, only active ones when
// activeOnly is set.
func (db *DB) ListPlans(ctx context.Context, activeOnly bool) ([]billing.Plan, error) {
	q := `SELECT ` + planColumns + ` FROM subscription_plans`
	if activeOnly {
		q += ` WHERE is_active = TRUE`
	}
	q += ` ORDER BY price_monthly, id`
	return db.queryPlans(ctx, q)
}

// GetPlan returns one plan. Errors: not_found.
func (db *DB) GetPlan(ctx context.Context, id int64) (billing.Plan, error) {
	plans, err := db.queryPlans(ctx, `SELECT `+planColumns+` FROM subscription_plans WHERE id = $1`, id)
	if err != nil {
		return billing.Plan{}, err
	}
	if len(plans) == 0 {
		return billing.Plan{}, billing.Errorf(billing.CodeNotFound, "plan %d not found", id)
	}
	return plans[0], nil
}

// DefaultPlan returns the plan of users without a subscription: the
// cheapest active free plan. Errors: not_found when none exists.
func (db *DB) DefaultPlan(ctx context.Context) (billing.Plan, error) {
	plans, err := db.queryPlans(ctx, `SELECT `+planColumns+` FROM subscription_plans
		WHERE is_active = TRUE AND price_monthly = 0 AND price_yearly = 0 ORDER BY tier = 'free' DESC, id LIMIT 1`)
	if err != nil {
		return billing.Plan{}, err
	}
	if len(plans) == 0 {
		return billing.Plan{}, billing.Errorf(billing.CodeNotFound, "no active free plan is configured")
	}
	return plans[0], nil
}

func (db *DB) queryPlans(ctx context.Context, q string, args ...any) ([]billing.Plan, error) {
	rows, err := db.readRows(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query plans: %w", err)
	}
	defer rows.Close()
	var plans []billing.Plan
	byID := map[int64]int{}
	for rows.Next() {
		var p billing.Plan
		var features string
		var calls, cost, replacedBy, perCall, per1k sql.NullInt64
		if err := rows.Scan(&p.ID, &p.Name, &p.Tier, &p.PriceMonthly, &p.PriceYearly, &p.Description, &features,
			&p.IsActive, &calls, &cost, scanTime{&p.CreatedAt}, scanTime{&p.UpdatedAt},
			&p.Version, &replacedBy, &p.SoftLimits, &perCall, &per1k); err != nil {
			return nil, fmt.Errorf("scan plan: %w", err)
		}
		if replacedBy.Valid {
			p.ReplacedBy = &replacedBy.Int64
		}
		if perCall.Valid {
			p.OveragePerCall = billing.Ptr(money.Amount(perCall.Int64))
		}
		if per1k.Valid {
			p.OveragePer1KTokens = billing.Ptr(money.Amount(per1k.Int64))
		}
		if err := json.Unmarshal([]byte(features), &p.Features); err != nil {
			return nil, fmt.Errorf("plan %d features: %w", p.ID, err)
		}
		if calls.Valid {
			p.TotalCallsLimit = &calls.Int64
		}
		if cost.Valid {
			p.MonthlyCostLimit = billing.Ptr(money.Amount(cost.Int64))
		}
		p.ProviderLimits = map[string]billing.ProviderLimit{}
		byID[p.ID] = len(plans)
		plans = append(plans, p)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(plans) == 0 {
		return plans, nil
	}
	lrows, err := db.readRows(ctx, `SELECT plan_id, provider, calls_limit, tokens_limit FROM plan_provider_limits`)
	if err != nil {
		return nil, fmt.Errorf("query plan limits: %w", err)
	}
	defer lrows.Close()
	for lrows.Next() {
		var id int64
		var provider string
		var calls, tokens sql.NullInt64
		if err := lrows.Scan(&id, &provider, &calls, &tokens); err != nil {
			return nil, err
		}
		i, ok := byID[id]
		if !ok {
			continue
		}
		var l billing.ProviderLimit
		if calls.Valid {
			l.Calls = &calls.Int64
		}
		if tokens.Valid {
			l.Tokens = &tokens.Int64
		}
		plans[i].ProviderLimits[provider] = l
	}
	return plans, lrows.Err()
}

// createPlan inserts a plan and its provider limits.
func createPlan(ctx context.Context, tx *sql.Tx, p billing.Plan, now time.Time) (int64, error) {
	features, err := json.Marshal(nonNil(p.Features))
	if err != nil {
		return 0, err
	}
	var cost *int64
	if p.MonthlyCostLimit != nil {
		cost = billing.Ptr(int64(*p.MonthlyCostLimit))
	}
	var id int64
	version := max(p.Version, 1)
	err = tx.QueryRowContext(ctx, `INSERT INTO subscription_plans (name, tier, price_monthly, price_yearly, description,
		features, is_active, total_calls_limit, monthly_cost_limit, created_at, updated_at,
		version, soft_limits, overage_per_call, overage_per_1k_tokens)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13, $14) RETURNING id`,
		p.Name, p.Tier, int64(p.PriceMonthly), int64(p.PriceYearly), p.Description, string(features), p.IsActive,
		nullInt64(p.TotalCallsLimit), nullInt64(cost), ts(now), version, p.SoftLimits,
		nullAmount(p.OveragePerCall), nullAmount(p.OveragePer1KTokens)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert plan %q: %w", p.Name, conflict(err, "a plan named %q already exists", p.Name))
	}
	names := make([]string, 0, len(p.ProviderLimits))
	for n := range p.ProviderLimits {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l := p.ProviderLimits[n]
		if _, err := tx.ExecContext(ctx, `INSERT INTO plan_provider_limits (plan_id, provider, calls_limit, tokens_limit)
			VALUES ($1, $2, $3, $4)`, id, n, nullInt64(l.Calls), nullInt64(l.Tokens)); err != nil {
			return 0, fmt.Errorf("insert plan %q limit for %s: %w", p.Name, n, err)
		}
	}
	return id, nil
}

// CreatePlan stores a new plan and returns its id. Errors: conflict when the
// name is taken.
func (db *DB) CreatePlan(ctx context.Context, p billing.Plan, now time.Time) (int64, error) {
	var id int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		id, err = createPlan(ctx, tx, p, now)
		return err
	})
	db.accountsChanged()
	return id, err
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

const priceColumns = `id, provider, model_name, description, cost_per_input_token, cost_per_output_token,
	cost_per_cached_input_token, cost_per_cache_write_5m_token, cost_per_cache_write_1h_token, cost_per_reasoning_token,
	cost_per_request, cost_per_search, cost_per_image, cost_per_page, long_context_threshold,
	lc_cost_per_input_token, lc_cost_per_output_token, lc_cost_per_cached_input_token,
	lc_cost_per_cache_write_5m_token, lc_cost_per_cache_write_1h_token, lc_cost_per_reasoning_token,
	is_active, effective_date, effective_to`

// ListPrices returns the price version of each model in effect at `at`,
// for one provider or ("") all, ordered by provider and model.
func (db *DB) ListPrices(ctx context.Context, provider string, at time.Time) ([]billing.Price, error) {
	q := `SELECT ` + priceColumns + ` FROM api_provider_pricing
		WHERE is_active = TRUE AND effective_date <= $1 AND (effective_to IS NULL OR effective_to > $1)`
	args := []any{ts(at)}
	if provider != "" {
		q += ` AND provider = $2`
		args = append(args, provider)
	}
	q += ` ORDER BY provider, model_name, effective_date DESC`
	rows, err := db.readRows(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query prices: %w", err)
	}
	defer rows.Close()
	var out []billing.Price
	for rows.Next() {
		p, err := scanPrice(rows)
		if err != nil {
			return nil, err
		}
		// Rows come newest first within a model: keep the first of each.
		if n := len(out); n > 0 && out[n-1].Provider == p.Provider && out[n-1].ModelName == p.ModelName {
			continue
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func scanPrice(rows *sql.Rows) (billing.Price, error) {
	var p billing.Price
	var cached, w5, w1, reasoning, lcThreshold, lcIn, lcOut, lcCached, lcW5, lcW1, lcReasoning sql.NullInt64
	err := rows.Scan(&p.ID, &p.Provider, &p.ModelName, &p.Description, &p.Tier.Input, &p.Tier.Output,
		&cached, &w5, &w1, &reasoning, &p.PerRequest, &p.PerSearch, &p.PerImage, &p.PerPage, &lcThreshold,
		&lcIn, &lcOut, &lcCached, &lcW5, &lcW1, &lcReasoning,
		&p.IsActive, scanTime{&p.EffectiveFrom}, scanNullTime{&p.EffectiveTo})
	if err != nil {
		return p, fmt.Errorf("scan price: %w", err)
	}
	amt := func(n sql.NullInt64) *money.Amount {
		if !n.Valid {
			return nil
		}
		return billing.Ptr(money.Amount(n.Int64))
	}
	p.Tier.CachedInput, p.Tier.CacheWrite5m, p.Tier.CacheWrite1h, p.Tier.Reasoning = amt(cached), amt(w5), amt(w1), amt(reasoning)
	if lcThreshold.Valid {
		p.LongContextThreshold = &lcThreshold.Int64
		p.LongContext = &billing.PriceTier{
			Input: money.Amount(lcIn.Int64), Output: money.Amount(lcOut.Int64),
			CachedInput: amt(lcCached), CacheWrite5m: amt(lcW5), CacheWrite1h: amt(lcW1), Reasoning: amt(lcReasoning),
		}
	}
	return p, nil
}

// createPrice inserts one price version.
func createPrice(ctx context.Context, tx *sql.Tx, p billing.Price, now time.Time) (int64, error) {
	amt := func(a *money.Amount) any {
		if a == nil {
			return nil
		}
		return int64(*a)
	}
	lc := billing.PriceTier{}
	var lcIn, lcOut any
	if p.LongContext != nil {
		lc = *p.LongContext
		lcIn, lcOut = int64(lc.Input), int64(lc.Output)
	}
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO api_provider_pricing (provider, model_name, description,
		cost_per_input_token, cost_per_output_token, cost_per_cached_input_token, cost_per_cache_write_5m_token,
		cost_per_cache_write_1h_token, cost_per_reasoning_token, cost_per_request, cost_per_search, cost_per_image,
		cost_per_page, long_context_threshold, lc_cost_per_input_token, lc_cost_per_output_token,
		lc_cost_per_cached_input_token, lc_cost_per_cache_write_5m_token, lc_cost_per_cache_write_1h_token,
		lc_cost_per_reasoning_token, is_active, effective_date, effective_to, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $24)
		RETURNING id`,
		p.Provider, p.ModelName, p.Description, int64(p.Tier.Input), int64(p.Tier.Output),
		amt(p.Tier.CachedInput), amt(p.Tier.CacheWrite5m), amt(p.Tier.CacheWrite1h), amt(p.Tier.Reasoning),
		int64(p.PerRequest), int64(p.PerSearch), int64(p.PerImage), int64(p.PerPage), nullInt64(p.LongContextThreshold),
		lcIn, lcOut, amt(lc.CachedInput), amt(lc.CacheWrite5m), amt(lc.CacheWrite1h), amt(lc.Reasoning),
		p.IsActive, ts(p.EffectiveFrom), tsp(p.EffectiveTo), ts(now)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert price %s/%s: %w", p.Provider, p.ModelName, conflict(err,
			"a price for %s/%s effective %s already exists", p.Provider, p.ModelName, ts(p.EffectiveFrom)))
	}
	return id, bumpCatalog(ctx, tx)
}

// CreatePrice stores a new price version and returns its id. Errors:
// conflict when the model already has a version effective at that time.
func (db *DB) CreatePrice(ctx context.Context, p billing.Price, now time.Time) (int64, error) {
	var id int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		id, err = createPrice(ctx, tx, p, now)
		return err
	})
	return id, err
}

// SeedResult counts what Seed added.
type SeedResult struct{ Providers, Plans, Prices int }

// Seed adds each default provider, plan and price that has never been
// seeded. A default seeded once is never added again, so an admin's rename,
// edit or removal is never undone by a restart.
func (db *DB) Seed(ctx context.Context, providers []billing.Provider, plans []billing.Plan, prices []billing.Price, now time.Time) (SeedResult, error) {
	var res SeedResult
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res = SeedResult{}
		for _, p := range providers {
			ok, err := claimSeed(ctx, tx, "provider", p.Name, now)
			if err != nil || !ok {
				if err != nil {
					return err
				}
				continue
			}
			r, err := tx.ExecContext(ctx, `INSERT INTO api_providers (name, display_name, kind, meters_tokens, sort_order, created_at)
				VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING`,
				p.Name, p.DisplayName, p.Kind, p.MetersTokens, p.SortOrder, ts(now))
			if err != nil {
				return fmt.Errorf("seed provider %s: %w", p.Name, err)
			}
			if n, _ := r.RowsAffected(); n > 0 {
				res.Providers++
			}
		}
		for _, p := range plans {
			ok, err := claimSeed(ctx, tx, "plan", p.Name, now)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			var exists bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM subscription_plans WHERE name = $1)`, p.Name).Scan(&exists); err != nil {
				return err
			}
			if exists {
				continue
			}
			if _, err := createPlan(ctx, tx, p, now); err != nil {
				return err
			}
			res.Plans++
		}
		for _, p := range prices {
			key := p.Provider + "/" + p.ModelName + "@" + ts(p.EffectiveFrom)
			ok, err := claimSeed(ctx, tx, "price", key, now)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			var exists bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM api_provider_pricing
				WHERE provider = $1 AND model_name = $2 AND effective_date = $3)`,
				p.Provider, p.ModelName, ts(p.EffectiveFrom)).Scan(&exists); err != nil {
				return err
			}
			if exists {
				continue
			}
			if _, err := createPrice(ctx, tx, p, now); err != nil {
				return err
			}
			res.Prices++
		}
		return nil
	})
	return res, err
}

// claimSeed records that a default is being seeded and reports whether it
// had not been before.
func claimSeed(ctx context.Context, tx *sql.Tx, kind, key string, now time.Time) (bool, error) {
	r, err := tx.ExecContext(ctx, `INSERT INTO seeded_defaults (kind, seed_key, seeded_at) VALUES ($1, $2, $3)
		ON CONFLICT (kind, seed_key) DO NOTHING`, kind, key, ts(now))
	if err != nil {
		return false, fmt.Errorf("record seed %s %s: %w", kind, key, err)
	}
	n, err := r.RowsAffected()
	return n > 0, err
}

// MissingDefaults returns the default plans and prices that are absent, by
// name, for verify.
func (db *DB) MissingDefaults(ctx context.Context, plans []billing.Plan, prices []billing.Price) ([]string, error) {
	var missing []string
	for _, p := range plans {
		var ok bool
		if err := db.readRow(ctx, `SELECT EXISTS (SELECT 1 FROM subscription_plans WHERE name = $1)`, p.Name).Scan(&ok); err != nil {
			return nil, err
		}
		if !ok {
			missing = append(missing, "plan "+p.Name)
		}
	}
	for _, p := range prices {
		var ok bool
		if err := db.readRow(ctx, `SELECT EXISTS (SELECT 1 FROM api_provider_pricing WHERE provider = $1 AND model_name = $2)`,
			p.Provider, p.ModelName).Scan(&ok); err != nil {
			return nil, err
		}
		if !ok {
			missing = append(missing, "price "+p.Provider+"/"+p.ModelName)
		}
	}
	return missing, nil
}

// notFound maps sql.ErrNoRows to a coded error.
func notFound(err error, format string, args ...any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return billing.Errorf(billing.CodeNotFound, format, args...)
	}
	return err
}

func nullAmount(a *money.Amount) any {
	if a == nil {
		return nil
	}
	return int64(*a)
}
