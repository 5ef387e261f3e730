package billing

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/alwrity/alwrity-billing/internal/money"
)

// Limits on what one event may say. Counts beyond these are not usage but
// bugs (or attacks), and are refused rather than billed.
const (
	MaxEventAge       = 35 * 24 * time.Hour
	MaxEventSkew      = 5 * time.Minute
	MaxTokensPerEvent = 100_000_000
	MaxUnitsPerEvent  = 1_000_000
	MaxMetadataBytes  = 16 << 10
	MaxBatchEvents    = 1000
)

// UsageEvent is one metered call as a client reports it.
type UsageEvent struct {
	EventID      string
	UserID       string
	Provider     string
	Model        string
	Endpoint     string
	Method       string
	Quantities   Quantities
	StatusCode   int
	ResponseTime float64 // seconds
	Timestamp    time.Time
	ErrorMessage string
	RetryCount   int
	Metadata     string // a JSON object, or ""
	Partial      bool
	// ReservationID, when set, settles that reservation with this event.
	ReservationID string
}

// EventResult is what recording an event did. A resent event returns the
// result of its first recording.
type EventResult struct {
	EventID       string
	Status        string // recorded | duplicate
	Cost          money.Amount
	BillingPeriod string
	Unpriced      bool
}

// Event result statuses.
const (
	EventRecorded  = "recorded"
	EventDuplicate = "duplicate"
	// EventConflict: the event settles a reservation that another event
	// settled; it is not stored.
	EventConflict = "conflict"
)

// Validate checks one event against the clock, naming every bad field
// with the prefix (e.g. "body.events[3]").
func (e UsageEvent) Validate(prefix string, now time.Time) []FieldError {
	var fs []FieldError
	bad := func(field, msg string, v any) {
		fs = append(fs, FieldError{Location: prefix + "." + field, Message: msg, Value: v})
	}
	ident := func(field, v string, required bool) {
		if msg := IdentProblem(v, required); msg != "" {
			bad(field, msg, v)
		}
	}
	ident("event_id", e.EventID, true)
	ident("user_id", e.UserID, true)
	ident("provider", e.Provider, true)
	ident("model", e.Model, false)
	ident("reservation_id", e.ReservationID, false)
	text := func(field, v string, maxBytes int) {
		switch {
		case len(v) > maxBytes:
			bad(field, fmt.Sprintf("must be at most %d bytes", maxBytes), len(v))
		case !isText(v):
			bad(field, "must be UTF-8 text without NUL characters", nil)
		}
	}
	text("endpoint", e.Endpoint, MaxEndpointBytes)
	text("error_message", e.ErrorMessage, MaxErrorMessageBytes)
	if e.Method != "" && CleanMethod(e.Method) != e.Method {
		bad("method", fmt.Sprintf("must be an HTTP method (a token of at most %d characters)", MaxMethodBytes), e.Method)
	}
	switch {
	case e.Timestamp.IsZero():
		bad("timestamp", "is required", nil)
	case e.Timestamp.Before(now.Add(-MaxEventAge)):
		bad("timestamp", fmt.Sprintf("is more than %d days old", int(MaxEventAge.Hours()/24)), e.Timestamp)
	case e.Timestamp.After(now.Add(MaxEventSkew)):
		bad("timestamp", "is more than 5 minutes in the future", e.Timestamp)
	}
	if e.StatusCode < 100 || e.StatusCode > 599 {
		bad("status_code", "must be an HTTP status between 100 and 599", e.StatusCode)
	}
	if e.ResponseTime < 0 || e.ResponseTime > 24*3600 || e.ResponseTime != e.ResponseTime {
		bad("response_time", "must be between 0 and 86400 seconds", e.ResponseTime)
	}
	if e.RetryCount < 0 || e.RetryCount > 1000 {
		bad("retry_count", "must be between 0 and 1000", e.RetryCount)
	}
	if e.Metadata != "" {
		switch {
		case len(e.Metadata) > MaxMetadataBytes:
			bad("metadata", fmt.Sprintf("must be at most %d bytes", MaxMetadataBytes), len(e.Metadata))
		case !utf8.ValidString(e.Metadata) || !isJSONObject(e.Metadata):
			bad("metadata", "must be a JSON object", nil)
		}
	}
	q := e.Quantities
	fieldsBefore := len(fs)
	for _, c := range []struct {
		field string
		v     int64
		max   int64
	}{
		{"tokens_input", q.Input, MaxTokensPerEvent}, {"tokens_output", q.Output, MaxTokensPerEvent},
		{"tokens_cached_input", q.CachedInput, MaxTokensPerEvent}, {"tokens_cache_write_5m", q.CacheWrite5m, MaxTokensPerEvent},
		{"tokens_cache_write_1h", q.CacheWrite1h, MaxTokensPerEvent}, {"tokens_reasoning", q.Reasoning, MaxTokensPerEvent},
		{"request_count", q.Requests, MaxUnitsPerEvent}, {"search_count", q.Searches, MaxUnitsPerEvent},
		{"image_count", q.Images, MaxUnitsPerEvent}, {"page_count", q.Pages, MaxUnitsPerEvent},
	} {
		switch {
		case c.v < 0:
			bad(c.field, "must not be negative", c.v)
		case c.v > c.max:
			bad(c.field, fmt.Sprintf("must be at most %d", c.max), c.v)
		}
	}
	// The buckets are checked against their totals once every count is in
	// range, whatever else is wrong with the event, so that a refusal names
	// every bad field at once.
	if len(fs) == fieldsBefore {
		if err := q.Validate(); err != nil {
			var be *Error
			if errors.As(err, &be) {
				for _, f := range be.Fields {
					bad(f.Location, f.Message, f.Value)
				}
			}
		}
	}
	return fs
}

// SameContent reports whether two events with one id say the same thing,
// so that a batch may repeat an event but not contradict itself.
func (e UsageEvent) SameContent(o UsageEvent) bool {
	return e.UserID == o.UserID && e.Provider == o.Provider && e.Model == o.Model && e.Endpoint == o.Endpoint &&
		e.Method == o.Method && e.Quantities == o.Quantities && e.StatusCode == o.StatusCode &&
		e.ResponseTime == o.ResponseTime && e.Timestamp.Equal(o.Timestamp) && e.ErrorMessage == o.ErrorMessage &&
		e.RetryCount == o.RetryCount && e.Metadata == o.Metadata && e.Partial == o.Partial &&
		e.ReservationID == o.ReservationID
}

// Log returns the ledger row for the event, rated by charge in period p.
func (e UsageEvent) Log(p Period, c Charge, unpriced bool) UsageLog {
	q := e.Quantities
	return UsageLog{
		EventID: e.EventID, UserID: e.UserID, Provider: e.Provider, ModelUsed: e.Model, Endpoint: e.Endpoint,
		Method: e.Method, TokensInput: q.Input, TokensOutput: q.Output, TokensCachedInput: q.CachedInput,
		TokensCacheWrite5m: q.CacheWrite5m, TokensCacheWrite1h: q.CacheWrite1h, TokensReasoning: q.Reasoning,
		RequestCount: q.Requests, SearchCount: q.Searches, ImageCount: q.Images, PageCount: q.Pages,
		CostInput: c.Input, CostOutput: c.Output, CostTotal: c.Total, ResponseTime: e.ResponseTime,
		StatusCode: e.StatusCode, ErrorMessage: e.ErrorMessage, RetryCount: e.RetryCount, Unpriced: unpriced,
		Partial: e.Partial, Metadata: e.Metadata, Timestamp: e.Timestamp.UTC(), BillingPeriod: p.Key, PeriodStart: p.Start,
	}
}

// isJSONObject reports whether s is one JSON object (not null, an array
// or a scalar). It checks without decoding: every recorded call passes
// here.
func isJSONObject(s string) bool {
	t := strings.TrimLeft(s, " \t\r\n")
	return strings.HasPrefix(t, "{") && json.Valid([]byte(t))
}
