package store

import (
	"database/sql/driver"
	"fmt"
	"time"
)

// timeLayout is how times are written: fixed-width UTC text with
// microseconds. On SQLite (which has no time type) equal widths make text
// order time order; PostgreSQL parses the same text into TIMESTAMPTZ.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// ts returns t as a bind value.
func ts(t time.Time) string { return t.UTC().Format(timeLayout) }

// logTime returns t as the ledger's time columns ("timestamp",
// period_start and created_at of api_usage_logs) are compared and bound:
// Unix microseconds on SQLite (migration 00014), where every other table
// keeps ts's text, and ts's text on PostgreSQL, which parses it into its
// timestamptz. Every query on those columns binds its times through here.
func (db *DB) logTime(t time.Time) any {
	if db.dialect == SQLite {
		return t.UnixMicro()
	}
	return ts(t)
}

// logTimeSQL is an SQL expression that turns column, a time in ts's text,
// into the form of the ledger's times (logTime): on SQLite, whole seconds
// by unixepoch plus the six fraction digits as they are, exactly; on
// PostgreSQL the column itself.
func (d Dialect) logTimeSQL(column string) string {
	if d == SQLite {
		return "(unixepoch(substr(" + column + ", 1, 19)) * 1000000 + CAST(substr(" + column + ", 21, 6) AS INTEGER))"
	}
	return column
}

// tsp returns a nullable bind value.
func tsp(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ts(*t)
}

// scanTime reads a time from either dialect: PostgreSQL hands back a
// time.Time, SQLite our text, or Unix microseconds from the ledger's time
// columns (logTime).
type scanTime struct{ t *time.Time }

func (s scanTime) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		*s.t = v.UTC()
	case int64:
		*s.t = time.UnixMicro(v).UTC()
	case string:
		return s.parse(v)
	case []byte:
		return s.parse(string(v))
	default:
		return fmt.Errorf("cannot scan %T into a time", src)
	}
	return nil
}

func (s scanTime) parse(v string) error {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return fmt.Errorf("parse stored time %q: %w", v, err)
	}
	*s.t = t.UTC()
	return nil
}

// scanNullTime reads a nullable time.
type scanNullTime struct{ t **time.Time }

func (s scanNullTime) Scan(src any) error {
	if src == nil {
		*s.t = nil
		return nil
	}
	var t time.Time
	if err := (scanTime{&t}).Scan(src); err != nil {
		return err
	}
	*s.t = &t
	return nil
}

// nullInt64 binds an optional integer (a limit: nil is unlimited).
func nullInt64(p *int64) driver.Value {
	if p == nil {
		return nil
	}
	return *p
}
