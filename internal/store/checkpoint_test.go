package store

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCheckpointerCopiesTheLogBack: the writer never checkpoints itself,
// so rows reach the database file only through the background
// checkpointer. Commits that fill well over a megabyte of log must show up
// in the file's size, and the log must start over instead of growing.
func TestCheckpointerCopiesTheLogBack(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ckpt.db")
	db, err := Open(ctx, "sqlite:///"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE filler (id INTEGER PRIMARY KEY, body TEXT NOT NULL)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	size := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	before := size(path)
	body := strings.Repeat("x", 2000)
	fill := func(n int) {
		for i := range n {
			if err := db.inTx(ctx, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO filler (body) VALUES ($1)`, body)
				return err
			}); err != nil {
				t.Fatalf("insert %d: %v", i, err)
			}
		}
	}
	fill(1000) // ≈ 2 MB of rows, one page or more of log each
	deadline := time.Now().Add(time.Minute)
	for size(path) < before+2_000_000 {
		if time.Now().After(deadline) {
			t.Fatalf("database file %d bytes after 1,000 commits of 2 KB (was %d): the log was not copied back", size(path), before)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Once copied back, the log starts over: later bursts of commits
	// reuse it instead of adding to it. (The test checkpoints itself after
	// each burst, until one copies the whole log: one the checkpointer
	// began during a burst may end after it without its last commits, and
	// while it runs another is refused as busy.)
	copiedBack := func() {
		for {
			var busy, logged, copied int64
			err := db.read.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logged, &copied)
			if err == nil && busy == 0 && logged == copied {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no complete checkpoint: busy %d, %d of %d pages copied, %v", busy, copied, logged, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wal := size(path + "-wal")
	for range 6 {
		fill(1000)
		copiedBack()
	}
	// A burst may now and then find the log busy and add to it rather
	// than start it over; without restarts it would hold all 7 bursts.
	t.Logf("log %d bytes after the first 1,000 commits, %d after 6 more bursts", wal, size(path+"-wal"))
	if grown := size(path + "-wal"); grown > 3*wal {
		t.Fatalf("log grew from %d to %d bytes over 6 more bursts; it should start over after checkpoints", wal, grown)
	}
}
