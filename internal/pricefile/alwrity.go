package pricefile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// Write writes f in alwrity-billing's format, indented, with money as exact
// decimal numbers. What it writes, Parse reads back to the same File.
func Write(w io.Writer, f File) error {
	if f.Prices == nil {
		f.Prices = []Entry{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// Model names and descriptions are written as they are, not as
	// \u003c escapes: a pricing file is data, not HTML.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f); err != nil {
		return fmt.Errorf("write pricing file: %w", err)
	}
	return nil
}

// The fields of an entry, for rejecting unknown ones (a misspelt
// "cached_inptu" must not silently leave a bucket unpriced).
var (
	entryFields = fieldSet("provider", "model", "effective_from", "effective_to", "description", "input", "output",
		"cached_input", "cache_write_5m", "cache_write_1h", "reasoning", "per_request", "per_search", "per_image",
		"per_page", "long_context")
	longContextFields = fieldSet("threshold_tokens", "input", "output", "cached_input", "cache_write_5m",
		"cache_write_1h", "reasoning")
	aliasFields = fieldSet("provider", "alias", "model")
)

func fieldSet(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

func parseAlwrity(data []byte) (File, error) {
	var errs errorList
	top, err := object(data)
	if err != nil {
		return File{}, billing.InvalidField("file", "must be a JSON object with a \"prices\" array: "+err.Error(), nil)
	}
	_, hasPrices := top["prices"]
	_, hasAliases := top["aliases"]
	for _, k := range sortedKeys(top) {
		if k != "prices" && k != "aliases" {
			hint := ""
			if !hasPrices && !hasAliases {
				hint = " (a LiteLLM file? import it with format litellm)"
			}
			errs.add(k, "unknown field"+hint, nil)
		}
	}
	if !hasPrices && !hasAliases && len(errs.fields) == 0 {
		errs.add("prices", "is required", nil)
	}
	var f File
	var raws []json.RawMessage
	if hasPrices && !isNull(top["prices"]) {
		if err := json.Unmarshal(top["prices"], &raws); err != nil {
			errs.add("prices", "must be an array of price entries", nil)
		}
	}
	f.Prices = make([]Entry, 0, len(raws))
	seen := map[string]int{}
	for i, raw := range raws {
		loc := fmt.Sprintf("prices[%d]", i)
		e, fs := parseEntry(raw, loc)
		errs.addAll(fs)
		if len(fs) > 0 {
			continue
		}
		key := e.Provider + "\x00" + e.Model + "\x00"
		if e.EffectiveFrom != nil {
			key += e.EffectiveFrom.Format(time.RFC3339Nano)
		}
		if j, dup := seen[key]; dup {
			errs.add(loc, fmt.Sprintf("%s/%s: repeats prices[%d] (same model and effective_from)", e.Provider, e.Model, j), nil)
			continue
		}
		seen[key] = i
		f.Prices = append(f.Prices, e)
	}
	if hasAliases && !isNull(top["aliases"]) {
		var raws []json.RawMessage
		if err := json.Unmarshal(top["aliases"], &raws); err != nil {
			errs.add("aliases", "must be an array of aliases", nil)
		}
		seen := map[string]int{}
		for i, raw := range raws {
			loc := fmt.Sprintf("aliases[%d]", i)
			a, fs := parseAlias(raw, loc)
			errs.addAll(fs)
			if len(fs) > 0 {
				continue
			}
			key := a.Provider + "\x00" + a.Alias
			if j, dup := seen[key]; dup {
				errs.add(loc, fmt.Sprintf("repeats the alias %s/%s of aliases[%d]", a.Provider, a.Alias, j), a.Alias)
				continue
			}
			seen[key] = i
			f.Aliases = append(f.Aliases, a)
		}
	}
	if err := errs.err("pricing file"); err != nil {
		return File{}, err
	}
	return f, nil
}

// ParseEntry reads one price entry in alwrity-billing's format, such as the
// body of a request that adds a price version; locations in errors start
// with prefix (for example "body"). Errors: invalid.
func ParseEntry(data []byte, prefix string) (Entry, error) {
	e, fs := parseEntry(data, prefix)
	if len(fs) > 0 {
		return Entry{}, ValidationError("price", fs)
	}
	return e, nil
}

// parseEntry reads one entry and validates it, returning every problem.
func parseEntry(raw []byte, loc string) (Entry, []billing.FieldError) {
	var e Entry
	var fs []billing.FieldError
	at := func(field string) string {
		if loc == "" {
			return field
		}
		return loc + "." + field
	}
	bad := func(field, msg string, v any) {
		fs = append(fs, billing.FieldError{Location: at(field), Message: msg, Value: v})
	}
	m, err := object(raw)
	if err != nil {
		where := loc
		if where == "" {
			where = "body"
		}
		return e, []billing.FieldError{{Location: where, Message: "must be a JSON object: " + err.Error()}}
	}
	for _, k := range sortedKeys(m) {
		if !entryFields[k] {
			bad(k, "unknown field", nil)
		}
	}
	e.Provider = str(m, "provider", bad)
	e.Model = str(m, "model", bad)
	e.Description = str(m, "description", bad)
	e.EffectiveFrom = timestamp(m, "effective_from", bad)
	e.EffectiveTo = timestamp(m, "effective_to", bad)
	e.Input = required(m, "input", bad)
	e.Output = required(m, "output", bad)
	e.CachedInput = optional(m, "cached_input", bad)
	e.CacheWrite5m = optional(m, "cache_write_5m", bad)
	e.CacheWrite1h = optional(m, "cache_write_1h", bad)
	e.Reasoning = optional(m, "reasoning", bad)
	e.PerRequest = fee(m, "per_request", bad)
	e.PerSearch = fee(m, "per_search", bad)
	e.PerImage = fee(m, "per_image", bad)
	e.PerPage = fee(m, "per_page", bad)
	if raw, ok := m["long_context"]; ok && !isNull(raw) {
		lm, err := object(raw)
		if err != nil {
			bad("long_context", "must be an object: "+err.Error(), nil)
		} else {
			lbad := func(field, msg string, v any) { bad("long_context."+field, msg, v) }
			for _, k := range sortedKeys(lm) {
				if !longContextFields[k] {
					lbad(k, "unknown field", nil)
				}
			}
			lc := &LongContext{
				Input: required(lm, "input", lbad), Output: required(lm, "output", lbad),
				CachedInput: optional(lm, "cached_input", lbad), CacheWrite5m: optional(lm, "cache_write_5m", lbad),
				CacheWrite1h: optional(lm, "cache_write_1h", lbad), Reasoning: optional(lm, "reasoning", lbad),
			}
			if t, ok := lm["threshold_tokens"]; !ok || isNull(t) {
				lbad("threshold_tokens", "is required", nil)
			} else if n, err := strconv.ParseInt(string(bytes.TrimSpace(t)), 10, 64); err != nil {
				lbad("threshold_tokens", "must be a whole number of tokens", clipRaw(t))
			} else {
				lc.ThresholdTokens = n
			}
			e.LongContext = lc
		}
	}
	if len(fs) > 0 {
		if e.Provider != "" && e.Model != "" {
			// Name the entry, not only its index, in every message.
			for i := range fs {
				fs[i].Message = e.Provider + "/" + e.Model + ": " + fs[i].Message
			}
		}
		return Entry{}, fs
	}
	if fs := ValidatePrice(e.Price(), loc); len(fs) > 0 {
		return Entry{}, fs
	}
	return e, nil
}

func parseAlias(raw []byte, loc string) (Alias, []billing.FieldError) {
	var fs []billing.FieldError
	bad := func(field, msg string, v any) {
		fs = append(fs, billing.FieldError{Location: loc + "." + field, Message: msg, Value: v})
	}
	m, err := object(raw)
	if err != nil {
		return Alias{}, []billing.FieldError{{Location: loc, Message: "must be a JSON object: " + err.Error()}}
	}
	for _, k := range sortedKeys(m) {
		if !aliasFields[k] {
			bad(k, "unknown field", nil)
		}
	}
	a := Alias{Provider: str(m, "provider", bad), Alias: str(m, "alias", bad), Model: str(m, "model", bad)}
	if len(fs) > 0 {
		return Alias{}, fs
	}
	if fs := ValidateAlias(a, loc); len(fs) > 0 {
		return Alias{}, fs
	}
	return a, nil
}

type badFunc func(field, msg string, v any)

// str reads an optional string field; ValidatePrice checks required ones.
func str(m map[string]json.RawMessage, field string, bad badFunc) string {
	raw, ok := m[field]
	if !ok || isNull(raw) {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		bad(field, "must be a string", clipRaw(raw))
		return ""
	}
	return s
}

func timestamp(m map[string]json.RawMessage, field string, bad badFunc) *time.Time {
	raw, ok := m[field]
	if !ok || isNull(raw) {
		return nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		bad(field, "must be an RFC 3339 time such as 2026-01-01T00:00:00Z", clipRaw(raw))
		return nil
	}
	t, err := ParseTime(s)
	if err != nil {
		bad(field, err.Error(), s)
		return nil
	}
	return &t
}

// ParseTime reads an RFC 3339 time, such as 2026-01-01T00:00:00Z, in UTC.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("must be an RFC 3339 time such as 2026-01-01T00:00:00Z")
	}
	return t.UTC(), nil
}

func required(m map[string]json.RawMessage, field string, bad badFunc) money.Amount {
	raw, ok := m[field]
	if !ok || isNull(raw) {
		bad(field, "is required (write 0 for a free bucket)", nil)
		return 0
	}
	a, err := amount(raw)
	if err != nil {
		bad(field, err.Error(), clipRaw(raw))
	}
	return a
}

func optional(m map[string]json.RawMessage, field string, bad badFunc) *money.Amount {
	raw, ok := m[field]
	if !ok || isNull(raw) {
		return nil
	}
	a, err := amount(raw)
	if err != nil {
		bad(field, err.Error(), clipRaw(raw))
		return nil
	}
	return &a
}

func fee(m map[string]json.RawMessage, field string, bad badFunc) money.Amount {
	if a := optional(m, field, bad); a != nil {
		return *a
	}
	return 0
}

// amount reads money from a JSON number or a string holding one, through
// its decimal text: 2.5e-06 is exactly 2,500,000 pico-dollars.
func amount(raw json.RawMessage) (money.Amount, error) {
	const want = "must be a decimal amount in USD, such as 0.0000025 or \"0.0000025\""
	raw = bytes.TrimSpace(raw)
	text := string(raw)
	if len(raw) > 0 && raw[0] == '"' {
		if err := json.Unmarshal(raw, &text); err != nil {
			return 0, errors.New(want)
		}
	} else if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return 0, errors.New(want)
	}
	a, err := money.Parse(text)
	switch {
	case errors.Is(err, money.ErrPrecision):
		return 0, errors.New("has digits below one pico-dollar (0.000000000001 USD), which cannot be billed exactly")
	case errors.Is(err, money.ErrOverflow):
		return 0, errors.New("is out of range")
	case err != nil:
		return 0, errors.New(want)
	case a < 0:
		return 0, errors.New("must not be negative")
	}
	return a, nil
}

// object decodes a JSON object keeping each value's text, and refuses
// anything after it.
func object(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		return nil, jsonError(err)
	}
	if m == nil {
		return nil, fmt.Errorf("null is not an object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the object")
	}
	return m, nil
}

// jsonError rewords encoding/json's errors without Go type names.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == io.EOF:
		return fmt.Errorf("empty input")
	case errors.As(err, &syn):
		return fmt.Errorf("malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		return fmt.Errorf("found a JSON %s", typ.Value)
	}
	return fmt.Errorf("malformed JSON: %v", err)
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// clipRaw returns a short form of a JSON value for error reports.
func clipRaw(raw json.RawMessage) string {
	const max = 40
	s := string(bytes.TrimSpace(raw))
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
