//go:build unix

package store_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestLockServer: one server per SQLite file; the lock is free again once
// released; PostgreSQL takes none.
func TestLockServer(t *testing.T) {
	ctx := context.Background()
	url := storetest.SQLiteURL(t)
	open := func() *store.DB {
		db, err := store.Open(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	first, second := open(), open()
	unlock, err := first.LockServer()
	if err != nil {
		t.Fatalf("first lock: %v", err)
	}
	if _, err := second.LockServer(); err == nil || !strings.Contains(err.Error(), "another alwrity-billing server") {
		t.Fatalf("second lock on the same file: %v; want a refusal naming the other server", err)
	}
	unlock()
	unlock2, err := second.LockServer()
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	unlock2()

	if storetest.PostgresURL(t) != "" {
		pg := storetest.OpenURL(t, storetest.PostgresURL(t))
		u1, err1 := pg.LockServer()
		u2, err2 := pg.LockServer()
		if err1 != nil || err2 != nil {
			t.Fatalf("PostgreSQL locks: %v, %v; want none taken", err1, err2)
		}
		u1()
		u2()
	}
}

// TestLockServerThroughSymlink: a second server that reaches the same
// SQLite file through a symbolic link to it, or to its directory, is
// refused too.
func TestLockServerThroughSymlink(t *testing.T) {
	ctx := context.Background()
	url := storetest.SQLiteURL(t)
	path := strings.TrimPrefix(url, "sqlite:///")
	first, err := store.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Close() })
	unlock, err := first.LockServer()
	if err != nil {
		t.Fatalf("first lock: %v", err)
	}
	t.Cleanup(unlock)

	links := t.TempDir()
	fileLink, dirLink := filepath.Join(links, "link.db"), filepath.Join(links, "dir")
	if err := os.Symlink(path, fileLink); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(path), dirLink); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fileLink, filepath.Join(dirLink, filepath.Base(path))} {
		second, err := store.Open(ctx, "sqlite:///"+p, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { second.Close() })
		if unlock2, err := second.LockServer(); err == nil || !strings.Contains(err.Error(), "another alwrity-billing server is using") {
			if err == nil {
				unlock2()
			}
			t.Errorf("second lock through %s: %v; want a refusal naming the other server", p, err)
		}
	}
}
