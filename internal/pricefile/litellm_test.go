package pricefile_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/pricefile"
)

func usd(s string) money.Amount   { return money.MustParse(s) }
func pusd(s string) *money.Amount { return billing.Ptr(money.MustParse(s)) }

func parseString(t *testing.T, format, s string) (pricefile.File, []pricefile.Skipped) {
	t.Helper()
	f, skipped, err := pricefile.Parse(strings.NewReader(s), format)
	if err != nil {
		t.Fatalf("Parse(%s): %v", format, err)
	}
	return f, skipped
}

func TestParseLiteLLMSample(t *testing.T) {
	b, err := os.ReadFile("testdata/litellm_sample.json")
	if err != nil {
		t.Fatal(err)
	}
	f, skipped := parseString(t, pricefile.FormatLiteLLM, string(b))
	want := []pricefile.Entry{
		{Provider: "anthropic", Model: "claude-sonnet-4-20250514", Input: usd("0.000003"), Output: usd("0.000015"),
			CachedInput: pusd("0.0000003"), CacheWrite5m: pusd("0.00000375"), CacheWrite1h: pusd("0.000006"),
			PerSearch: usd("0.01"),
			LongContext: &pricefile.LongContext{ThresholdTokens: 200_000, Input: usd("0.000006"), Output: usd("0.0000225"),
				CachedInput: pusd("0.0000006"), CacheWrite5m: pusd("0.0000075"), CacheWrite1h: pusd("0.000006")}},
		// Gemini's own entry wins over Vertex AI's listing of the same model.
		{Provider: "gemini", Model: "gemini-2.5-flash", Input: usd("0.0000003"), Output: usd("0.0000025"),
			CachedInput: pusd("0.000000075"), Reasoning: pusd("0.0000025")},
		{Provider: "gemini", Model: "gemini-2.5-pro", Input: usd("0.00000125"), Output: usd("0.00001"),
			CachedInput: pusd("0.0000003125"),
			LongContext: &pricefile.LongContext{ThresholdTokens: 200_000, Input: usd("0.0000025"), Output: usd("0.000015"),
				CachedInput: pusd("0.000000625")}},
		{Provider: "mistral", Model: "mistral-large-latest", Input: usd("0.000002"), Output: usd("0.000006")},
		{Provider: "openai", Model: "gpt-4o", Input: usd("0.0000025"), Output: usd("0.00001"), CachedInput: pusd("0.00000125")},
		{Provider: "openai", Model: "gpt-4o-search-preview", Input: usd("0.0000025"), Output: usd("0.00001"),
			CachedInput: pusd("0.00000125"), PerSearch: usd("0.035")},
	}
	if !reflect.DeepEqual(f.Prices, want) {
		t.Errorf("prices:\n got %s\nwant %s", dump(f.Prices), dump(want))
	}
	if len(f.Aliases) != 0 {
		t.Errorf("aliases = %v", f.Aliases)
	}
	wantSkipped := map[string]string{
		"azure/gpt-4o":                "litellm_provider \"azure\" is not a provider this service meters",
		"dall-e-3":                    "no usable price",
		"gemini-2.5-pro":              "the same model as \"gemini/gemini-2.5-pro\"",
		"gemini/gemini-2.0-flash-exp": "every price is 0",
		"sample_spec":                 "not a model",
	}
	if len(skipped) != len(wantSkipped) {
		t.Errorf("skipped %v, want %d entries", skipped, len(wantSkipped))
	}
	for _, s := range skipped {
		if w, ok := wantSkipped[s.Model]; !ok || !strings.Contains(s.Reason, w) {
			t.Errorf("skipped %q because %q; want a reason with %q", s.Model, s.Reason, w)
		}
	}
}

func TestParseLiteLLMFields(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []pricefile.Entry
		skip string // a reason the only entry is skipped for
	}{
		{"numbers as text", `{"gpt-x": {"litellm_provider": "openai", "input_cost_per_token": "1.5e-6", "output_cost_per_token": 0.000002}}`,
			[]pricefile.Entry{{Provider: "openai", Model: "gpt-x", Input: usd("0.0000015"), Output: usd("0.000002")}}, ""},
		{"prefix names the provider", `{"mistral/codestral": {"input_cost_per_token": 3e-7, "output_cost_per_token": 9e-7}}`,
			[]pricefile.Entry{{Provider: "mistral", Model: "codestral", Input: usd("0.0000003"), Output: usd("0.0000009")}}, ""},
		{"vertex prefix", `{"vertex_ai/gemini-x": {"litellm_provider": "vertex_ai-language-models", "input_cost_per_token": 1e-7, "output_cost_per_token": 4e-7}}`,
			[]pricefile.Entry{{Provider: "gemini", Model: "gemini-x", Input: usd("0.0000001"), Output: usd("0.0000004")}}, ""},
		{"embedding without output", `{"text-embedding-3-small": {"litellm_provider": "openai", "mode": "embedding", "input_cost_per_token": 2e-08}}`,
			[]pricefile.Entry{{Provider: "openai", Model: "text-embedding-3-small", Input: usd("0.00000002")}}, ""},
		{"per request", `{"gpt-tool": {"litellm_provider": "openai", "input_cost_per_request": 0.01}}`,
			[]pricefile.Entry{{Provider: "openai", Model: "gpt-tool", PerRequest: usd("0.01")}}, ""},
		{"image generation", `{"dall-e-3": {"litellm_provider": "openai", "mode": "image_generation", "output_cost_per_image": 0.04}}`,
			[]pricefile.Entry{{Provider: "openai", Model: "dall-e-3", PerImage: usd("0.04")}}, ""},
		{"search price as a number", `{"gpt-s": {"litellm_provider": "openai", "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6, "search_context_cost_per_query": 0.025}}`,
			[]pricefile.Entry{{Provider: "openai", Model: "gpt-s", Input: usd("0.000001"), Output: usd("0.000002"), PerSearch: usd("0.025")}}, ""},
		{"128k tier and output-only tier price", `{"gemini/gemini-1.5-pro": {"input_cost_per_token": 1.25e-6, "output_cost_per_token": 5e-6,
			"output_cost_per_token_above_128k_tokens": 1e-5, "output_cost_per_reasoning_token": 6e-6}}`,
			[]pricefile.Entry{{Provider: "gemini", Model: "gemini-1.5-pro", Input: usd("0.00000125"), Output: usd("0.000005"), Reasoning: pusd("0.000006"),
				LongContext: &pricefile.LongContext{ThresholdTokens: 128_000, Input: usd("0.00000125"), Output: usd("0.00001"), Reasoning: pusd("0.000006")}}}, ""},
		{"lowest threshold wins", `{"gemini/g": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
			"input_cost_per_token_above_200k_tokens": 4e-6, "input_cost_per_token_above_128k_tokens": 3e-6}}`,
			[]pricefile.Entry{{Provider: "gemini", Model: "g", Input: usd("0.000001"), Output: usd("0.000002"),
				LongContext: &pricefile.LongContext{ThresholdTokens: 128_000, Input: usd("0.000003"), Output: usd("0.000002")}}}, ""},
		{"nulls are absent", `{"gpt-n": {"litellm_provider": "openai", "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6, "cache_read_input_token_cost": null, "input_cost_per_token_above_200k_tokens": null}}`,
			[]pricefile.Entry{{Provider: "openai", Model: "gpt-n", Input: usd("0.000001"), Output: usd("0.000002")}}, ""},
		{"input only", `{"gpt-i": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-6}}`, nil, "no output_cost_per_token"},
		{"output only", `{"gpt-o": {"litellm_provider": "openai", "output_cost_per_token": 1e-6}}`, nil, "no input_cost_per_token"},
		{"no provider", `{"gpt-q": {"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6}}`, nil, "no litellm_provider"},
		{"provider not a string", `{"gpt-q": {"litellm_provider": 7}}`, nil, "not a string"},
		{"unsupported provider with junk prices", `{"bedrock/x": {"litellm_provider": "bedrock", "input_cost_per_token": "lots"}}`, nil, "\"bedrock\""},
		{"not an object", `{"gpt-z": [1, 2]}`, nil, "not a JSON object"},
		{"bad model name", `{"gpt z\n": {"litellm_provider": "openai", "input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6}}`, nil, "printable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, skipped := parseString(t, pricefile.FormatLiteLLM, tt.json)
			if tt.skip != "" {
				if len(f.Prices) != 0 || len(skipped) != 1 || !strings.Contains(skipped[0].Reason, tt.skip) {
					t.Fatalf("got %s skipped %v; want only a skip for %q", dump(f.Prices), skipped, tt.skip)
				}
				return
			}
			if len(skipped) != 0 {
				t.Errorf("skipped %v", skipped)
			}
			if !reflect.DeepEqual(f.Prices, tt.want) {
				t.Errorf("prices:\n got %s\nwant %s", dump(f.Prices), dump(tt.want))
			}
		})
	}
}

func TestParseLiteLLMErrors(t *testing.T) {
	tests := []struct {
		name, json string
		want       []string // each must appear in the message
	}{
		{"not an object", `[1]`, []string{"file", "object keyed by model"}},
		{"malformed", `{"gpt-4o": {`, []string{"file", "malformed JSON"}},
		{"trailing data", `{} {}`, []string{"unexpected data"}},
		{"our own format", `{"prices": []}`, []string{"prices", "format alwrity"}},
		{"word for a price", `{"gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": "cheap", "output_cost_per_token": 1e-5}}`,
			[]string{`["gpt-4o"].input_cost_per_token`, "gpt-4o:", "decimal amount"}},
		{"negative", `{"gemini/g": {"input_cost_per_token": -1e-6, "output_cost_per_token": 1e-5}}`,
			[]string{`["gemini/g"].input_cost_per_token`, "must not be negative"}},
		{"finer than a pico-dollar", `{"gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": 1e-13, "output_cost_per_token": 1e-5}}`,
			[]string{`["gpt-4o"].input_cost_per_token`, "pico-dollar"}},
		{"bool", `{"gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": true, "output_cost_per_token": 1e-5}}`,
			[]string{`["gpt-4o"].input_cost_per_token`}},
		{"bad tier price", `{"gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": 1e-6, "output_cost_per_token": 1e-5, "output_cost_per_token_above_200k_tokens": "x"}}`,
			[]string{`["gpt-4o"].output_cost_per_token_above_200k_tokens`}},
		{"zero threshold", `{"gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": 1e-6, "output_cost_per_token": 1e-5, "input_cost_per_token_above_0k_tokens": 2e-6}}`,
			[]string{`["gpt-4o"].input_cost_per_token_above_0k_tokens`, "positive"}},
		{"search sizes without medium", `{"gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": 1e-6, "output_cost_per_token": 1e-5, "search_context_cost_per_query": {"search_context_size_low": 0.01}}}`,
			[]string{`["gpt-4o"].search_context_cost_per_query`, "search_context_size_medium"}},
		{"two bad entries", `{"gpt-a": {"litellm_provider": "openai", "input_cost_per_token": "x", "output_cost_per_token": 1},
			"gpt-b": {"litellm_provider": "openai", "input_cost_per_token": 1, "output_cost_per_token": "y"}}`,
			[]string{`["gpt-a"].input_cost_per_token`, `["gpt-b"].output_cost_per_token`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, skipped, err := pricefile.Parse(strings.NewReader(tt.json), pricefile.FormatLiteLLM)
			if billing.ErrorCode(err) != billing.CodeInvalid {
				t.Fatalf("err = %v (prices %s, skipped %v), want invalid", err, dump(f.Prices), skipped)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if len(f.Prices) != 0 || skipped != nil {
				t.Errorf("a failed parse returned %s, %v", dump(f.Prices), skipped)
			}
		})
	}
}
