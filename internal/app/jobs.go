package app

import (
	"context"
	"time"

	"github.com/alwrity/alwrity-billing/internal/store"
)

// CloseInterval is how often the server closes the usage periods that have
// ended (invoices, renewals, expiries). Every replica may run it: a period
// is closed once whoever gets there first.
var CloseInterval = time.Minute

// runPeriodClose closes due periods now and then every interval until ctx
// ends. The same loop purges finished reservations every PurgeInterval.
func (a *App) runPeriodClose(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var purge purger
	for {
		now := a.Now()
		n, err := a.DB.CloseDue(ctx, now, 10_000)
		switch {
		case err != nil && ctx.Err() == nil:
			a.Logger.Warn("closing billing periods failed", "error", err)
		case n > 0:
			a.Logger.Info("billing periods closed", "invoices", n)
		}
		if review := a.DB.InvoiceReview; review > 0 {
			n, err := a.DB.IssueDrafts(ctx, now.Add(-review), now)
			switch {
			case err != nil && ctx.Err() == nil:
				a.Logger.Warn("issuing draft invoices failed", "error", err)
			case n > 0:
				a.Logger.Info("draft invoices issued", "invoices", n)
			}
		}
		a.purgeReservations(ctx, &purge, now)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PurgeInterval is how often the server deletes the finished reservations
// older than Config.ReservationRetention, from the loop of
// runPeriodClose. Every replica may run it: a row is deleted once, by
// whoever gets there first.
var PurgeInterval = time.Hour

// purgeLimit is how many reservations one PurgeReservations call deletes
// at most (in transactions of a thousand rows); a purge repeats calls
// until one deletes fewer, up to purgeRunLimit rows. A purge that stops at
// purgeRunLimit (a backlog, say after the first start of a version that
// purges) goes on at the loop's next turn instead of an interval later,
// so the period close that shares the loop never waits long.
const (
	purgeLimit    = 10_000
	purgeRunLimit = 100_000
)

// purger remembers when the purge last ran to its end, by the app's clock.
type purger struct {
	last time.Time
}

// due reports whether the purge should run at now: first at start, then
// every PurgeInterval (and again at once if the clock went back).
func (p *purger) due(now time.Time) bool {
	return p.last.IsZero() || !now.Before(p.last.Add(PurgeInterval)) || now.Before(p.last)
}

// purgeReservations deletes the finished reservations past the retention
// when due, in batches, and logs how many went when some did.
func (a *App) purgeReservations(ctx context.Context, p *purger, now time.Time) {
	if !p.due(now) {
		return
	}
	retention := a.Config.ReservationRetention
	if retention == 0 {
		retention = store.ReservationRetention
	}
	total, done := 0, false
	for total < purgeRunLimit && ctx.Err() == nil {
		n, err := a.DB.PurgeReservations(ctx, now, retention, purgeLimit)
		total += n
		if err != nil {
			if ctx.Err() == nil {
				a.Logger.Warn("purging finished reservations failed", "error", err)
			}
			break
		}
		if n < purgeLimit {
			done = true
			break
		}
	}
	if done {
		p.last = now
	}
	if total > 0 {
		a.Logger.Info("finished reservations purged", "reservations", total, "retention", retention.String())
	}
}
