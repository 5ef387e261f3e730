//go:build unix

package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// LockServer claims the SQLite database for this server process: the
// meter keeps admission counters in memory, which is right only while one
// server uses the file. A second server on the same file fails to start
// with a clear message; commands that only read or migrate do not take the
// lock. The kernel drops the lock when the process ends, however it ends.
// On PostgreSQL it does nothing. The returned function releases the lock.
func (db *DB) LockServer() (func(), error) {
	if db.dialect != SQLite {
		return func() {}, nil
	}
	name := db.path + ".server-lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another alwrity-billing server is using %s (lock %s): on SQLite one server process owns the database; use PostgreSQL to run several", db.path, name)
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
