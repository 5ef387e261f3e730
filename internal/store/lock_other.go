//go:build !unix

package store

// LockServer does nothing where file locks are not available: run one
// server per SQLite file.
func (db *DB) LockServer() (func(), error) { return func() {}, nil }
