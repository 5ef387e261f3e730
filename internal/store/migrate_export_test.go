package store

import (
	"context"
	"fmt"
)

// MigrateTo moves the schema up or down to version, so that tests can
// write rows as an older schema held them and see what a migration does to
// them.
func (db *DB) MigrateTo(ctx context.Context, version int64) error {
	p, err := db.goose()
	if err != nil {
		return err
	}
	cur, err := p.GetDBVersion(ctx)
	if err != nil {
		return err
	}
	if version >= cur {
		_, err = p.UpTo(ctx, version)
	} else {
		_, err = p.DownTo(ctx, version)
	}
	if err != nil {
		return fmt.Errorf("migrate %d → %d: %w", cur, version, err)
	}
	return nil
}

// WriterTempStore reads the writer connection's temp_store setting (0
// default, 1 file, 2 memory).
func (db *DB) WriterTempStore(ctx context.Context) (int, error) {
	var n int
	err := db.write.QueryRowContext(ctx, "PRAGMA temp_store").Scan(&n)
	return n, err
}
