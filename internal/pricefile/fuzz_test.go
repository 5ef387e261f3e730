package pricefile_test

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/pricefile"
)

// checkReparse asserts that what parsed writes out and reads back as the
// same file and the same prices, and that every price is one the store
// would accept.
func checkReparse(t *testing.T, f pricefile.File) {
	t.Helper()
	for i, p := range f.PriceList() {
		if fs := pricefile.ValidatePrice(p, ""); len(fs) > 0 {
			t.Fatalf("parsed an invalid price %d: %v", i, fs)
		}
	}
	var buf bytes.Buffer
	if err := pricefile.Write(&buf, f); err != nil {
		t.Fatalf("write: %v", err)
	}
	again, skipped, err := pricefile.Parse(bytes.NewReader(buf.Bytes()), pricefile.FormatAlwrity)
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, buf.String())
	}
	if skipped != nil {
		t.Fatalf("re-parse skipped %v", skipped)
	}
	if len(f.Prices) == 0 && len(again.Prices) == 0 {
		f.Prices, again.Prices = nil, nil
	}
	if !reflect.DeepEqual(again, f) {
		t.Fatalf("re-parse changed the file:\n got %s\nwant %s", dump(again), dump(f))
	}
	if !reflect.DeepEqual(again.PriceList(), f.PriceList()) {
		t.Fatalf("re-parse changed the prices")
	}
}

func FuzzParseAlwrity(f *testing.F) {
	f.Add(`{"prices": [{"provider": "openai", "model": "gpt-4o", "input": 2.5e-06, "output": "0.00001", "cached_input": 0.00000125}]}`)
	f.Add(`{"prices": [{"provider": "anthropic", "model": "c", "effective_from": "2026-01-01T00:00:00.5+01:00", "input": 0.000003, "output": 0.000015,
		"cache_write_5m": 0.00000375, "cache_write_1h": "6e-6", "reasoning": null, "per_request": 0, "per_search": 0.01, "per_image": 1, "per_page": 2,
		"effective_to": "2027-01-01T00:00:00Z", "description": "d\u00e9",
		"long_context": {"threshold_tokens": 200000, "input": 0.000006, "output": 0.0000225, "cached_input": 6e-7}}],
		"aliases": [{"provider": "anthropic", "alias": "a", "model": "c"}]}`)
	f.Add(`{"prices": []}`)
	f.Add(`{"aliases": null, "prices": null}`)
	f.Add(`{"prices": [{"provider": "x", "model": "m", "input": -0, "output": 1E+2}]}`)
	f.Add(`{"prices": [{"provider": "x", "model": "m", "input": 1, "output": 1}, {"provider": "x", "model": "m", "input": 1, "output": 1, "effective_from": "2026-01-01T00:00:00Z"}]}`)
	f.Add(`{"gpt-4o": {}}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, s string) {
		file, skipped, err := pricefile.Parse(strings.NewReader(s), pricefile.FormatAlwrity)
		if err != nil {
			if c := billing.ErrorCode(err); c != billing.CodeInvalid {
				t.Fatalf("error of code %q: %v", c, err)
			}
			return
		}
		if skipped != nil {
			t.Fatalf("our format skipped %v", skipped)
		}
		checkReparse(t, file)
	})
}

func FuzzParseLiteLLM(f *testing.F) {
	if b, err := os.ReadFile("testdata/litellm_sample.json"); err == nil {
		f.Add(string(b))
	}
	f.Add(`{"gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 1.25e-06}}`)
	f.Add(`{"gemini/g": {"input_cost_per_token": "1e-6", "output_cost_per_token": 2e-6, "output_cost_per_token_above_128k_tokens": 4e-6,
		"cache_creation_input_token_cost_above_1hr_above_200k_tokens": 1e-5, "search_context_cost_per_query": {"search_context_size_medium": 0.03}}}`)
	f.Add(`{"vertex_ai/x": {"litellm_provider": "vertex_ai-language-models", "mode": "embedding", "input_cost_per_token": 1e-7}, "x": {"litellm_provider": "gemini", "input_cost_per_request": 0.5}}`)
	f.Add(`{"sample_spec": {}, "a/b": [], "m": {"litellm_provider": 1}}`)
	f.Fuzz(func(t *testing.T, s string) {
		file, skipped, err := pricefile.Parse(strings.NewReader(s), pricefile.FormatLiteLLM)
		if err != nil {
			if c := billing.ErrorCode(err); c != billing.CodeInvalid {
				t.Fatalf("error of code %q: %v", c, err)
			}
			return
		}
		for _, sk := range skipped {
			if sk.Reason == "" {
				t.Fatalf("skipped %q without a reason", sk.Model)
			}
		}
		seen := map[string]bool{}
		for _, e := range file.Prices {
			if e.EffectiveFrom != nil || len(file.Aliases) > 0 {
				t.Fatalf("a LiteLLM file yielded a time or an alias: %s", dump(e))
			}
			if seen[e.Provider+"/"+e.Model] {
				t.Fatalf("two prices for %s/%s", e.Provider, e.Model)
			}
			seen[e.Provider+"/"+e.Model] = true
		}
		checkReparse(t, file)
	})
}
