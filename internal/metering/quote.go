package metering

import (
	"context"
	"strings"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// quoteFreshness is how recently the price catalog snapshot must have been
// checked against the database for Quote to rate with it as it is. Under
// load every record checks it, so a quote costs no query; an idle meter's
// first quote checks it again.
const quoteFreshness = 100 * time.Millisecond

// Quote returns the cost an event will be recorded with, without recording
// anything: it validates the event and rates it as Record and Settle do,
// with the meter's price catalog snapshot and the price version in effect
// at the event's timestamp. An unpriced model quotes zero, as it is
// recorded. A caller that answers before the event is written (the LLM
// gateway) so tells its client the cost the ledger will hold. The two
// differ only when a price in effect at the event's time changes between
// the quote and the write (a price version made effective in the past, or
// one deactivated), within quoteFreshness of a catalog check. Errors:
// invalid.
func (m *Meter) Quote(ctx context.Context, e billing.UsageEvent) (money.Amount, error) {
	if fields := e.Validate("event", m.now()); len(fields) > 0 {
		return 0, unratable(fields)
	}
	pr, err := m.quotePrices(ctx)
	if err != nil {
		return 0, err
	}
	charge, _, err := pr.rate(e)
	if err != nil {
		return 0, unratable(prefixed(err, "event"))
	}
	return charge.Total, nil
}

// quotePrices returns the catalog snapshot Record and Settle rate with,
// checking its version first unless that was done within quoteFreshness.
func (m *Meter) quotePrices(ctx context.Context) (*pricer, error) {
	if p := m.pricing.Load(); p != nil && time.Since(time.Unix(0, m.pricedAt.Load())) < quoteFreshness {
		return p, nil
	}
	return m.prices(ctx)
}

// unratable is the error of an event that cannot be quoted.
func unratable(fields []billing.FieldError) error {
	msgs := make([]string, len(fields))
	for i, f := range fields {
		msgs[i] = f.Location + ": " + f.Message
	}
	return &billing.Error{Code: billing.CodeInvalid, Message: "the event cannot be rated: " + strings.Join(msgs, "; "), Fields: fields}
}
