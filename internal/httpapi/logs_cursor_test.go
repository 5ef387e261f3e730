package httpapi

import (
	"errors"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

func TestLogCursorRoundTrip(t *testing.T) {
	for _, p := range []billing.LogPosition{
		{Timestamp: time.Date(2026, 11, 15, 12, 0, 0, 123456000, time.UTC), ID: 1},
		{Timestamp: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), ID: 1<<63 - 1},
		{Timestamp: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), ID: 42},
		{Timestamp: time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), ID: 7},
	} {
		c := encodeLogCursor(p)
		got, err := decodeLogCursor(c)
		if err != nil || !got.Timestamp.Equal(p.Timestamp) || got.ID != p.ID {
			t.Errorf("decode(encode(%v)) = %v, %v", p, got, err)
		}
	}
}

// FuzzDecodeLogCursor feeds the cursor decoder arbitrary text. It must never
// panic; it refuses with an invalid-input error on query.cursor; and what it
// accepts is exactly what the encoder writes for the position it decoded,
// within the range of stored times.
func FuzzDecodeLogCursor(f *testing.F) {
	for _, s := range []string{"", "x", "djE6MTcwMDAwMDAwMDAwMDAwMDo1", "djE6MTcwMDAwMDAwMDAwMDAwMDo1=",
		encodeLogCursor(billing.LogPosition{Timestamp: time.Unix(1_700_000_000, 0), ID: 9}), "djE6LTE6MQ", "dj"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, c string) {
		p, err := decodeLogCursor(c)
		if err != nil {
			var be *billing.Error
			if !errors.As(err, &be) || be.Code != billing.CodeInvalid || len(be.Fields) != 1 || be.Fields[0].Location != "query.cursor" {
				t.Fatalf("decode(%q) error %#v: want an invalid query.cursor", c, err)
			}
			return
		}
		if p.ID < 1 || p.Timestamp.Year() < 1 || p.Timestamp.Year() > 9999 || p.Timestamp.Location() != time.UTC {
			t.Fatalf("decode(%q) = %+v: out of range", c, p)
		}
		if again := encodeLogCursor(p); again != c {
			t.Fatalf("decode(%q) = %+v, which encodes as %q", c, p, again)
		}
	})
}
