package pricefile_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/pricefile"
)

func dump(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

var jan = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

func TestParseAlwrity(t *testing.T) {
	const file = `{
	  "prices": [
	    {"provider": "openai", "model": "gpt-4o", "effective_from": "2026-01-01T05:30:00+05:30", "description": "GPT-4o <omni>",
	     "input": 2.5e-06, "output": "0.00001", "cached_input": 0.00000125, "cache_write_5m": null, "reasoning": null},
	    {"provider": "anthropic", "model": "claude-sonnet-4", "input": 0.000003, "output": 0.000015,
	     "cached_input": 0.0000003, "cache_write_5m": 0.00000375, "cache_write_1h": 0.000006, "reasoning": 0.000015,
	     "per_request": 0, "per_search": "0.01", "per_image": 0.04, "per_page": 0.002,
	     "effective_to": "2027-01-01T00:00:00Z",
	     "long_context": {"threshold_tokens": 200000, "input": 0.000006, "output": 0.0000225, "cached_input": 0.0000006,
	                      "cache_write_5m": 0.0000075, "cache_write_1h": 0.000012, "reasoning": null}},
	    {"provider": "tavily", "model": "tavily-search", "input": 0, "output": 0, "per_request": 0.001, "long_context": null}
	  ],
	  "aliases": [{"provider": "openai", "alias": "gpt4o", "model": "gpt-4o"}]
	}`
	f, skipped := parseString(t, pricefile.FormatAlwrity, file)
	if skipped != nil {
		t.Errorf("skipped %v", skipped)
	}
	want := pricefile.File{
		Prices: []pricefile.Entry{
			{Provider: "openai", Model: "gpt-4o", EffectiveFrom: &jan, Description: "GPT-4o <omni>",
				Input: usd("0.0000025"), Output: usd("0.00001"), CachedInput: pusd("0.00000125")},
			{Provider: "anthropic", Model: "claude-sonnet-4", Input: usd("0.000003"), Output: usd("0.000015"),
				CachedInput: pusd("0.0000003"), CacheWrite5m: pusd("0.00000375"), CacheWrite1h: pusd("0.000006"), Reasoning: pusd("0.000015"),
				PerSearch: usd("0.01"), PerImage: usd("0.04"), PerPage: usd("0.002"),
				EffectiveTo: billing.Ptr(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)),
				LongContext: &pricefile.LongContext{ThresholdTokens: 200_000, Input: usd("0.000006"), Output: usd("0.0000225"),
					CachedInput: pusd("0.0000006"), CacheWrite5m: pusd("0.0000075"), CacheWrite1h: pusd("0.000012")}},
			{Provider: "tavily", Model: "tavily-search", PerRequest: usd("0.001")},
		},
		Aliases: []pricefile.Alias{{Provider: "openai", Alias: "gpt4o", Model: "gpt-4o"}},
	}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("parsed:\n got %s\nwant %s", dump(f), dump(want))
	}

	// Written out and read back, the file is the same, and its money is
	// plain exact decimal numbers.
	var buf bytes.Buffer
	if err := pricefile.Write(&buf, f); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"input": 0.0000025`, `"per_search": 0.01`, `"effective_from": "2026-01-01T00:00:00Z"`, `"GPT-4o <omni>"`} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("written file lacks %s:\n%s", s, buf.String())
		}
	}
	if regexp.MustCompile(`[0-9][eE]`).MatchString(buf.String()) || strings.Contains(buf.String(), "null") {
		t.Errorf("written file has exponents or nulls:\n%s", buf.String())
	}
	again, _ := parseString(t, pricefile.FormatAlwrity, buf.String())
	if !reflect.DeepEqual(again, f) {
		t.Fatalf("round trip:\n got %s\nwant %s", dump(again), dump(f))
	}

	// The default format is ours.
	if g, _ := parseString(t, "", file); !reflect.DeepEqual(g, f) {
		t.Errorf("format \"\" parsed differently")
	}
	// An aliases-only file and an empty one are fine.
	if g, _ := parseString(t, pricefile.FormatAlwrity, `{"aliases": [{"provider": "gemini", "alias": "g", "model": "gemini-pro"}]}`); len(g.Aliases) != 1 || len(g.Prices) != 0 {
		t.Errorf("aliases-only file: %s", dump(g))
	}
	if g, _ := parseString(t, pricefile.FormatAlwrity, `{"prices": []}`); len(g.Prices) != 0 {
		t.Errorf("empty file: %s", dump(g))
	}
}

func TestParseAlwrityErrors(t *testing.T) {
	entry := func(fields string) string {
		return `{"prices": [{"provider": "openai", "model": "gpt-4o", "input": 0.000001, "output": 0.000002` + fields + `}]}`
	}
	tests := []struct {
		name, json string
		want       []string
	}{
		{"empty", ``, []string{"file", "empty input"}},
		{"not JSON", `prices`, []string{"file", "malformed JSON"}},
		{"array", `[]`, []string{"file"}},
		{"null", `null`, []string{"file"}},
		{"trailing", `{"prices": []} x`, []string{"file", "unexpected data"}},
		{"no prices", `{}`, []string{"prices: is required"}},
		{"LiteLLM file", `{"gpt-4o": {"input_cost_per_token": 1e-6}}`, []string{"gpt-4o: unknown field", "litellm"}},
		{"prices not an array", `{"prices": {}}`, []string{"prices: must be an array"}},
		{"entry not an object", `{"prices": [7]}`, []string{"prices[0]: must be a JSON object"}},
		{"unknown field", entry(`, "cached_inptu": 0.1`), []string{"prices[0].cached_inptu: openai/gpt-4o: unknown field"}},
		{"missing input", `{"prices": [{"provider": "openai", "model": "m", "output": 1}]}`, []string{"prices[0].input", "is required"}},
		{"null output", `{"prices": [{"provider": "openai", "model": "m", "input": 1, "output": null}]}`, []string{"prices[0].output", "is required"}},
		{"missing provider", `{"prices": [{"model": "m", "input": 1, "output": 1}]}`, []string{"prices[0].provider: /m: is required"}},
		{"empty model", `{"prices": [{"provider": "openai", "model": "", "input": 1, "output": 1}]}`, []string{"prices[0].model", "is required"}},
		{"model with a newline", `{"prices": [{"provider": "openai", "model": "a\nb", "input": 1, "output": 1}]}`, []string{"prices[0].model", "printable"}},
		{"model with spaces around", `{"prices": [{"provider": "openai", "model": " m", "input": 1, "output": 1}]}`, []string{"prices[0].model", "spaces"}},
		{"long model", `{"prices": [{"provider": "openai", "model": "` + strings.Repeat("m", 129) + `", "input": 1, "output": 1}]}`, []string{"prices[0].model", "128"}},
		{"model not a string", `{"prices": [{"provider": "openai", "model": 5, "input": 1, "output": 1}]}`, []string{"prices[0].model", "must be a string"}},
		{"negative", entry(`, "cached_input": -0.000001`), []string{"prices[0].cached_input", "openai/gpt-4o", "must not be negative"}},
		{"word", entry(`, "per_search": "ten cents"`), []string{"prices[0].per_search", "decimal amount"}},
		{"bool", entry(`, "per_image": true`), []string{"prices[0].per_image", "decimal amount"}},
		{"object", entry(`, "reasoning": {}`), []string{"prices[0].reasoning", "decimal amount"}},
		{"finer than a pico-dollar", entry(`, "reasoning": 0.0000000000001`), []string{"prices[0].reasoning", "pico-dollar"}},
		{"too large", entry(`, "per_page": 1e300`), []string{"prices[0].per_page", "out of range"}},
		{"bad time", entry(`, "effective_from": "yesterday"`), []string{"prices[0].effective_from", "RFC 3339"}},
		{"time as a number", entry(`, "effective_from": 1700000000`), []string{"prices[0].effective_from", "RFC 3339"}},
		{"end before start", entry(`, "effective_from": "2026-02-01T00:00:00Z", "effective_to": "2026-01-01T00:00:00Z"`), []string{"prices[0].effective_to", "after effective_from"}},
		{"long context without threshold", entry(`, "long_context": {"input": 1, "output": 2}`), []string{"prices[0].long_context.threshold_tokens", "is required"}},
		{"long context fractional threshold", entry(`, "long_context": {"threshold_tokens": 2.5, "input": 1, "output": 2}`), []string{"prices[0].long_context.threshold_tokens", "whole number"}},
		{"long context zero threshold", entry(`, "long_context": {"threshold_tokens": 0, "input": 1, "output": 2}`), []string{"prices[0].long_context.threshold_tokens", "positive"}},
		{"long context without output", entry(`, "long_context": {"threshold_tokens": 10, "input": 1}`), []string{"prices[0].long_context.output", "is required"}},
		{"long context unknown field", entry(`, "long_context": {"threshold_tokens": 10, "input": 1, "output": 1, "x": 1}`), []string{"prices[0].long_context.x", "unknown field"}},
		{"long context not an object", entry(`, "long_context": 5`), []string{"prices[0].long_context", "must be an object"}},
		{"long context negative", entry(`, "long_context": {"threshold_tokens": 10, "input": -1, "output": 1}`), []string{"prices[0].long_context.input", "negative"}},
		{"duplicate", `{"prices": [{"provider": "openai", "model": "m", "input": 1, "output": 1}, {"provider": "openai", "model": "m", "input": 2, "output": 1}]}`,
			[]string{"prices[1]", "repeats prices[0]"}},
		{"duplicate alias", `{"aliases": [{"provider": "openai", "alias": "a", "model": "m"}, {"provider": "openai", "alias": "a", "model": "n"}]}`,
			[]string{"aliases[1]", "repeats"}},
		{"alias to itself", `{"aliases": [{"provider": "openai", "alias": "m", "model": "m"}]}`, []string{"aliases[0].alias", "differ"}},
		{"alias without model", `{"aliases": [{"provider": "openai", "alias": "m"}]}`, []string{"aliases[0].model", "is required"}},
		{"alias unknown field", `{"aliases": [{"provider": "openai", "alias": "a", "model": "m", "note": "x"}]}`, []string{"aliases[0].note", "unknown field"}},
		{"every problem", `{"prices": [{"provider": "openai", "model": "a", "input": -1, "output": 1}, {"provider": "openai", "model": "b", "input": 1, "output": "x"}]}`,
			[]string{"prices[0].input", "prices[1].output"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _, err := pricefile.Parse(strings.NewReader(tt.json), pricefile.FormatAlwrity)
			if billing.ErrorCode(err) != billing.CodeInvalid {
				t.Fatalf("err = %v (parsed %s), want invalid", err, dump(f))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseBounds(t *testing.T) {
	// A file one byte over the limit is refused without being parsed.
	big := bytes.Repeat([]byte("{"), pricefile.MaxBytes+1)
	_, _, err := pricefile.Parse(bytes.NewReader(big), pricefile.FormatLiteLLM)
	if billing.ErrorCode(err) != billing.CodeTooLarge {
		t.Errorf("oversized file: err = %v, want too_large", err)
	}
	// Many bad entries make one bounded message.
	var b strings.Builder
	b.WriteString(`{"prices": [`)
	for i := range 200 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"provider": "openai", "model": "m", "input": -1, "output": 1}`)
	}
	b.WriteString(`]}`)
	_, _, err = pricefile.Parse(strings.NewReader(b.String()), pricefile.FormatAlwrity)
	var e *billing.Error
	if !errors.As(err, &e) || len(e.Fields) != 50 || !strings.Contains(e.Message, "and 150 more problems") {
		t.Errorf("200 bad entries: %v", err)
	}
	_, _, err = pricefile.Parse(strings.NewReader(`{}`), "yaml")
	if billing.ErrorCode(err) != billing.CodeInvalid || !strings.Contains(err.Error(), "alwrity, litellm") {
		t.Errorf("unknown format: %v", err)
	}
	_, _, err = pricefile.Parse(iotest.ErrReader(errBoom), pricefile.FormatAlwrity)
	if err == nil || billing.ErrorCode(err) != billing.CodeInternal {
		t.Errorf("read error: %v", err)
	}
}

func TestParseEntry(t *testing.T) {
	e, err := pricefile.ParseEntry([]byte(`{"provider": "openai", "model": "gpt-5", "input": "0.00000125", "output": 0.00001}`), "body")
	if err != nil {
		t.Fatal(err)
	}
	want := pricefile.Entry{Provider: "openai", Model: "gpt-5", Input: usd("0.00000125"), Output: usd("0.00001")}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("entry %s, want %s", dump(e), dump(want))
	}
	_, err = pricefile.ParseEntry([]byte(`{"provider": "openai", "model": "gpt-5", "input": -1, "output": 1}`), "body")
	if billing.ErrorCode(err) != billing.CodeInvalid || !strings.Contains(err.Error(), "body.input") {
		t.Errorf("negative input: %v", err)
	}
	_, err = pricefile.ParseEntry([]byte(`[]`), "body")
	if billing.ErrorCode(err) != billing.CodeInvalid || !strings.Contains(err.Error(), "body: must be a JSON object") {
		t.Errorf("array: %v", err)
	}
}

func TestPriceConversion(t *testing.T) {
	to := jan.AddDate(1, 0, 0)
	p := billing.Price{Provider: "gemini", ModelName: "gemini-2.5-pro", Description: "Gemini 2.5 Pro", IsActive: true,
		Tier:       billing.PriceTier{Input: usd("0.00000125"), Output: usd("0.00001"), CachedInput: pusd("0.0000003125")},
		PerRequest: 1, PerSearch: 2, PerImage: 3, PerPage: 4, EffectiveFrom: jan, EffectiveTo: &to,
		LongContextThreshold: billing.Ptr[int64](200_000),
		LongContext:          &billing.PriceTier{Input: usd("0.0000025"), Output: usd("0.000015"), Reasoning: pusd("0.00002")}}
	e := pricefile.FromPrice(p)
	if got := e.Price(); !reflect.DeepEqual(got, p) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, p)
	}
	// The entry owns its amounts.
	*e.CachedInput = 0
	if *p.Tier.CachedInput == 0 {
		t.Error("FromPrice shares a pointer with the price")
	}
	f := pricefile.FromPrices([]billing.Price{p, {Provider: "openai", ModelName: "x", IsActive: true}}, nil)
	if got := f.PriceList(); len(got) != 2 || got[1].ModelName != "x" || !got[1].EffectiveFrom.IsZero() || f.Prices[1].EffectiveFrom != nil {
		t.Errorf("FromPrices/PriceList: %+v", got)
	}
}

func TestEquivalentAndDiff(t *testing.T) {
	base := billing.Price{Provider: "openai", ModelName: "gpt-4o", Description: "GPT-4o",
		Tier: billing.PriceTier{Input: usd("0.0000025"), Output: usd("0.00001")}}
	edit := func(f func(p *billing.Price)) billing.Price {
		p := base
		p.Tier.CachedInput = nil
		f(&p)
		return p
	}
	tests := []struct {
		name  string
		other billing.Price
		same  bool
		diff  []string
	}{
		{"identical", edit(func(p *billing.Price) { p.ID, p.EffectiveFrom = 7, jan }), true, nil},
		// A bucket written out at its fallback charges the same.
		{"explicit fallback", edit(func(p *billing.Price) { p.Tier.CachedInput = pusd("0.0000025") }), true, []string{"cached_input"}},
		{"input", edit(func(p *billing.Price) { p.Tier.Input = usd("0.000002") }), false, []string{"input"}},
		{"cached", edit(func(p *billing.Price) { p.Tier.CachedInput = pusd("0.00000125") }), false, []string{"cached_input"}},
		{"description", edit(func(p *billing.Price) { p.Description = "" }), false, []string{"description"}},
		{"fee", edit(func(p *billing.Price) { p.PerSearch = 1 }), false, []string{"per_search"}},
		{"end", edit(func(p *billing.Price) { p.EffectiveTo = &jan }), false, []string{"effective_to"}},
		{"long context", edit(func(p *billing.Price) {
			p.LongContextThreshold, p.LongContext = billing.Ptr[int64](1000), &billing.PriceTier{Input: 1, Output: 2}
		}), false, []string{"long_context"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pricefile.Equivalent(base, tt.other); got != tt.same {
				t.Errorf("Equivalent = %v, want %v", got, tt.same)
			}
			var fields []string
			for _, c := range pricefile.Diff(base, tt.other) {
				fields = append(fields, c.Field)
			}
			if !reflect.DeepEqual(fields, tt.diff) {
				t.Errorf("Diff fields = %v, want %v", fields, tt.diff)
			}
		})
	}
	lc := func(threshold int64, in string) billing.Price {
		p := base
		p.LongContextThreshold, p.LongContext = &threshold, &billing.PriceTier{Input: usd(in), Output: 1}
		return p
	}
	if pricefile.Equivalent(lc(1000, "0.1"), lc(2000, "0.1")) || pricefile.Equivalent(lc(1000, "0.1"), lc(1000, "0.2")) ||
		!pricefile.Equivalent(lc(1000, "0.1"), lc(1000, "0.1")) {
		t.Error("long-context rules compared wrongly")
	}
	d := pricefile.Diff(lc(1000, "0.1"), lc(2000, "0.2"))
	if dump(d) != `[{"field":"long_context.threshold_tokens","old":1000,"new":2000},{"field":"long_context.input","old":0.1,"new":0.2}]` {
		t.Errorf("Diff = %s", dump(d))
	}
	if d := pricefile.Diff(base, edit(func(p *billing.Price) { p.Tier.Reasoning = pusd("0.00004") })); dump(d) != `[{"field":"reasoning","old":null,"new":0.00004}]` {
		t.Errorf("Diff = %s", dump(d))
	}
}

func TestWriteEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := pricefile.Write(&buf, pricefile.File{}); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != "{\n  \"prices\": []\n}\n" {
		t.Errorf("empty file written as %q", got)
	}
}

var errBoom = errors.New("boom")
