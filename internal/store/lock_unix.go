//go:build unix

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// LockServer claims the SQLite database for this server process: the
// meter keeps admission counters in memory, which is right only while one
// server uses the file. A second server on the same file fails to start
// with a clear message; commands that only read or migrate do not take the
// lock. The kernel drops the lock when the process ends, however it ends.
// The lock file is named from the file's resolved path, so a server that
// reaches the same file through a symbolic link or another relative path
// takes the same lock. On PostgreSQL it does nothing. The returned function
// releases the lock.
func (db *DB) LockServer() (func(), error) {
	if db.dialect != SQLite {
		return func() {}, nil
	}
	path, err := resolvePath(db.path)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", db.path, err)
	}
	name := path + ".server-lock"
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

// resolvePath returns the absolute path of file with every symbolic link
// resolved. A file that does not exist yet is named inside its resolved
// directory.
func resolvePath(file string) (string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", err
	}
	if resolved, err := filepath.EvalSymlinks(abs); err == nil {
		return resolved, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, filepath.Base(abs)), nil
}
