package webhook

import "time"

// Backoff says when a failed delivery is tried again: after Base, doubling
// with each attempt up to Max, with ±20 % jitter so that deliveries that
// failed together do not retry together, for Window after the event was
// created; then it fails.
type Backoff struct {
	Base   time.Duration
	Max    time.Duration
	Window time.Duration
}

// DefaultBackoff retries after 10 s, 20 s, 40 s … then hourly, for a day.
var DefaultBackoff = Backoff{Base: 10 * time.Second, Max: time.Hour, Window: 24 * time.Hour}

// Next returns when to make the attempt after attempt number n (1 for the
// first) failed at now, for an event created at created; false means the
// window has passed and the delivery fails. jitter is uniform in [0, 1).
// The last attempt is made at the end of the window, not skipped.
func (b Backoff) Next(n int, created, now time.Time, jitter float64) (time.Time, bool) {
	deadline := created.Add(b.Window)
	if !now.Before(deadline) {
		return time.Time{}, false
	}
	d := b.Base
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max || d <= 0 {
		d = b.Max
	}
	d = d - d/5 + time.Duration(jitter*float64(2*d/5))
	next := now.Add(d)
	if next.After(deadline) {
		next = deadline
	}
	return next, true
}
