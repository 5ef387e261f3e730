package app

import (
	"context"
	"time"
)

// CloseInterval is how often the server closes the usage periods that have
// ended (invoices, renewals, expiries). Every replica may run it: a period
// is closed once whoever gets there first.
var CloseInterval = time.Minute

// runPeriodClose closes due periods now and then every interval until ctx
// ends.
func (a *App) runPeriodClose(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
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
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
