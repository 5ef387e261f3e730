package billing

import (
	"time"

	"github.com/alwrity/alwrity-billing/internal/money"
)

// PriceTier holds per-token prices. Optional buckets are nil when the model
// has no separate price for them: cached input and cache writes then cost the
// input price and reasoning costs the output price.
type PriceTier struct {
	Input        money.Amount
	Output       money.Amount
	CachedInput  *money.Amount
	CacheWrite5m *money.Amount
	CacheWrite1h *money.Amount
	Reasoning    *money.Amount
}

// Effective returns the tier with every optional bucket filled by its
// fallback, which is what a call is actually charged.
func (t PriceTier) Effective() PriceTier {
	or := func(p *money.Amount, d money.Amount) *money.Amount {
		if p != nil {
			return p
		}
		return &d
	}
	return PriceTier{
		Input:        t.Input,
		Output:       t.Output,
		CachedInput:  or(t.CachedInput, t.Input),
		CacheWrite5m: or(t.CacheWrite5m, t.Input),
		CacheWrite1h: or(t.CacheWrite1h, t.Input),
		Reasoning:    or(t.Reasoning, t.Output),
	}
}

// Price is one version of a model's price, in effect from EffectiveFrom until
// EffectiveTo (or forever). Versions are never rewritten, so past events keep
// the price they were rated with.
type Price struct {
	ID          int64
	Provider    string
	ModelName   string
	Description string
	Tier        PriceTier
	PerRequest  money.Amount
	PerSearch   money.Amount
	PerImage    money.Amount
	PerPage     money.Amount
	// LongContextThreshold, when set, prices the whole request with
	// LongContext once its prompt exceeds this many tokens.
	LongContextThreshold *int64
	LongContext          *PriceTier
	IsActive             bool
	EffectiveFrom        time.Time
	EffectiveTo          *time.Time
}
