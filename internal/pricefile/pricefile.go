// Package pricefile reads and writes pricing files, so prices can be changed
// without code: alwrity-billing's own JSON format (the export format, which
// imports back unchanged) and LiteLLM's widely used
// model_prices_and_context_window.json. Money is read from the decimal text
// of the file, never through float64, so 2.5e-06 is exactly 2,500,000
// pico-dollars.
package pricefile

import (
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// The formats Parse reads.
const (
	// FormatAlwrity is alwrity-billing's own format, the one Write writes.
	FormatAlwrity = "alwrity"
	// FormatLiteLLM is LiteLLM's model_prices_and_context_window.json.
	FormatLiteLLM = "litellm"
)

// Formats lists the formats Parse reads, for usage texts and validation.
var Formats = []string{FormatAlwrity, FormatLiteLLM}

// MaxBytes bounds a pricing file. LiteLLM's full file is about 1 MiB, so
// 32 MiB leaves room for growth while keeping a hostile upload from
// exhausting memory.
const MaxBytes = 32 << 20

// maxErrors bounds how many problems one parse reports: enough to fix a
// file in one go, not so many that a broken file makes a huge response.
const maxErrors = 50

// maxNameLen matches the longest model name a usage event may carry: a
// longer price name could never match one.
const maxNameLen = 128

// maxDescriptionLen bounds a price's description.
const maxDescriptionLen = 1000

// File is the content of a pricing file.
type File struct {
	Prices  []Entry `json:"prices"`
	Aliases []Alias `json:"aliases,omitempty"`
}

// Entry is one price version in a pricing file. Amounts are USD per token
// (or per request, search, image or page). The optional token buckets are
// nil when the model has no separate price for them: cached input and cache
// writes then cost the input price and reasoning the output price.
type Entry struct {
	Provider string `json:"provider" doc:"A known provider, such as openai."`
	Model    string `json:"model" doc:"The model name calls are priced by."`
	// EffectiveFrom is when the version takes effect; nil on import means
	// the import's own time.
	EffectiveFrom *time.Time    `json:"effective_from,omitempty" doc:"When this version takes effect (RFC 3339); on import it defaults to the import's time."`
	EffectiveTo   *time.Time    `json:"effective_to,omitempty" doc:"When this version stops applying (RFC 3339); absent means until a later version."`
	Description   string        `json:"description,omitempty"`
	Input         money.Amount  `json:"input" doc:"USD per uncached input token."`
	Output        money.Amount  `json:"output" doc:"USD per output token."`
	CachedInput   *money.Amount `json:"cached_input,omitempty" doc:"USD per cached input token read; absent means the input price."`
	CacheWrite5m  *money.Amount `json:"cache_write_5m,omitempty" doc:"USD per token written to a 5-minute cache; absent means the input price."`
	CacheWrite1h  *money.Amount `json:"cache_write_1h,omitempty" doc:"USD per token written to a 1-hour cache; absent means the input price."`
	Reasoning     *money.Amount `json:"reasoning,omitempty" doc:"USD per reasoning token; absent means the output price."`
	PerRequest    money.Amount  `json:"per_request,omitempty" doc:"USD per request."`
	PerSearch     money.Amount  `json:"per_search,omitempty" doc:"USD per search."`
	PerImage      money.Amount  `json:"per_image,omitempty" doc:"USD per image."`
	PerPage       money.Amount  `json:"per_page,omitempty" doc:"USD per page."`
	LongContext   *LongContext  `json:"long_context,omitempty" doc:"Prices for the whole request once its prompt exceeds threshold_tokens."`
}

// LongContext is the second set of token prices a request pays, in full,
// once its prompt exceeds ThresholdTokens (as Gemini and Anthropic bill).
type LongContext struct {
	ThresholdTokens int64         `json:"threshold_tokens"`
	Input           money.Amount  `json:"input"`
	Output          money.Amount  `json:"output"`
	CachedInput     *money.Amount `json:"cached_input,omitempty"`
	CacheWrite5m    *money.Amount `json:"cache_write_5m,omitempty"`
	CacheWrite1h    *money.Amount `json:"cache_write_1h,omitempty"`
	Reasoning       *money.Amount `json:"reasoning,omitempty"`
}

// Alias prices calls to Alias as calls to Model of the same provider.
type Alias struct {
	Provider string `json:"provider"`
	Alias    string `json:"alias"`
	Model    string `json:"model"`
}

// Skipped is an entry of a foreign file that Parse did not import, and why.
type Skipped struct {
	Model  string `json:"model"`
	Reason string `json:"reason"`
}

// Parse reads a pricing file in format (FormatAlwrity or FormatLiteLLM) of
// at most MaxBytes. Entries of a foreign file that cannot be priced here (an
// unsupported provider, no usable price) are returned as skipped, each with
// its reason; anything malformed is an error naming the entry and field, and
// then nothing is returned. Errors: invalid, too_large.
func Parse(r io.Reader, format string) (File, []Skipped, error) {
	parse, err := parser(format)
	if err != nil {
		return File{}, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxBytes+1))
	if err != nil {
		return File{}, nil, fmt.Errorf("read pricing file: %w", err)
	}
	if len(data) > MaxBytes {
		return File{}, nil, billing.Errorf(billing.CodeTooLarge, "the pricing file is larger than %d MiB", MaxBytes>>20)
	}
	return parse(data)
}

func parser(format string) (func([]byte) (File, []Skipped, error), error) {
	switch format {
	case FormatAlwrity, "":
		return func(b []byte) (File, []Skipped, error) { f, err := parseAlwrity(b); return f, nil, err }, nil
	case FormatLiteLLM:
		return parseLiteLLM, nil
	}
	return nil, billing.InvalidField("format", fmt.Sprintf("unknown pricing file format %q; known formats: %s",
		format, strings.Join(Formats, ", ")), format)
}

// errorList collects the problems of one parse, up to maxErrors.
type errorList struct {
	fields []billing.FieldError
	more   int
}

func (l *errorList) add(location, message string, value any) {
	if len(l.fields) >= maxErrors {
		l.more++
		return
	}
	l.fields = append(l.fields, billing.FieldError{Location: location, Message: message, Value: value})
}

func (l *errorList) addAll(fs []billing.FieldError) {
	for _, f := range fs {
		l.add(f.Location, f.Message, f.Value)
	}
}

// err returns the collected problems as one invalid error, or nil.
func (l *errorList) err(what string) error {
	if len(l.fields) == 0 {
		return nil
	}
	msgs := make([]string, len(l.fields))
	for i, f := range l.fields {
		msgs[i] = f.Location + ": " + f.Message
	}
	msg := "invalid " + what + ": " + strings.Join(msgs, "; ")
	if l.more > 0 {
		msg += fmt.Sprintf("; and %d more problems", l.more)
	}
	return &billing.Error{Code: billing.CodeInvalid, Message: msg, Fields: l.fields}
}

// checkName reports what is wrong with a provider, model or alias name, or
// "" when nothing is. The rules are those of usage events' model names, so
// every price can be matched by some event.
func checkName(s string) string {
	switch {
	case s == "":
		return "is required"
	case len(s) > maxNameLen:
		return fmt.Sprintf("must be at most %d characters", maxNameLen)
	case !printable(s):
		return "must be printable text without tabs or line breaks"
	case strings.TrimSpace(s) != s:
		return "must not start or end with spaces"
	}
	return ""
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// ValidatePrice checks a price version as a pricing file would: names,
// non-negative amounts, a complete long-context rule and an end after the
// start. Locations are prefix + "." + the file's field names.
func ValidatePrice(p billing.Price, prefix string) []billing.FieldError {
	var fs []billing.FieldError
	loc := func(field string) string {
		if prefix == "" {
			return field
		}
		return prefix + "." + field
	}
	who := p.Provider + "/" + p.ModelName
	bad := func(field, msg string, v any) {
		fs = append(fs, billing.FieldError{Location: loc(field), Message: who + ": " + msg, Value: v})
	}
	if m := checkName(p.Provider); m != "" {
		bad("provider", m, p.Provider)
	}
	if m := checkName(p.ModelName); m != "" {
		bad("model", m, p.ModelName)
	}
	if len(p.Description) > maxDescriptionLen {
		bad("description", fmt.Sprintf("must be at most %d characters", maxDescriptionLen), len(p.Description))
	} else if !utf8.ValidString(p.Description) {
		bad("description", "must be valid UTF-8 text", nil)
	}
	amount := func(field string, a money.Amount) {
		if a < 0 {
			bad(field, "must not be negative", a)
		}
	}
	optional := func(field string, a *money.Amount) {
		if a != nil {
			amount(field, *a)
		}
	}
	tier := func(pre string, t billing.PriceTier) {
		amount(pre+"input", t.Input)
		amount(pre+"output", t.Output)
		optional(pre+"cached_input", t.CachedInput)
		optional(pre+"cache_write_5m", t.CacheWrite5m)
		optional(pre+"cache_write_1h", t.CacheWrite1h)
		optional(pre+"reasoning", t.Reasoning)
	}
	tier("", p.Tier)
	amount("per_request", p.PerRequest)
	amount("per_search", p.PerSearch)
	amount("per_image", p.PerImage)
	amount("per_page", p.PerPage)
	switch {
	case p.LongContext == nil && p.LongContextThreshold != nil:
		bad("long_context", "a threshold needs its prices", *p.LongContextThreshold)
	case p.LongContext != nil && p.LongContextThreshold == nil:
		bad("long_context.threshold_tokens", "is required", nil)
	case p.LongContext != nil:
		if *p.LongContextThreshold <= 0 {
			bad("long_context.threshold_tokens", "must be a positive number of tokens", *p.LongContextThreshold)
		}
		tier("long_context.", *p.LongContext)
	}
	if p.EffectiveTo != nil && !p.EffectiveFrom.IsZero() && !p.EffectiveTo.After(p.EffectiveFrom) {
		bad("effective_to", "must be after effective_from", p.EffectiveTo.Format(time.RFC3339Nano))
	}
	return fs
}

// ValidateAlias checks an alias's names. Locations are prefix + "." + the
// file's field names.
func ValidateAlias(a Alias, prefix string) []billing.FieldError {
	var fs []billing.FieldError
	for _, f := range []struct{ field, v string }{{"provider", a.Provider}, {"alias", a.Alias}, {"model", a.Model}} {
		if m := checkName(f.v); m != "" {
			loc := f.field
			if prefix != "" {
				loc = prefix + "." + f.field
			}
			fs = append(fs, billing.FieldError{Location: loc, Message: m, Value: f.v})
		}
	}
	if len(fs) == 0 && a.Alias == a.Model {
		loc := "alias"
		if prefix != "" {
			loc = prefix + ".alias"
		}
		fs = append(fs, billing.FieldError{Location: loc, Message: "must differ from the model it stands for", Value: a.Alias})
	}
	return fs
}

// ValidationError wraps field errors from ValidatePrice or ValidateAlias
// into one invalid error, or returns nil when there are none.
func ValidationError(what string, fs []billing.FieldError) error {
	l := errorList{}
	l.addAll(fs)
	return l.err(what)
}
