package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// RevokeKeyKeepingAdmin revokes the key with the given prefix and returns
// it as stored after. Revoking a revoked key changes nothing: it keeps the
// time of its first revocation. With keepAdmin set it refuses to revoke
// the last active admin key, for a server that has no other admin
// credential. Errors: not_found; conflict (the last admin key).
func (db *DB) RevokeKeyKeepingAdmin(ctx context.Context, prefix string, now time.Time, keepAdmin bool) (billing.APIKey, error) {
	var k billing.APIKey
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if keepAdmin {
			// Two admins revoking the last two admin keys at once must not
			// both succeed: on PostgreSQL each first locks every active
			// admin key, so the second waits and then counts without the
			// first's. SQLite's write transactions are serialised already.
			rows, err := tx.QueryContext(ctx, `SELECT key_prefix FROM api_keys
				WHERE role = 'admin' AND revoked_at IS NULL`+db.lockClause())
			if err != nil {
				return fmt.Errorf("lock admin keys: %w", err)
			}
			var active []string
			for rows.Next() {
				var p string
				if err := rows.Scan(&p); err != nil {
					rows.Close()
					return fmt.Errorf("scan admin key: %w", err)
				}
				active = append(active, p)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("read admin keys: %w", err)
			}
			if len(active) == 1 && active[0] == prefix {
				return billing.Errorf(billing.CodeConflict,
					"%s is the last active admin key and the server has no other admin credential: "+
						"create another admin key first (or set ALWRITY_ADMIN_KEY)", prefix)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE key_prefix = $1`,
			prefix, ts(now)); err != nil {
			return fmt.Errorf("revoke api key: %w", err)
		}
		var err error
		k, err = scanKey(tx.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE key_prefix = $1`, prefix))
		if errors.Is(err, sql.ErrNoRows) {
			return billing.Errorf(billing.CodeNotFound, "no api key has prefix %q", prefix)
		}
		if err != nil {
			return fmt.Errorf("read revoked api key: %w", err)
		}
		return nil
	})
	return k, err
}
