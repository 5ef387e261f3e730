package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/pricefile"
)

// PriceHistory returns every stored version of the matching prices (active
// or not), grouped by provider and model and newest first within a model.
// An empty provider or model matches all.
func (db *DB) PriceHistory(ctx context.Context, provider, model string) ([]billing.Price, error) {
	q := `SELECT ` + priceColumns + ` FROM api_provider_pricing WHERE ($1 = '' OR provider = $1) AND ($2 = '' OR model_name = $2)
		ORDER BY provider, model_name, effective_date DESC, id DESC`
	rows, err := db.readRows(ctx, q, provider, model)
	if err != nil {
		return nil, fmt.Errorf("query price history: %w", err)
	}
	defer rows.Close()
	var out []billing.Price
	for rows.Next() {
		p, err := scanPrice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// AddPrice stores one new price version and returns it as stored. A zero
// EffectiveFrom means now; times are kept to the microsecond. A version
// without a description keeps that of the version it follows, as imports
// do, so exported history imports back the same. Errors:
// invalid (an unknown provider or a bad field), conflict (the model already
// has a version effective at that time).
func (db *DB) AddPrice(ctx context.Context, p billing.Price, now time.Time) (billing.Price, error) {
	p = normalizePrice(p, now)
	var out billing.Price
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		known, err := providerNames(ctx, tx)
		if err != nil {
			return err
		}
		if err := checkPrices([]billing.Price{p}, known, ""); err != nil {
			return err
		}
		if p.Description == "" {
			prev, err := priceInEffect(ctx, tx, p.Provider, p.ModelName, p.EffectiveFrom)
			if err != nil {
				return err
			}
			if prev != nil {
				p.Description = prev.Description
			}
		}
		id, err := createPrice(ctx, tx, p, now)
		if err != nil {
			return err
		}
		out, err = priceByID(ctx, tx, id)
		return err
	})
	return out, err
}

// ImportPrices adds each price as a new version unless it is equivalent to
// the version already in effect at its time (pricefile.Equivalent), in one
// transaction: any bad entry stores nothing. A price without an
// EffectiveFrom takes effectiveFrom (now when zero). A dry run reports the
// same result and stores nothing. Errors: invalid (naming the entry),
// conflict (a different version of a model at the same time).
func (db *DB) ImportPrices(ctx context.Context, prices []billing.Price, effectiveFrom time.Time, dryRun bool, now time.Time) (pricefile.ImportResult, error) {
	return db.ImportCatalog(ctx, prices, nil, effectiveFrom, dryRun, now)
}

// ImportCatalog is ImportPrices that also sets model aliases, in the same
// transaction.
func (db *DB) ImportCatalog(ctx context.Context, prices []billing.Price, aliases []pricefile.Alias, effectiveFrom time.Time,
	dryRun bool, now time.Time) (pricefile.ImportResult, error) {
	if effectiveFrom.IsZero() {
		effectiveFrom = now
	}
	normalized := make([]billing.Price, len(prices))
	items := make([]importItem, len(prices))
	for i, p := range prices {
		if p.EffectiveFrom.IsZero() {
			p.EffectiveFrom = effectiveFrom
		}
		normalized[i] = normalizePrice(p, now)
		items[i] = importItem{index: i, price: normalized[i]}
	}
	// Versions of one model go in time order, so each is compared with
	// the one before it, also when that one comes from the same file.
	sort.SliceStable(items, func(i, j int) bool {
		a, b := items[i].price, items[j].price
		if a.Provider != b.Provider {
			return a.Provider < b.Provider
		}
		if a.ModelName != b.ModelName {
			return a.ModelName < b.ModelName
		}
		return a.EffectiveFrom.Before(b.EffectiveFrom)
	})
	var res pricefile.ImportResult
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	known, err := providerNames(ctx, tx)
	if err != nil {
		return res, err
	}
	if err := checkPrices(normalized, known, "prices"); err != nil {
		return res, err
	}
	if err := checkAliases(aliases, known); err != nil {
		return res, err
	}
	for _, it := range items {
		p := it.price
		prev, err := priceInEffect(ctx, tx, p.Provider, p.ModelName, p.EffectiveFrom)
		if err != nil {
			return res, err
		}
		if prev != nil && p.Description == "" {
			// Foreign files carry no descriptions: keep the one we have.
			p.Description = prev.Description
		}
		if prev != nil && pricefile.Equivalent(*prev, p) {
			res.Unchanged++
			continue
		}
		if prev != nil && prev.EffectiveFrom.Equal(p.EffectiveFrom) {
			return res, billing.Errorf(billing.CodeConflict,
				"prices[%d] (%s/%s): a different version effective %s already exists; versions are never rewritten, so give this one a later effective_from",
				it.index, p.Provider, p.ModelName, p.EffectiveFrom.Format(time.RFC3339Nano))
		}
		id, err := createPrice(ctx, tx, p, now)
		if err != nil {
			return res, fmt.Errorf("prices[%d]: %w", it.index, err)
		}
		p.ID = id
		if dryRun {
			p.ID = 0 // the row is rolled back
		}
		res.Added++
		res.Changes = append(res.Changes, pricefile.Change{Previous: prev, Price: p})
	}
	set, unchanged, err := setAliases(ctx, tx, aliases)
	if err != nil {
		return res, err
	}
	res.AliasesSet, res.AliasesUnchanged = set, unchanged
	if dryRun {
		return res, nil // the deferred rollback undoes everything
	}
	if err := tx.Commit(); err != nil {
		return pricefile.ImportResult{}, fmt.Errorf("commit: %w", err)
	}
	return res, nil
}

type importItem struct {
	index int // in the caller's slice, for error messages
	price billing.Price
}

// normalizePrice fills the defaults of a new version: active, effective
// now when no time is given, times in UTC to the microsecond the database
// keeps (so what is compared is what is stored).
func normalizePrice(p billing.Price, now time.Time) billing.Price {
	p.ID = 0
	p.IsActive = true
	if p.EffectiveFrom.IsZero() {
		p.EffectiveFrom = now
	}
	p.EffectiveFrom = p.EffectiveFrom.UTC().Truncate(time.Microsecond)
	if p.EffectiveTo != nil {
		p.EffectiveTo = billing.Ptr(p.EffectiveTo.UTC().Truncate(time.Microsecond))
	}
	return p
}

// checkPrices validates prices and their providers, naming each bad one
// as list[i], or by its fields alone when list is "". Errors: invalid.
func checkPrices(prices []billing.Price, known map[string]bool, list string) error {
	var fs []billing.FieldError
	for i, p := range prices {
		loc, field := "", "provider"
		if list != "" {
			loc = fmt.Sprintf("%s[%d]", list, i)
			field = loc + ".provider"
		}
		fs = append(fs, pricefile.ValidatePrice(p, loc)...)
		if p.Provider != "" && !known[p.Provider] {
			fs = append(fs, billing.FieldError{Location: field,
				Message: fmt.Sprintf("%s/%s: unknown provider %q; known providers: %s", p.Provider, p.ModelName, p.Provider, names(known)),
				Value:   p.Provider})
		}
	}
	return pricefile.ValidationError("prices", fs)
}

func checkAliases(aliases []pricefile.Alias, known map[string]bool) error {
	var fs []billing.FieldError
	for i, a := range aliases {
		loc := fmt.Sprintf("aliases[%d]", i)
		fs = append(fs, pricefile.ValidateAlias(a, loc)...)
		if a.Provider != "" && !known[a.Provider] {
			fs = append(fs, billing.FieldError{Location: loc + ".provider",
				Message: fmt.Sprintf("unknown provider %q; known providers: %s", a.Provider, names(known)), Value: a.Provider})
		}
	}
	return pricefile.ValidationError("aliases", fs)
}

func names(known map[string]bool) string {
	out := make([]string, 0, len(known))
	for n := range known {
		out = append(out, n)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func providerNames(ctx context.Context, tx *sql.Tx) (map[string]bool, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name FROM api_providers`)
	if err != nil {
		return nil, fmt.Errorf("list providers: %w", err)
	}
	defer rows.Close()
	known := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		known[n] = true
	}
	return known, rows.Err()
}

// priceInEffect returns the version of a model in effect at t, as
// ListPrices and rating choose it, or nil.
func priceInEffect(ctx context.Context, tx *sql.Tx, provider, model string, t time.Time) (*billing.Price, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+priceColumns+` FROM api_provider_pricing
		WHERE provider = $1 AND model_name = $2 AND is_active = TRUE AND effective_date <= $3
			AND (effective_to IS NULL OR effective_to > $3)
		ORDER BY effective_date DESC LIMIT 1`, provider, model, ts(t))
	if err != nil {
		return nil, fmt.Errorf("read price of %s/%s: %w", provider, model, err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, rows.Err()
	}
	p, err := scanPrice(rows)
	if err != nil {
		return nil, err
	}
	return &p, rows.Err()
}

func priceByID(ctx context.Context, tx *sql.Tx, id int64) (billing.Price, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+priceColumns+` FROM api_provider_pricing WHERE id = $1`, id)
	if err != nil {
		return billing.Price{}, fmt.Errorf("read price %d: %w", id, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return billing.Price{}, err
		}
		return billing.Price{}, billing.Errorf(billing.CodeNotFound, "price %d not found", id)
	}
	return scanPrice(rows)
}

// ListAliases returns the model aliases of one provider or ("") all,
// ordered by provider and alias.
func (db *DB) ListAliases(ctx context.Context, provider string) ([]pricefile.Alias, error) {
	rows, err := db.readRows(ctx, `SELECT provider, alias, model_name FROM model_aliases
		WHERE ($1 = '' OR provider = $1) ORDER BY provider, alias`, provider)
	if err != nil {
		return nil, fmt.Errorf("list model aliases: %w", err)
	}
	defer rows.Close()
	out := []pricefile.Alias{}
	for rows.Next() {
		var a pricefile.Alias
		if err := rows.Scan(&a.Provider, &a.Alias, &a.Model); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// SetAlias prices calls to a.Alias as calls to a.Model, replacing what the
// alias stood for before, and reports whether anything changed. Errors:
// invalid (an unknown provider or a bad name).
func (db *DB) SetAlias(ctx context.Context, a pricefile.Alias) (bool, error) {
	var changed bool
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		known, err := providerNames(ctx, tx)
		if err != nil {
			return err
		}
		if err := checkAliases([]pricefile.Alias{a}, known); err != nil {
			return err
		}
		set, _, err := setAliases(ctx, tx, []pricefile.Alias{a})
		changed = set > 0
		return err
	})
	return changed, err
}

// setAliases upserts aliases, bumping the catalog version once if any
// changed, and counts those set and those already in place.
func setAliases(ctx context.Context, tx *sql.Tx, aliases []pricefile.Alias) (set, unchanged int, err error) {
	for _, a := range aliases {
		var current string
		err := tx.QueryRowContext(ctx, `SELECT model_name FROM model_aliases WHERE provider = $1 AND alias = $2`,
			a.Provider, a.Alias).Scan(&current)
		switch {
		case err == nil && current == a.Model:
			unchanged++
			continue
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return 0, 0, fmt.Errorf("read alias %s/%s: %w", a.Provider, a.Alias, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO model_aliases (provider, alias, model_name) VALUES ($1, $2, $3)
			ON CONFLICT (provider, alias) DO UPDATE SET model_name = excluded.model_name`, a.Provider, a.Alias, a.Model); err != nil {
			return 0, 0, fmt.Errorf("set alias %s/%s: %w", a.Provider, a.Alias, err)
		}
		set++
	}
	if set > 0 {
		if err := bumpCatalog(ctx, tx); err != nil {
			return 0, 0, err
		}
	}
	return set, unchanged, nil
}

// DeleteAlias removes an alias. Errors: not_found.
func (db *DB) DeleteAlias(ctx context.Context, provider, alias string) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `DELETE FROM model_aliases WHERE provider = $1 AND alias = $2`, provider, alias)
		if err != nil {
			return fmt.Errorf("delete alias %s/%s: %w", provider, alias, err)
		}
		if n, err := r.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return billing.Errorf(billing.CodeNotFound, "no alias %q for provider %q", alias, provider)
		}
		return bumpCatalog(ctx, tx)
	})
}
