package store

import (
	"context"
	"fmt"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

const keyColumns = `id, key_prefix, user_id, role, name, created_at, last_used_at, revoked_at`

// CreateKey stores a key's public prefix and the hash of its secret.
// Errors: conflict when the prefix is taken.
func (db *DB) CreateKey(ctx context.Context, k billing.APIKey, hash string) (int64, error) {
	var id int64
	err := db.write.QueryRowContext(ctx, `INSERT INTO api_keys (key_prefix, key_hash, user_id, role, name, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, k.Prefix, hash, k.UserID, string(k.Role), k.Name, ts(k.CreatedAt)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert api key: %w", conflict(err, "an api key with prefix %q already exists", k.Prefix))
	}
	return id, nil
}

func scanKey(r rowScanner, extra ...any) (billing.APIKey, error) {
	var k billing.APIKey
	var role string
	dest := append([]any{&k.ID, &k.Prefix, &k.UserID, &role, &k.Name, scanTime{&k.CreatedAt},
		scanNullTime{&k.LastUsedAt}, scanNullTime{&k.RevokedAt}}, extra...)
	if err := r.Scan(dest...); err != nil {
		return k, err
	}
	k.Role = billing.Role(role)
	return k, nil
}

// KeyByPrefix returns a key and its stored hash. Errors: not_found.
func (db *DB) KeyByPrefix(ctx context.Context, prefix string) (billing.APIKey, string, error) {
	var hash string
	k, err := scanKey(db.readRow(ctx, `SELECT `+keyColumns+`, key_hash FROM api_keys WHERE key_prefix = $1`, prefix), &hash)
	if err != nil {
		return k, "", notFound(err, "api key not found")
	}
	return k, hash, nil
}

// ListKeys returns keys, newest first; userID "" lists every key.
func (db *DB) ListKeys(ctx context.Context, userID string) ([]billing.APIKey, error) {
	q, args := `SELECT `+keyColumns+` FROM api_keys`, []any{}
	if userID != "" {
		q += ` WHERE user_id = $1`
		args = append(args, userID)
	}
	rows, err := db.readRows(ctx, q+` ORDER BY id DESC`, args...)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	defer rows.Close()
	keys := []billing.APIKey{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("scan api key: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// RevokeKey revokes the key with the given prefix. Errors: not_found.
func (db *DB) RevokeKey(ctx context.Context, prefix string, now time.Time) error {
	r, err := db.write.ExecContext(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE key_prefix = $1`, prefix, ts(now))
	if err != nil {
		return fmt.Errorf("revoke api key: %w", err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return billing.Errorf(billing.CodeNotFound, "no api key starts with %q", prefix)
	}
	return nil
}

// HasActiveAdminKey reports whether any unrevoked admin key is stored.
func (db *DB) HasActiveAdminKey(ctx context.Context) (bool, error) {
	var ok bool
	err := db.readRow(ctx, `SELECT EXISTS (SELECT 1 FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL)`).Scan(&ok)
	return ok, err
}

// TouchKey records when a key was last used.
func (db *DB) TouchKey(ctx context.Context, id int64, now time.Time) error {
	_, err := db.write.ExecContext(ctx, `UPDATE api_keys SET last_used_at = $2 WHERE id = $1`, id, ts(now))
	return err
}
