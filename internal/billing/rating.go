package billing

import (
	"fmt"
	"strings"

	"github.com/alwrity/alwrity-billing/internal/money"
)

// Quantities are what one call used, in the buckets providers bill
// separately. Input counts every input token (uncached, cache reads and
// cache writes together) and Output every output token (reasoning
// included), as OpenAI reports them; the bucket counts are parts of those
// totals, never additions to them.
type Quantities struct {
	Input        int64
	Output       int64
	CachedInput  int64
	CacheWrite5m int64
	CacheWrite1h int64
	Reasoning    int64
	Requests     int64
	Searches     int64
	Images       int64
	Pages        int64
}

// Validate checks that counts are non-negative and that the buckets fit in
// their totals. Errors: invalid, naming each bad field.
func (q Quantities) Validate() error {
	var fields []FieldError
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"tokens_input", q.Input}, {"tokens_output", q.Output}, {"tokens_cached_input", q.CachedInput},
		{"tokens_cache_write_5m", q.CacheWrite5m}, {"tokens_cache_write_1h", q.CacheWrite1h},
		{"tokens_reasoning", q.Reasoning}, {"request_count", q.Requests}, {"search_count", q.Searches},
		{"image_count", q.Images}, {"page_count", q.Pages},
	} {
		if f.v < 0 {
			fields = append(fields, FieldError{Location: f.name, Message: "must not be negative", Value: f.v})
		}
	}
	if len(fields) == 0 {
		if parts := q.CachedInput + q.CacheWrite5m + q.CacheWrite1h; parts > q.Input {
			fields = append(fields, FieldError{Location: "tokens_input",
				Message: fmt.Sprintf("cached input and cache writes (%d) exceed the input tokens (%d) they are part of", parts, q.Input), Value: q.Input})
		}
		if q.Reasoning > q.Output {
			fields = append(fields, FieldError{Location: "tokens_reasoning",
				Message: fmt.Sprintf("reasoning tokens (%d) exceed the output tokens (%d) they are part of", q.Reasoning, q.Output), Value: q.Reasoning})
		}
	}
	if len(fields) > 0 {
		msgs := make([]string, len(fields))
		for i, f := range fields {
			msgs[i] = f.Location + ": " + f.Message
		}
		return &Error{Code: CodeInvalid, Message: "invalid usage: " + strings.Join(msgs, "; "), Fields: fields}
	}
	return nil
}

// Charge is the exact cost of one call.
type Charge struct {
	Input       money.Amount // uncached input, cache reads and cache writes
	Output      money.Amount // output and reasoning
	Fees        money.Amount // per-request, per-search, per-image and per-page fees
	Total       money.Amount
	LongContext bool // the long-context prices applied
}

// Rate prices q with p. The long-context tier, when the price has one and
// the prompt exceeds its threshold, prices the whole request. Errors:
// invalid quantities, or an amount beyond the range of money.Amount.
func Rate(p Price, q Quantities) (Charge, error) {
	if err := q.Validate(); err != nil {
		return Charge{}, err
	}
	var c Charge
	tier := p.Tier
	if p.LongContext != nil && p.LongContextThreshold != nil && q.Input > *p.LongContextThreshold {
		tier, c.LongContext = *p.LongContext, true
	}
	t := tier.Effective()
	var err error
	sum := func(terms ...money.Amount) money.Amount {
		if err != nil {
			return 0
		}
		var s money.Amount
		s, err = money.Sum(terms...)
		return s
	}
	mul := func(price money.Amount, n int64) money.Amount {
		if err != nil {
			return 0
		}
		var v money.Amount
		v, err = price.MulInt(n)
		return v
	}
	uncached := q.Input - q.CachedInput - q.CacheWrite5m - q.CacheWrite1h
	c.Input = sum(mul(t.Input, uncached), mul(*t.CachedInput, q.CachedInput),
		mul(*t.CacheWrite5m, q.CacheWrite5m), mul(*t.CacheWrite1h, q.CacheWrite1h))
	c.Output = sum(mul(t.Output, q.Output-q.Reasoning), mul(*t.Reasoning, q.Reasoning))
	c.Fees = sum(mul(p.PerRequest, q.Requests), mul(p.PerSearch, q.Searches), mul(p.PerImage, q.Images), mul(p.PerPage, q.Pages))
	c.Total = sum(c.Input, c.Output, c.Fees)
	if err != nil {
		return Charge{}, Errorf(CodeInvalid, "the cost of this usage is out of range: %v", err)
	}
	return c, nil
}

// DefaultModel is the model name of a provider's fallback price.
const DefaultModel = "default"

// ResolvePrice finds the price of model among a provider's prices: the exact
// name, then a configured alias, then the longest price name that is a
// prefix of the model ("gpt-4o-2024-08-06" → "gpt-4o"), then the provider's
// "default" row; a call naming no model takes the provider's only price, if
// it has just one. It reports false when the model is unpriced; such a call
// is recorded and flagged, never silently priced at zero.
func ResolvePrice(prices []Price, aliases map[string]string, provider, model string) (Price, bool) {
	var best *Price
	var def *Price
	exact := func(name string) *Price {
		for i := range prices {
			if prices[i].Provider == provider && prices[i].ModelName == name {
				return &prices[i]
			}
		}
		return nil
	}
	if p := exact(model); p != nil {
		return *p, true
	}
	if target, ok := aliases[model]; ok {
		if p := exact(target); p != nil {
			return *p, true
		}
	}
	for i := range prices {
		p := &prices[i]
		if p.Provider != provider {
			continue
		}
		if p.ModelName == DefaultModel {
			def = p
			continue
		}
		if strings.HasPrefix(model, p.ModelName) && (best == nil || len(p.ModelName) > len(best.ModelName)) {
			best = p
		}
	}
	switch {
	case best != nil:
		return *best, true
	case def != nil:
		return *def, true
	case model == "":
		// A call that names no model is priced only when the provider has
		// exactly one (a search or scrape tool's single price).
		var only *Price
		for i := range prices {
			if prices[i].Provider != provider {
				continue
			}
			if only != nil {
				return Price{}, false
			}
			only = &prices[i]
		}
		if only != nil {
			return *only, true
		}
	}
	return Price{}, false
}
