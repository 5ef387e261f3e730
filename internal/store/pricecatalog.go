package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// Catalog is every active price version and model alias, as of Version.
type Catalog struct {
	Version int64
	Prices  []billing.Price              // all versions, ordered by provider, model, effective_date
	Aliases map[string]map[string]string // provider → alias → model
}

// CatalogVersion returns the pricing catalog's version; it changes in the
// same transaction as any price or alias change, so a cached catalog is
// stale exactly when its version differs.
const catalogVersionSQL = `SELECT version FROM catalog_state WHERE id = 1`

func (db *DB) CatalogVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := db.readRow(ctx, catalogVersionSQL).Scan(&v); err != nil {
		return 0, fmt.Errorf("read catalog version: %w", err)
	}
	return v, nil
}

// LoadCatalog reads every active price version and alias.
func (db *DB) LoadCatalog(ctx context.Context) (Catalog, error) {
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Catalog{}, err
	}
	defer tx.Rollback()
	c := Catalog{Aliases: map[string]map[string]string{}}
	if err := tx.QueryRowContext(ctx, `SELECT version FROM catalog_state WHERE id = 1`).Scan(&c.Version); err != nil {
		return c, fmt.Errorf("read catalog version: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+priceColumns+` FROM api_provider_pricing WHERE is_active = TRUE
		ORDER BY provider, model_name, effective_date`)
	if err != nil {
		return c, fmt.Errorf("read prices: %w", err)
	}
	for rows.Next() {
		p, err := scanPrice(rows)
		if err != nil {
			rows.Close()
			return c, err
		}
		c.Prices = append(c.Prices, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return c, err
	}
	arows, err := tx.QueryContext(ctx, `SELECT provider, alias, model_name FROM model_aliases`)
	if err != nil {
		return c, fmt.Errorf("read model aliases: %w", err)
	}
	defer arows.Close()
	for arows.Next() {
		var provider, alias, model string
		if err := arows.Scan(&provider, &alias, &model); err != nil {
			return c, err
		}
		if c.Aliases[provider] == nil {
			c.Aliases[provider] = map[string]string{}
		}
		c.Aliases[provider][alias] = model
	}
	return c, arows.Err()
}

// bumpCatalog marks the pricing catalog changed; call it in the
// transaction that changes prices or aliases.
func bumpCatalog(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `UPDATE catalog_state SET version = version + 1 WHERE id = 1`); err != nil {
		return fmt.Errorf("bump catalog version: %w", err)
	}
	return nil
}
