package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// TestReadStatementsArePreparedOnceAndBounded: on SQLite a read's text is
// prepared once on the read pool and reused; texts past maxReadStmts run
// unprepared, with the same answers, and Close finalises what is kept.
func TestReadStatementsArePreparedOnceAndBounded(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, "sqlite:///"+filepath.Join(t.TempDir(), "reads.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	kept := func() int {
		db.readMu.Lock()
		defer db.readMu.Unlock()
		return len(db.reads)
	}
	const q = `SELECT $1 + 1`
	for i := range 3 {
		var got int
		if err := db.readRow(ctx, q, i).Scan(&got); err != nil || got != i+1 {
			t.Fatalf("read %d = %d, %v; want %d", i, got, err, i+1)
		}
	}
	if n := kept(); n != 1 {
		t.Fatalf("%d statements kept after one text read three times; want 1", n)
	}
	for i := range maxReadStmts + 10 {
		rows, err := db.readRows(ctx, fmt.Sprintf(`SELECT %d, $1`, i), "x")
		if err != nil {
			t.Fatal(err)
		}
		var n int
		var s string
		if !rows.Next() {
			t.Fatalf("text %d: no row", i)
		}
		if err := rows.Scan(&n, &s); err != nil || n != i || s != "x" {
			t.Fatalf("text %d: %d, %q, %v", i, n, s, err)
		}
		rows.Close()
	}
	if n := kept(); n != maxReadStmts {
		t.Fatalf("%d statements kept after %d texts; want at most %d", n, maxReadStmts+11, maxReadStmts)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if n := kept(); n != 0 || db.readStmt(ctx, q) != nil {
		t.Fatalf("after Close: %d statements kept, or a statement prepared", n)
	}
}
