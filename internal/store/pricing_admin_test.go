package store_test

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/pricefile"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// adminNow is the clock of the pricing admin tests.
var adminNow = date(2026, time.June, 10, 9, 0, 0, 0)

func usd(s string) money.Amount { return money.MustParse(s) }

// rateAt prices q for a call to provider/model at `at` the way the meter
// does: the versions in effect then, the catalog's aliases, then Rate.
func rateAt(t *testing.T, db *store.DB, provider, model string, at time.Time, q billing.Quantities) money.Amount {
	t.Helper()
	ctx := context.Background()
	prices, err := db.ListPrices(ctx, provider, at)
	if err != nil {
		t.Fatal(err)
	}
	c, err := db.LoadCatalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := billing.ResolvePrice(prices, c.Aliases[provider], provider, model)
	if !ok {
		t.Fatalf("%s/%s is unpriced at %s", provider, model, at)
	}
	ch, err := billing.Rate(p, q)
	if err != nil {
		t.Fatal(err)
	}
	return ch.Total
}

func catalogVersion(t *testing.T, db *store.DB) int64 {
	t.Helper()
	v, err := db.CatalogVersion(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func history(t *testing.T, db *store.DB, provider, model string) []billing.Price {
	t.Helper()
	h, err := db.PriceHistory(context.Background(), provider, model)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func readSample(t *testing.T) pricefile.File {
	t.Helper()
	f, err := os.Open("../pricefile/testdata/litellm_sample.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	file, _, err := pricefile.Parse(f, pricefile.FormatLiteLLM)
	if err != nil {
		t.Fatal(err)
	}
	return file
}

func TestPriceHistoryAndAddPrice(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		seeded := len(history(t, db, "", ""))
		if want := len(billing.DefaultPrices()); seeded != want {
			t.Fatalf("history of a seeded database has %d versions, want %d", seeded, want)
		}
		v0 := catalogVersion(t, db)

		// Without a time the version takes effect now, to the microsecond.
		now := adminNow.Add(789 * time.Nanosecond)
		got, err := db.AddPrice(ctx, billing.Price{Provider: "openai", ModelName: "gpt-4o", Description: "GPT-4o, cheaper",
			Tier: billing.PriceTier{Input: usd("0.000002"), Output: usd("0.000008"), CachedInput: billing.Ptr(usd("0.0000005"))}}, now)
		if err != nil {
			t.Fatal(err)
		}
		want := billing.Price{ID: got.ID, Provider: "openai", ModelName: "gpt-4o", Description: "GPT-4o, cheaper", IsActive: true,
			Tier:          billing.PriceTier{Input: usd("0.000002"), Output: usd("0.000008"), CachedInput: billing.Ptr(usd("0.0000005"))},
			EffectiveFrom: adminNow}
		if got.ID == 0 || !reflect.DeepEqual(got, want) {
			t.Fatalf("AddPrice stored\n%+v\nwant\n%+v", got, want)
		}
		later := adminNow.AddDate(0, 1, 0)
		lc, err := db.AddPrice(ctx, billing.Price{Provider: "openai", ModelName: "gpt-4o", EffectiveFrom: later,
			Tier:                 billing.PriceTier{Input: usd("0.000001"), Output: usd("0.000004")},
			LongContextThreshold: billing.Ptr[int64](100_000), LongContext: &billing.PriceTier{Input: usd("0.000002"), Output: usd("0.000008")}}, now)
		if err != nil {
			t.Fatal(err)
		}
		if v := catalogVersion(t, db); v <= v0 {
			t.Errorf("catalog version %d did not move from %d", v, v0)
		}

		h := history(t, db, "openai", "gpt-4o")
		if len(h) != 3 || h[0].ID != lc.ID || h[1].ID != got.ID || !h[2].EffectiveFrom.Equal(billing.DefaultPricesEffective) {
			t.Fatalf("history of gpt-4o, want newest first: %+v", h)
		}
		if !reflect.DeepEqual(h[0], lc) {
			t.Errorf("history %+v, AddPrice returned %+v", h[0], lc)
		}
		for _, p := range history(t, db, "openai", "") {
			if p.Provider != "openai" {
				t.Errorf("provider filter let %s through", p.Provider)
			}
		}
		for _, p := range history(t, db, "", "gpt-4o") {
			if p.ModelName != "gpt-4o" {
				t.Errorf("model filter let %s through", p.ModelName)
			}
		}
		if h := history(t, db, "openai", "no-such-model"); len(h) != 0 {
			t.Errorf("history of an unknown model: %v", h)
		}
		if n := len(history(t, db, "", "")); n != seeded+2 {
			t.Errorf("history has %d versions, want %d", n, seeded+2)
		}

		// Bad versions are refused and store nothing.
		v1 := catalogVersion(t, db)
		_, err = db.AddPrice(ctx, billing.Price{Provider: "openai", ModelName: "gpt-4o", EffectiveFrom: later,
			Tier: billing.PriceTier{Input: 1, Output: 1}}, now)
		wantCode(t, err, billing.CodeConflict)
		_, err = db.AddPrice(ctx, billing.Price{Provider: "azure", ModelName: "gpt-4o", Tier: billing.PriceTier{Input: 1, Output: 1}}, now)
		wantCode(t, err, billing.CodeInvalid)
		if !strings.Contains(err.Error(), `provider: azure/gpt-4o: unknown provider "azure"`) {
			t.Errorf("unknown provider: %v", err)
		}
		_, err = db.AddPrice(ctx, billing.Price{Provider: "openai", ModelName: "m", Tier: billing.PriceTier{Input: -1, Output: 1}}, now)
		wantCode(t, err, billing.CodeInvalid)
		_, err = db.AddPrice(ctx, billing.Price{Provider: "openai", Tier: billing.PriceTier{Input: 1, Output: 1}}, now)
		wantCode(t, err, billing.CodeInvalid)
		if n := len(history(t, db, "", "")); n != seeded+2 || catalogVersion(t, db) != v1 {
			t.Errorf("refused versions changed the catalog: %d versions, version %d (was %d)", n, catalogVersion(t, db), v1)
		}
	})
}

func TestImportLiteLLMSample(t *testing.T) {
	sample := readSample(t)
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		T := date(2026, time.June, 15, 0, 0, 0, 0)
		before := T.Add(-time.Microsecond)
		v0 := catalogVersion(t, db)
		seeded := len(history(t, db, "", ""))

		// A dry run reports what would happen and stores nothing.
		dry, err := db.ImportPrices(ctx, sample.PriceList(), T, true, adminNow)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(history(t, db, "", "")); n != seeded || catalogVersion(t, db) != v0 {
			t.Fatalf("a dry run stored something: %d versions (was %d), catalog version %d (was %d)", n, seeded, catalogVersion(t, db), v0)
		}

		res, err := db.ImportPrices(ctx, sample.PriceList(), T, false, adminNow)
		if err != nil {
			t.Fatal(err)
		}
		// gpt-4o is priced as the seed prices it: not added again.
		if res.Added != 5 || res.Unchanged != 1 || len(res.Changes) != 5 {
			t.Fatalf("import: added %d, unchanged %d, changes %d; want 5, 1, 5", res.Added, res.Unchanged, len(res.Changes))
		}
		if dry.Added != res.Added || dry.Unchanged != res.Unchanged || len(dry.Changes) != len(res.Changes) {
			t.Errorf("dry run %+v differs from the import %+v", dry, res)
		}
		changed := map[string]pricefile.Change{}
		for i, c := range res.Changes {
			changed[c.Price.Provider+"/"+c.Price.ModelName] = c
			if c.Price.ID == 0 || dry.Changes[i].Price.ID != 0 || !c.Price.EffectiveFrom.Equal(T) {
				t.Errorf("change %d: id %d (dry run %d), effective %s", i, c.Price.ID, dry.Changes[i].Price.ID, c.Price.EffectiveFrom)
			}
		}
		if c := changed["gemini/gemini-2.5-pro"]; c.Previous == nil || c.Previous.Description != "Gemini 2.5 Pro" || c.Price.Description != "Gemini 2.5 Pro" {
			t.Errorf("gemini-2.5-pro follows %+v and keeps description %q", c.Previous, c.Price.Description)
		}
		if c, ok := changed["anthropic/claude-sonnet-4-20250514"]; !ok || c.Previous != nil {
			t.Errorf("claude-sonnet-4 is new, got %+v", c)
		}

		// Each call is rated with the version in effect at its time.
		if _, err := db.SetAlias(ctx, pricefile.Alias{Provider: "mistral", Alias: "mistral-large-2411", Model: "mistral-large-latest"}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			provider, model string
			at              time.Time
			q               billing.Quantities
			want            string
		}{
			// Long context: above 200k prompt tokens every bucket uses the second tier.
			{"anthropic", "claude-sonnet-4-20250514", T, billing.Quantities{Input: 250_000, CachedInput: 50_000, CacheWrite5m: 10_000, Output: 1000}, "1.2675"},
			{"anthropic", "claude-sonnet-4-20250514", T, billing.Quantities{Input: 100_000, CachedInput: 20_000, CacheWrite1h: 10_000, Output: 2000}, "0.306"},
			// A dated name resolves to its model by prefix.
			{"anthropic", "claude-sonnet-4-20250514-v2", T, billing.Quantities{Input: 1000, Output: 1000}, "0.018"},
			{"gemini", "gemini-2.5-flash", T, billing.Quantities{Input: 1000, CachedInput: 400, Output: 3000, Reasoning: 2000}, "0.00771"},
			{"gemini", "gemini-2.5-flash", before, billing.Quantities{Input: 1000, CachedInput: 400, Output: 3000, Reasoning: 2000}, "0.0078"},
			{"gemini", "gemini-2.5-pro", T, billing.Quantities{Input: 300_000, CachedInput: 100_000, Output: 1000}, "0.5775"},
			{"gemini", "gemini-2.5-pro", before, billing.Quantities{Input: 300_000, CachedInput: 100_000, Output: 1000}, "0.765"},
			{"openai", "gpt-4o-search-preview", T, billing.Quantities{Input: 100, Output: 50, Searches: 2}, "0.07075"},
			{"openai", "gpt-4o", T, billing.Quantities{Input: 1000, CachedInput: 1000, Output: 0}, "0.00125"},
			{"mistral", "mistral-large-2411", T, billing.Quantities{Input: 1000, Output: 1000}, "0.008"},
			// The seed's arithmetic is untouched: gpt-4, 1,000 in + 500 out.
			{"openai", "gpt-4", T, billing.Quantities{Input: 1000, Output: 500}, "0.06"},
		}
		for _, tt := range tests {
			if got := rateAt(t, db, tt.provider, tt.model, tt.at, tt.q); got != usd(tt.want) {
				t.Errorf("%s/%s at %s: %s, want %s", tt.provider, tt.model, tt.at.Format(time.RFC3339Nano), got, tt.want)
			}
		}
		// Before T the new models are unpriced.
		old := pricesAt(t, db, "anthropic", before)
		if _, ok := old["anthropic/claude-sonnet-4-20250514"]; ok {
			t.Error("claude-sonnet-4 is priced before its version takes effect")
		}

		// The same file again changes nothing.
		v1 := catalogVersion(t, db)
		again, err := db.ImportPrices(ctx, sample.PriceList(), T, false, adminNow)
		if err != nil {
			t.Fatal(err)
		}
		if again.Added != 0 || again.Unchanged != 6 || catalogVersion(t, db) != v1 {
			t.Errorf("re-import: %+v, catalog version %d (was %d)", again, catalogVersion(t, db), v1)
		}
		// So does it a month later: the versions in effect then are equal.
		if later, err := db.ImportPrices(ctx, sample.PriceList(), T.AddDate(0, 1, 0), false, adminNow); err != nil || later.Added != 0 {
			t.Errorf("re-import a month later: %+v, %v", later, err)
		}
	})
}

func TestImportPriceChangeMidPeriod(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		// Mid-period, to the microsecond.
		T := date(2026, time.June, 17, 13, 45, 10, 123_456_000)
		f, _, err := pricefile.Parse(strings.NewReader(`{"prices": [
			{"provider": "openai", "model": "gpt-4", "input": "0.00001", "output": 0.00003}]}`), pricefile.FormatAlwrity)
		if err != nil {
			t.Fatal(err)
		}
		res, err := db.ImportPrices(ctx, f.PriceList(), T, false, adminNow)
		if err != nil || res.Added != 1 {
			t.Fatalf("import: %+v, %v", res, err)
		}
		c := res.Changes[0]
		if c.Previous == nil || c.Previous.Tier.Input != usd("0.00003") || c.Price.Description != "GPT-4" {
			t.Errorf("change %+v", c)
		}
		q := billing.Quantities{Input: 1000, Output: 500}
		if got := rateAt(t, db, "openai", "gpt-4", T.Add(-time.Microsecond), q); got != usd("0.06") {
			t.Errorf("1µs before the change: %s, want 0.06", got)
		}
		if got := rateAt(t, db, "openai", "gpt-4", T, q); got != usd("0.025") {
			t.Errorf("at the change: %s, want 0.025", got)
		}
		oldP := pricesAt(t, db, "openai", T.Add(-time.Microsecond))["openai/gpt-4"]
		newP := pricesAt(t, db, "openai", T)["openai/gpt-4"]
		if oldP.Tier.Input != usd("0.00003") || newP.Tier.Input != usd("0.00001") || !newP.EffectiveFrom.Equal(T) {
			t.Errorf("ListPrices: before %+v, at %+v", oldP, newP)
		}
		// The old version is still there: history is never rewritten.
		if h := history(t, db, "openai", "gpt-4"); len(h) != 2 || h[1].Tier.Input != usd("0.00003") {
			t.Errorf("history %+v", h)
		}
	})
}

func TestImportVersionsAndErrors(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		tok := func(provider, model, in string, from time.Time) billing.Price {
			return billing.Price{Provider: provider, ModelName: model, Tier: billing.PriceTier{Input: usd(in), Output: usd(in)}, EffectiveFrom: from}
		}
		june, july, aug := date(2026, 6, 1, 0, 0, 0, 0), date(2026, 7, 1, 0, 0, 0, 0), date(2026, 8, 1, 0, 0, 0, 0)
		seeded := len(history(t, db, "", ""))

		// Versions of one model in one file go in time order, whatever the
		// file's order; a repeat of the version before it is unchanged.
		res, err := db.ImportPrices(ctx, []billing.Price{
			tok("openai", "gpt-x", "0.3", aug),
			tok("openai", "gpt-x", "0.1", june),
			tok("openai", "gpt-x", "0.1", july),
			{Provider: "openai", ModelName: "gpt-y", Tier: billing.PriceTier{Input: 1, Output: 1}}, // takes effectiveFrom
			{Provider: "openai", ModelName: "gpt-y", Tier: billing.PriceTier{Input: 1, Output: 1}},
		}, july, false, adminNow)
		if err != nil {
			t.Fatal(err)
		}
		if res.Added != 3 || res.Unchanged != 2 {
			t.Errorf("import: added %d, unchanged %d; want 3, 2", res.Added, res.Unchanged)
		}
		h := history(t, db, "openai", "gpt-x")
		if len(h) != 2 || !h[0].EffectiveFrom.Equal(aug) || !h[1].EffectiveFrom.Equal(june) {
			t.Errorf("gpt-x history %+v", h)
		}
		if h := history(t, db, "openai", "gpt-y"); len(h) != 1 || !h[0].EffectiveFrom.Equal(july) {
			t.Errorf("gpt-y history %+v", h)
		}
		n := seeded + 3
		v := catalogVersion(t, db)

		// Any bad entry refuses the whole import.
		bad := []struct {
			name   string
			prices []billing.Price
			code   billing.Code
			want   []string
		}{
			{"unknown provider", []billing.Price{tok("openai", "gpt-z", "1", aug), tok("azure", "gpt-4o", "1", aug)},
				billing.CodeInvalid, []string{"prices[1].provider", "azure/gpt-4o", `unknown provider "azure"`, "openai"}},
			{"negative", []billing.Price{tok("openai", "gpt-z", "1", aug), tok("openai", "gpt-w", "-1", aug)},
				billing.CodeInvalid, []string{"prices[1].input", "must not be negative"}},
			{"end before start", []billing.Price{{Provider: "openai", ModelName: "gpt-z", Tier: billing.PriceTier{Input: 1, Output: 1}, EffectiveTo: &june}},
				billing.CodeInvalid, []string{"prices[0].effective_to"}},
			{"different version at a stored time", []billing.Price{tok("openai", "gpt-z", "1", aug), tok("openai", "gpt-x", "0.2", june)},
				billing.CodeConflict, []string{"prices[1]", "openai/gpt-x", "later effective_from"}},
			{"two different versions at one time", []billing.Price{tok("openai", "gpt-z", "1", aug), tok("openai", "gpt-z", "2", aug)},
				billing.CodeConflict, []string{"openai/gpt-z"}},
		}
		for _, tt := range bad {
			t.Run(tt.name, func(t *testing.T) {
				for _, dry := range []bool{true, false} {
					_, err := db.ImportPrices(ctx, tt.prices, aug, dry, adminNow)
					wantCode(t, err, tt.code)
					for _, w := range tt.want {
						if !strings.Contains(err.Error(), w) {
							t.Errorf("error %q does not contain %q", err, w)
						}
					}
				}
				if got := len(history(t, db, "", "")); got != n || catalogVersion(t, db) != v {
					t.Errorf("a refused import changed the catalog: %d versions (want %d), version %d (was %d)", got, n, catalogVersion(t, db), v)
				}
			})
		}

		// A whole history exported from one database imports into another
		// as the same versions.
		export := history(t, db, "", "")
		aliases := []pricefile.Alias{{Provider: "openai", Alias: "gpt-x-latest", Model: "gpt-x"}}
		other := storetest.Open(t, b)
		res, err = other.ImportCatalog(ctx, export, aliases, time.Time{}, false, adminNow)
		if err != nil {
			t.Fatal(err)
		}
		if res.Added != 3 || res.Unchanged != seeded || res.AliasesSet != 1 {
			t.Errorf("history import: %+v", res)
		}
		strip := func(ps []billing.Price) []billing.Price {
			out := make([]billing.Price, len(ps))
			for i, p := range ps {
				p.ID = 0
				out[i] = p
			}
			return out
		}
		if got := history(t, other, "", ""); !reflect.DeepEqual(strip(got), strip(export)) {
			t.Errorf("imported history differs:\n got %+v\nwant %+v", got, export)
		}
		if got, err := other.ListAliases(ctx, ""); err != nil || !reflect.DeepEqual(got, aliases) {
			t.Errorf("aliases %v, %v", got, err)
		}
	})
}

func TestModelAliases(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		if got, err := db.ListAliases(ctx, ""); err != nil || len(got) != 0 {
			t.Fatalf("aliases of a new database: %v, %v", got, err)
		}
		v0 := catalogVersion(t, db)
		set := func(a pricefile.Alias, want bool) {
			t.Helper()
			changed, err := db.SetAlias(ctx, a)
			if err != nil || changed != want {
				t.Fatalf("SetAlias(%+v) = %v, %v; want %v", a, changed, err, want)
			}
		}
		set(pricefile.Alias{Provider: "openai", Alias: "gpt4", Model: "gpt-4"}, true)
		set(pricefile.Alias{Provider: "gemini", Alias: "pro", Model: "gemini-pro"}, true)
		v1 := catalogVersion(t, db)
		if v1 <= v0 {
			t.Error("setting an alias did not bump the catalog version")
		}
		set(pricefile.Alias{Provider: "openai", Alias: "gpt4", Model: "gpt-4"}, false)
		if catalogVersion(t, db) != v1 {
			t.Error("setting an alias to what it was bumped the catalog version")
		}
		q := billing.Quantities{Input: 1000, Output: 500}
		if got := rateAt(t, db, "openai", "gpt4", adminNow, q); got != usd("0.06") {
			t.Errorf("gpt4 → gpt-4 rated %s", got)
		}
		set(pricefile.Alias{Provider: "openai", Alias: "gpt4", Model: "gpt-4o"}, true)
		if got := rateAt(t, db, "openai", "gpt4", adminNow, q); got != usd("0.0075") {
			t.Errorf("gpt4 → gpt-4o rated %s", got)
		}
		want := []pricefile.Alias{{Provider: "gemini", Alias: "pro", Model: "gemini-pro"}, {Provider: "openai", Alias: "gpt4", Model: "gpt-4o"}}
		if got, err := db.ListAliases(ctx, ""); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ListAliases = %v, %v; want %v", got, err, want)
		}
		if got, err := db.ListAliases(ctx, "gemini"); err != nil || !reflect.DeepEqual(got, want[:1]) {
			t.Errorf("ListAliases(gemini) = %v, %v", got, err)
		}

		for _, a := range []pricefile.Alias{
			{Provider: "azure", Alias: "x", Model: "gpt-4"},
			{Provider: "openai", Alias: "", Model: "gpt-4"},
			{Provider: "openai", Alias: "gpt-4", Model: "gpt-4"},
			{Provider: "openai", Alias: "x\ny", Model: "gpt-4"},
		} {
			_, err := db.SetAlias(ctx, a)
			wantCode(t, err, billing.CodeInvalid)
		}

		v2 := catalogVersion(t, db)
		if err := db.DeleteAlias(ctx, "openai", "gpt4"); err != nil {
			t.Fatal(err)
		}
		if catalogVersion(t, db) <= v2 {
			t.Error("deleting an alias did not bump the catalog version")
		}
		wantCode(t, db.DeleteAlias(ctx, "openai", "gpt4"), billing.CodeNotFound)
		c, err := db.LoadCatalog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c.Aliases, map[string]map[string]string{"gemini": {"pro": "gemini-pro"}}) {
			t.Errorf("catalog aliases %v", c.Aliases)
		}
	})
}
