package metering

import (
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// TestPricerResolvesAsResolvePrice: the pricer's in-place resolution picks
// the same price as billing.ResolvePrice (the rules' reference) given the
// versions in effect at the same instant, over random catalogs whose model
// names prefix one another, with aliases, defaults, price windows that
// open and close, and models named by clients that match nothing.
func TestPricerResolvesAsResolvePrice(t *testing.T) {
	day := func(n int) time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, n) }
	// Short names over a small alphabet, so that prefixes are common.
	name := rapid.OneOf(rapid.StringMatching(`[ab-]{0,3}`), rapid.Just(billing.DefaultModel))
	providers := []string{"p1", "p2"}
	rapid.Check(t, func(t *rapid.T) {
		var c store.Catalog
		c.Aliases = map[string]map[string]string{}
		n := rapid.IntRange(0, 12).Draw(t, "prices")
		targets := []*rapid.Generator[string]{name}
		for i := range n {
			from := rapid.IntRange(0, 20).Draw(t, "from")
			pr := billing.Price{ID: int64(i + 1), Provider: rapid.SampledFrom(providers).Draw(t, "provider"),
				ModelName: name.Draw(t, "model"), EffectiveFrom: day(from)}
			if rapid.Bool().Draw(t, "ends") {
				to := day(from + rapid.IntRange(1, 10).Draw(t, "days"))
				pr.EffectiveTo = &to
			}
			c.Prices = append(c.Prices, pr)
			targets = append(targets, rapid.Just(pr.ModelName))
		}
		// Models as clients name them: priced names, aliases, and others.
		called := []*rapid.Generator[string]{name, rapid.StringMatching(`[ab-]{0,6}`)}
		for range rapid.IntRange(0, 4).Draw(t, "aliases") {
			prov := rapid.SampledFrom(providers).Draw(t, "alias provider")
			if c.Aliases[prov] == nil {
				c.Aliases[prov] = map[string]string{}
			}
			alias := rapid.StringMatching(`[ab-]{0,5}`).Draw(t, "alias")
			c.Aliases[prov][alias] = rapid.OneOf(targets...).Draw(t, "target")
			called = append(called, rapid.Just(alias))
		}
		p := newPricer(c)
		for range 8 {
			provider := rapid.SampledFrom(providers).Draw(t, "call provider")
			model := rapid.OneOf(called...).Draw(t, "call model")
			at := day(rapid.IntRange(-1, 32).Draw(t, "call day")).Add(time.Hour)
			var inEffect []billing.Price
			for _, k := range p.models[provider] {
				if v, ok := p.versionAt(k, at); ok {
					inEffect = append(inEffect, v)
				}
			}
			want, wantOK := billing.ResolvePrice(inEffect, c.Aliases[provider], provider, model)
			got, gotOK := p.resolve(provider, model, at)
			if gotOK != wantOK || got.ID != want.ID {
				t.Fatalf("resolve(%q, %q, %v) = price %d (%v), ResolvePrice says %d (%v)",
					provider, model, at, got.ID, gotOK, want.ID, wantOK)
			}
		}
	})
}
