package pricefile

import (
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// Price returns the entry as an active price version. A nil EffectiveFrom
// becomes the zero time, which importers replace with the import's time.
func (e Entry) Price() billing.Price {
	p := billing.Price{
		Provider: e.Provider, ModelName: e.Model, Description: e.Description, IsActive: true,
		Tier: billing.PriceTier{Input: e.Input, Output: e.Output, CachedInput: clone(e.CachedInput),
			CacheWrite5m: clone(e.CacheWrite5m), CacheWrite1h: clone(e.CacheWrite1h), Reasoning: clone(e.Reasoning)},
		PerRequest: e.PerRequest, PerSearch: e.PerSearch, PerImage: e.PerImage, PerPage: e.PerPage,
	}
	if e.EffectiveFrom != nil {
		p.EffectiveFrom = *e.EffectiveFrom
	}
	if e.EffectiveTo != nil {
		p.EffectiveTo = billing.Ptr(*e.EffectiveTo)
	}
	if lc := e.LongContext; lc != nil {
		p.LongContextThreshold = billing.Ptr(lc.ThresholdTokens)
		p.LongContext = &billing.PriceTier{Input: lc.Input, Output: lc.Output, CachedInput: clone(lc.CachedInput),
			CacheWrite5m: clone(lc.CacheWrite5m), CacheWrite1h: clone(lc.CacheWrite1h), Reasoning: clone(lc.Reasoning)}
	}
	return p
}

// FromPrice returns a price version as a file entry. A zero EffectiveFrom
// is left out.
func FromPrice(p billing.Price) Entry {
	e := Entry{
		Provider: p.Provider, Model: p.ModelName, Description: p.Description,
		Input: p.Tier.Input, Output: p.Tier.Output, CachedInput: clone(p.Tier.CachedInput),
		CacheWrite5m: clone(p.Tier.CacheWrite5m), CacheWrite1h: clone(p.Tier.CacheWrite1h), Reasoning: clone(p.Tier.Reasoning),
		PerRequest: p.PerRequest, PerSearch: p.PerSearch, PerImage: p.PerImage, PerPage: p.PerPage,
	}
	if !p.EffectiveFrom.IsZero() {
		e.EffectiveFrom = billing.Ptr(p.EffectiveFrom.UTC())
	}
	if p.EffectiveTo != nil {
		e.EffectiveTo = billing.Ptr(p.EffectiveTo.UTC())
	}
	if p.LongContext != nil && p.LongContextThreshold != nil {
		lc := p.LongContext
		e.LongContext = &LongContext{ThresholdTokens: *p.LongContextThreshold, Input: lc.Input, Output: lc.Output,
			CachedInput: clone(lc.CachedInput), CacheWrite5m: clone(lc.CacheWrite5m), CacheWrite1h: clone(lc.CacheWrite1h),
			Reasoning: clone(lc.Reasoning)}
	}
	return e
}

// PriceList returns the file's entries as price versions, in file order.
func (f File) PriceList() []billing.Price {
	out := make([]billing.Price, len(f.Prices))
	for i, e := range f.Prices {
		out[i] = e.Price()
	}
	return out
}

// FromPrices returns a file holding prices and aliases.
// ExportPrices picks the versions a pricing file holds, from every version
// of the catalog (all) and those in effect at now (current): with history
// every active version; otherwise those in effect and the active versions
// scheduled to take effect after now, so that an export imported elsewhere
// keeps a planned price change. Inactive versions never price a call, and
// a file cannot say a version is inactive, so they stay out.
func ExportPrices(all, current []billing.Price, history bool, now time.Time) []billing.Price {
	var out []billing.Price
	if !history {
		out = append(out, current...)
	}
	for _, p := range all {
		if p.IsActive && (history || p.EffectiveFrom.After(now)) {
			out = append(out, p)
		}
	}
	return out
}

func FromPrices(prices []billing.Price, aliases []Alias) File {
	f := File{Prices: make([]Entry, len(prices)), Aliases: aliases}
	for i, p := range prices {
		f.Prices[i] = FromPrice(p)
	}
	return f
}

func clone(a *money.Amount) *money.Amount {
	if a == nil {
		return nil
	}
	v := *a
	return &v
}

// Equivalent reports whether two versions of a model charge every call the
// same and read the same: equal description, equal end, and equal
// effective prices in every bucket. A bucket left to its fallback equals
// the same amount written out, because a call cannot tell them apart.
// Provider, model, id and start are not compared.
func Equivalent(a, b billing.Price) bool {
	if a.Description != b.Description || !sameTime(a.EffectiveTo, b.EffectiveTo) ||
		a.PerRequest != b.PerRequest || a.PerSearch != b.PerSearch || a.PerImage != b.PerImage || a.PerPage != b.PerPage ||
		!sameTier(a.Tier, b.Tier) {
		return false
	}
	aLC := a.LongContext != nil && a.LongContextThreshold != nil
	bLC := b.LongContext != nil && b.LongContextThreshold != nil
	if aLC != bLC {
		return false
	}
	return !aLC || (*a.LongContextThreshold == *b.LongContextThreshold && sameTier(*a.LongContext, *b.LongContext))
}

func sameTier(a, b billing.PriceTier) bool {
	x, y := a.Effective(), b.Effective()
	return x.Input == y.Input && x.Output == y.Output && *x.CachedInput == *y.CachedInput &&
		*x.CacheWrite5m == *y.CacheWrite5m && *x.CacheWrite1h == *y.CacheWrite1h && *x.Reasoning == *y.Reasoning
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// FieldChange is one field that differs between two versions of a price,
// named as in the file. Old and New are a money.Amount, a string, an int64,
// a time.Time, or nil for a field that is absent.
type FieldChange struct {
	Field string `json:"field"`
	Old   any    `json:"old"`
	New   any    `json:"new"`
}

// Diff lists the fields in which version b differs from version a, as they
// are stored (a bucket absent in one and written out in the other is listed
// even when it charges the same).
func Diff(a, b billing.Price) []FieldChange {
	var out []FieldChange
	x, y := FromPrice(a), FromPrice(b)
	add := func(field string, old, new any) {
		out = append(out, FieldChange{Field: field, Old: old, New: new})
	}
	if x.Description != y.Description {
		add("description", x.Description, y.Description)
	}
	amt := func(field string, old, new money.Amount) {
		if old != new {
			add(field, old, new)
		}
	}
	opt := func(field string, old, new *money.Amount) {
		switch {
		case old == nil && new == nil:
		case old == nil:
			add(field, nil, *new)
		case new == nil:
			add(field, *old, nil)
		case *old != *new:
			add(field, *old, *new)
		}
	}
	amt("input", x.Input, y.Input)
	amt("output", x.Output, y.Output)
	opt("cached_input", x.CachedInput, y.CachedInput)
	opt("cache_write_5m", x.CacheWrite5m, y.CacheWrite5m)
	opt("cache_write_1h", x.CacheWrite1h, y.CacheWrite1h)
	opt("reasoning", x.Reasoning, y.Reasoning)
	amt("per_request", x.PerRequest, y.PerRequest)
	amt("per_search", x.PerSearch, y.PerSearch)
	amt("per_image", x.PerImage, y.PerImage)
	amt("per_page", x.PerPage, y.PerPage)
	switch lx, ly := x.LongContext, y.LongContext; {
	case lx == nil && ly == nil:
	case lx == nil:
		add("long_context", nil, *ly)
	case ly == nil:
		add("long_context", *lx, nil)
	default:
		if lx.ThresholdTokens != ly.ThresholdTokens {
			add("long_context.threshold_tokens", lx.ThresholdTokens, ly.ThresholdTokens)
		}
		amt("long_context.input", lx.Input, ly.Input)
		amt("long_context.output", lx.Output, ly.Output)
		opt("long_context.cached_input", lx.CachedInput, ly.CachedInput)
		opt("long_context.cache_write_5m", lx.CacheWrite5m, ly.CacheWrite5m)
		opt("long_context.cache_write_1h", lx.CacheWrite1h, ly.CacheWrite1h)
		opt("long_context.reasoning", lx.Reasoning, ly.Reasoning)
	}
	if !sameTime(x.EffectiveTo, y.EffectiveTo) {
		var old, new any
		if x.EffectiveTo != nil {
			old = *x.EffectiveTo
		}
		if y.EffectiveTo != nil {
			new = *y.EffectiveTo
		}
		add("effective_to", old, new)
	}
	return out
}

// ImportResult says what an import did or, in a dry run, would do.
type ImportResult struct {
	// Added counts the new price versions.
	Added int
	// Unchanged counts the entries equivalent to the version already in
	// effect at their time, which are not added again.
	Unchanged int
	// Changes lists each added version with the one it follows.
	Changes []Change
	// AliasesSet counts the aliases added or pointed at a new model;
	// AliasesUnchanged those that already pointed there.
	AliasesSet, AliasesUnchanged int
}

// Change is one added price version and the version that was in effect at
// its time before (nil for a model that had none).
type Change struct {
	Previous *billing.Price
	Price    billing.Price
}
