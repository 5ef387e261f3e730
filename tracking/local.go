package tracking

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// LocalMeter meters in-process against an alwrity-billing store.
type LocalMeter struct{ m *metering.Meter }

// NewLocalMeter returns a Meter over m.
func NewLocalMeter(m *metering.Meter) *LocalMeter { return &LocalMeter{m: m} }

// Reserve holds one call.
func (l *LocalMeter) Reserve(ctx context.Context, c Call) (string, error) {
	r, err := l.m.Reserve(ctx, billing.ReserveRequest{UserID: c.UserID, Provider: c.Provider, Model: c.Model, Tokens: c.Tokens})
	if err != nil {
		var be *billing.Error
		if errors.As(err, &be) && be.Limit != nil {
			le := limitError(be)
			if le.Provider == "" {
				// As the server's /reserve does, so both meters refuse alike.
				le.Provider = c.Provider
			}
			return "", le
		}
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return r.ID, nil
}

// Settle records the call's usage synchronously.
func (l *LocalMeter) Settle(ctx context.Context, id string, o Outcome) error {
	_, err := l.m.Settle(ctx, id, toEvent(o, l.m.Now))
	return err
}

func limitError(be *billing.Error) *LimitError {
	li := be.Limit
	text := func(v int64) string {
		if li.Money {
			return money.Amount(v).String()
		}
		return strconv.FormatInt(v, 10)
	}
	return &LimitError{Provider: li.Provider, Limit: li.Key, Message: be.Message, Used: text(li.Used + li.Reserved), Max: text(li.Limit)}
}

func toEvent(o Outcome, now func() time.Time) billing.UsageEvent {
	o = cleanOutcome(o)
	ts := o.Timestamp
	if ts.IsZero() {
		ts = now()
	}
	u := o.Usage
	return billing.UsageEvent{
		EventID: o.EventID, UserID: o.UserID, Provider: o.Provider, Model: u.Model, Endpoint: o.Endpoint, Method: o.Method, StatusCode: o.StatusCode,
		ResponseTime: o.ResponseTime.Seconds(), Timestamp: ts,
		Quantities: billing.Quantities{Input: u.TokensInput, Output: u.TokensOutput, CachedInput: u.TokensCachedInput,
			CacheWrite5m: u.TokensCacheWrite5m, CacheWrite1h: u.TokensCacheWrite1h, Reasoning: u.TokensReasoning,
			Requests: u.Requests, Searches: u.Searches, Images: u.Images, Pages: u.Pages},
	}
}
