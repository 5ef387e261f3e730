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
	// reuse it instead of adding to it. (Each burst waits for a checkpoint
	// that began after it: one during the burst may have found the log
	// copied back between two commits.)
	wal := size(path + "-wal")
	for burst := range 3 {
		fill(1000)
		done := db.checkpoints.completed.Load()
		for db.checkpoints.completed.Load() == done {
			if time.Now().After(deadline) {
				t.Fatalf("no complete checkpoint after burst %d", burst)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("log %d bytes after the first 1,000 commits, %d after 3 more bursts", wal, size(path+"-wal"))
	if grown := size(path + "-wal"); grown > 2*wal {
		t.Fatalf("log grew from %d to %d bytes over 3 more bursts; it should start over after each checkpoint", wal, grown)
	}
}
