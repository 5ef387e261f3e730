package webhook

import (
	"testing"
	"time"
)

func TestBackoffNext(t *testing.T) {
	created := time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
	b := DefaultBackoff
	cases := []struct {
		n      int
		after  time.Duration // since created, when attempt n failed
		jitter float64
		want   time.Duration // until the next attempt; -1: give up
	}{
		{1, 0, 0.5, 10 * time.Second},
		{2, 10 * time.Second, 0.5, 20 * time.Second},
		{3, 30 * time.Second, 0.5, 40 * time.Second},
		{1, 0, 0, 8 * time.Second},                            // -20 %
		{1, 0, 0.999999, 12*time.Second - 4*time.Microsecond}, // just under +20 %
		{9, time.Hour, 0.5, 2560 * time.Second},
		{10, 2 * time.Hour, 0.5, time.Hour}, // 5120 s capped at an hour
		{40, 3 * time.Hour, 0.5, time.Hour},
		{1000, 3 * time.Hour, 0.5, time.Hour},
		{30, 23*time.Hour + 30*time.Minute, 0.5, 30 * time.Minute}, // the last attempt at the end of the day
		{31, 24 * time.Hour, 0.5, -1},
		{31, 25 * time.Hour, 0.5, -1},
	}
	for _, c := range cases {
		now := created.Add(c.after)
		next, ok := b.Next(c.n, created, now, c.jitter)
		if c.want < 0 {
			if ok {
				t.Errorf("Next(%d, +%s) = %s, want give up", c.n, c.after, next)
			}
			continue
		}
		if got := next.Sub(now); !ok || got.Round(time.Microsecond) != c.want.Round(time.Microsecond) {
			t.Errorf("Next(%d, +%s, %v) = +%s (%v), want +%s", c.n, c.after, c.jitter, got, ok, c.want)
		}
	}
}

// TestBackoffSpansADay counts the attempts a never-answering endpoint gets
// and checks that they stop a day after the event.
func TestBackoffSpansADay(t *testing.T) {
	created := time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
	now, n := created, 1
	for {
		next, ok := DefaultBackoff.Next(n, created, now, 0.5)
		if !ok {
			break
		}
		if !next.After(now) {
			t.Fatalf("attempt %d at %s is not after %s", n+1, next, now)
		}
		now, n = next, n+1
	}
	if !now.Equal(created.Add(24 * time.Hour)) {
		t.Fatalf("last attempt at %s, want a day after the event", now.Sub(created))
	}
	if n < 25 || n > 40 {
		t.Fatalf("%d attempts in a day", n)
	}
}
