package pricefile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// litellmProviders maps LiteLLM's litellm_provider values to our providers.
// Vertex AI serves the Gemini models at Gemini's prices; other providers
// (Azure, Bedrock, OpenRouter …) are not metered by this service.
var litellmProviders = map[string]string{
	"openai":                    "openai",
	"anthropic":                 "anthropic",
	"gemini":                    "gemini",
	"vertex_ai-language-models": "gemini",
	"mistral":                   "mistral",
}

// litellmRank orders LiteLLM providers that map to the same provider of
// ours: when both list a model, the lower rank wins, so Gemini's own price
// is preferred to Vertex AI's.
var litellmRank = map[string]int{"vertex_ai-language-models": 1}

// litellmPrefixes are the "provider/" prefixes of LiteLLM's keys
// ("gemini/gemini-2.5-pro"), removed to get the model name calls use, and
// naming the provider when an entry lacks litellm_provider.
var litellmPrefixes = map[string]string{
	"openai": "openai", "anthropic": "anthropic", "gemini": "gemini", "mistral": "mistral",
	"vertex_ai": "vertex_ai-language-models",
}

// The LiteLLM fields read as token prices, by our bucket.
const (
	llInput       = "input_cost_per_token"
	llOutput      = "output_cost_per_token"
	llCachedInput = "cache_read_input_token_cost"
	llCacheWrite  = "cache_creation_input_token_cost"
	llCacheWrite1 = "cache_creation_input_token_cost_above_1hr"
	llReasoning   = "output_cost_per_reasoning_token"
	llPerRequest  = "input_cost_per_request"
	llPerSearch   = "search_context_cost_per_query"
	llSearchSize  = "search_context_size_medium"
	llPerImage    = "output_cost_per_image"
)

// llTiered matches the long-context form of a token price, such as
// input_cost_per_token_above_200k_tokens.
var llTiered = regexp.MustCompile(`^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|` +
	`cache_creation_input_token_cost|cache_creation_input_token_cost_above_1hr|output_cost_per_reasoning_token)` +
	`_above_([0-9]{1,9})k_tokens$`)

// parseLiteLLM reads LiteLLM's model_prices_and_context_window.json: an
// object keyed by model whose entries carry litellm_provider and prices
// per token in USD.
func parseLiteLLM(data []byte) (File, []Skipped, error) {
	top, err := object(data)
	if err != nil {
		return File{}, nil, billing.InvalidField("file", "a LiteLLM pricing file must be a JSON object keyed by model: "+err.Error(), nil)
	}
	if raw, ok := top["prices"]; ok && bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
		return File{}, nil, billing.InvalidField("prices", "this is an alwrity-billing pricing file, not a LiteLLM one: import it with format alwrity", nil)
	}
	var errs errorList
	var skipped []Skipped
	type candidate struct {
		key   string
		rank  int
		entry Entry
	}
	chosen := map[string]candidate{}
	for _, key := range sortedKeys(top) {
		skip := func(reason string) { skipped = append(skipped, Skipped{Model: key, Reason: reason}) }
		if key == "sample_spec" {
			skip("LiteLLM's description of the fields, not a model")
			continue
		}
		fields, err := object(top[key])
		if err != nil {
			skip("not a JSON object")
			continue
		}
		prefix, model, hasPrefix := strings.Cut(key, "/")
		if !hasPrefix || litellmPrefixes[prefix] == "" {
			model = key
		}
		lp := litellmPrefixes[prefix]
		if raw, ok := fields["litellm_provider"]; ok && !isNull(raw) {
			if err := json.Unmarshal(raw, &lp); err != nil {
				skip("litellm_provider is not a string")
				continue
			}
		}
		provider, ok := litellmProviders[lp]
		switch {
		case lp == "":
			skip("no litellm_provider")
			continue
		case !ok:
			skip(fmt.Sprintf("litellm_provider %q is not a provider this service meters", lp))
			continue
		}
		if m := checkName(model); m != "" {
			skip("the model name " + m)
			continue
		}
		loc := "[" + strconv.Quote(key) + "]"
		e, reason, fs := litellmEntry(fields, loc)
		if len(fs) > 0 {
			for i := range fs {
				fs[i].Message = key + ": " + fs[i].Message
			}
			errs.addAll(fs)
			continue
		}
		if reason != "" {
			skip(reason)
			continue
		}
		e.Provider, e.Model = provider, model
		if fs := ValidatePrice(e.Price(), loc); len(fs) > 0 {
			errs.addAll(fs)
			continue
		}
		id := provider + "/" + model
		c := candidate{key: key, rank: litellmRank[lp], entry: e}
		if prev, dup := chosen[id]; dup {
			if prev.rank <= c.rank {
				skip(fmt.Sprintf("the same model as %q, which is used instead", prev.key))
				continue
			}
			skipped = append(skipped, Skipped{Model: prev.key, Reason: fmt.Sprintf("the same model as %q, which is used instead", key)})
		}
		chosen[id] = c
	}
	if err := errs.err("LiteLLM pricing file"); err != nil {
		return File{}, nil, err
	}
	f := File{Prices: make([]Entry, 0, len(chosen))}
	for _, id := range sortedKeys(chosen) {
		f.Prices = append(f.Prices, chosen[id].entry)
	}
	sort.SliceStable(skipped, func(i, j int) bool { return skipped[i].Model < skipped[j].Model })
	return f, skipped, nil
}

// litellmEntry reads the prices of one LiteLLM entry. It returns a reason
// when the entry has no price this service can use, and the problems of
// any malformed price field.
func litellmEntry(fields map[string]json.RawMessage, loc string) (Entry, string, []billing.FieldError) {
	var fs []billing.FieldError
	price := func(field string) *money.Amount {
		raw, ok := fields[field]
		if !ok || isNull(raw) {
			return nil
		}
		a, err := amount(raw)
		if err != nil {
			fs = append(fs, billing.FieldError{Location: loc + "." + field, Message: err.Error(), Value: clipRaw(raw)})
			return nil
		}
		return &a
	}
	var e Entry
	in, out := price(llInput), price(llOutput)
	e.CachedInput, e.CacheWrite5m, e.CacheWrite1h = price(llCachedInput), price(llCacheWrite), price(llCacheWrite1)
	e.Reasoning = price(llReasoning)
	if a := price(llPerRequest); a != nil {
		e.PerRequest = *a
	}
	// An image a model generates (image_count of an event).
	if a := price(llPerImage); a != nil {
		e.PerImage = *a
	}
	var perSearch *money.Amount
	if raw, ok := fields[llPerSearch]; ok && !isNull(raw) {
		// Either one price per query or one per search context size, of
		// which the medium (LiteLLM's default) is used.
		if sizes, err := object(raw); err == nil {
			if medium, ok := sizes[llSearchSize]; ok && !isNull(medium) {
				if a, err := amount(medium); err != nil {
					fs = append(fs, billing.FieldError{Location: loc + "." + llPerSearch + "." + llSearchSize, Message: err.Error(), Value: clipRaw(medium)})
				} else {
					perSearch = &a
				}
			} else {
				fs = append(fs, billing.FieldError{Location: loc + "." + llPerSearch, Message: "has no " + llSearchSize, Value: nil})
			}
		} else {
			perSearch = price(llPerSearch)
		}
	}
	if perSearch != nil {
		e.PerSearch = *perSearch
	}
	lc := longContext(fields, loc, &fs)
	if len(fs) > 0 {
		return Entry{}, "", fs
	}
	mode := ""
	if raw, ok := fields["mode"]; ok {
		_ = json.Unmarshal(raw, &mode)
	}
	switch {
	case in != nil && out == nil && mode == "embedding":
		// Embeddings produce no output tokens.
		out = new(money.Amount)
	case in != nil && out == nil:
		return Entry{}, "has " + llInput + " but no " + llOutput, nil
	case in == nil && out != nil:
		return Entry{}, "has " + llOutput + " but no " + llInput, nil
	case in == nil && e.PerRequest == 0 && perSearch == nil && e.PerImage == 0:
		return Entry{}, "no usable price (" + llInput + ", " + llOutput + ", " + llPerRequest + ", " + llPerSearch +
			" or " + llPerImage + ")", nil
	}
	if in != nil {
		e.Input, e.Output = *in, *out
	}
	if in != nil && lc != nil {
		e.LongContext = lc.tier(e)
	}
	if allZero(e) {
		// LiteLLM writes 0 for free previews and for prices it does not
		// know; a model priced at 0 would never be flagged as unpriced.
		return Entry{}, "every price is 0 (add it explicitly if the model really is free)", nil
	}
	return e, "", nil
}

// llTier holds the long-context prices LiteLLM lists above one threshold.
type llTier struct {
	threshold int64
	prices    map[string]*money.Amount // base field name → price
}

// longContext returns the lowest-threshold long-context prices of an
// entry, or nil. This service bills one long-context rule per model; the
// lowest threshold is the one most requests cross.
func longContext(fields map[string]json.RawMessage, loc string, fs *[]billing.FieldError) *llTier {
	var best *llTier
	tiers := map[int64]*llTier{}
	for _, k := range sortedKeys(fields) {
		m := llTiered.FindStringSubmatch(k)
		if m == nil || isNull(fields[k]) {
			continue
		}
		thousands, _ := strconv.ParseInt(m[2], 10, 64) // at most 9 digits
		if thousands <= 0 || thousands > math.MaxInt64/1000 {
			*fs = append(*fs, billing.FieldError{Location: loc + "." + k, Message: "the threshold must be a positive number of tokens", Value: m[2]})
			continue
		}
		a, err := amount(fields[k])
		if err != nil {
			*fs = append(*fs, billing.FieldError{Location: loc + "." + k, Message: err.Error(), Value: clipRaw(fields[k])})
			continue
		}
		t := tiers[thousands*1000]
		if t == nil {
			t = &llTier{threshold: thousands * 1000, prices: map[string]*money.Amount{}}
			tiers[t.threshold] = t
		}
		t.prices[m[1]] = &a
		if best == nil || t.threshold < best.threshold {
			best = t
		}
	}
	return best
}

// tier builds the long-context tier as LiteLLM prices it: a bucket without
// its own long-context price keeps the base price (for input and output,
// the base tier's; for cache and reasoning buckets, the base bucket's, which
// itself may fall back).
func (t *llTier) tier(base Entry) *LongContext {
	or := func(field string, d *money.Amount) *money.Amount {
		if p := t.prices[field]; p != nil {
			return p
		}
		return clone(d)
	}
	lc := &LongContext{ThresholdTokens: t.threshold, Input: base.Input, Output: base.Output}
	if p := t.prices[llInput]; p != nil {
		lc.Input = *p
	}
	if p := t.prices[llOutput]; p != nil {
		lc.Output = *p
	}
	lc.CachedInput = or(llCachedInput, base.CachedInput)
	lc.CacheWrite5m = or(llCacheWrite, base.CacheWrite5m)
	lc.CacheWrite1h = or(llCacheWrite1, base.CacheWrite1h)
	lc.Reasoning = or(llReasoning, base.Reasoning)
	return lc
}

func allZero(e Entry) bool {
	zero := func(ps ...*money.Amount) bool {
		for _, p := range ps {
			if p != nil && *p != 0 {
				return false
			}
		}
		return true
	}
	if e.Input != 0 || e.Output != 0 || e.PerRequest != 0 || e.PerSearch != 0 || e.PerImage != 0 || e.PerPage != 0 ||
		!zero(e.CachedInput, e.CacheWrite5m, e.CacheWrite1h, e.Reasoning) {
		return false
	}
	if lc := e.LongContext; lc != nil {
		return lc.Input == 0 && lc.Output == 0 && zero(lc.CachedInput, lc.CacheWrite5m, lc.CacheWrite1h, lc.Reasoning)
	}
	return true
}
