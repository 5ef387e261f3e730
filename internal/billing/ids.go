package billing

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// NewID returns prefix and 32 hex digits: the current time in nanoseconds,
// then 8 random bytes. Unique for practical purposes, and sorted by
// creation time, so new rows land on the last page of a unique index on
// the id (the ledger's event_id, the reservations' key) instead of a
// random page each: a commit of many calls writes a few index pages, not
// one per call.
func NewID(prefix string) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixNano()))
	_, _ = rand.Read(b[8:])
	return prefix + hex.EncodeToString(b[:])
}
