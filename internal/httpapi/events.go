package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// EventJSON is one usage event as clients send it. Token buckets are parts
// of tokens_input and tokens_output, as OpenAI reports them.
type EventJSON struct {
	EventID            string          `json:"event_id,omitempty" maxLength:"128" doc:"Idempotency key; resending it returns the first result. Minted by the server when omitted (then a resend is a new event)."`
	UserID             string          `json:"user_id,omitempty" maxLength:"128" doc:"Defaults to the key's user; admins must give it."`
	Provider           string          `json:"provider" maxLength:"64"`
	Model              string          `json:"model,omitempty" maxLength:"128"`
	Endpoint           string          `json:"endpoint,omitempty" maxLength:"512"`
	Method             string          `json:"method,omitempty" maxLength:"16"`
	TokensInput        int64           `json:"tokens_input,omitempty" minimum:"0"`
	TokensOutput       int64           `json:"tokens_output,omitempty" minimum:"0"`
	TokensCachedInput  int64           `json:"tokens_cached_input,omitempty" minimum:"0"`
	TokensCacheWrite5m int64           `json:"tokens_cache_write_5m,omitempty" minimum:"0"`
	TokensCacheWrite1h int64           `json:"tokens_cache_write_1h,omitempty" minimum:"0"`
	TokensReasoning    int64           `json:"tokens_reasoning,omitempty" minimum:"0"`
	RequestCount       int64           `json:"request_count,omitempty" minimum:"0"`
	SearchCount        int64           `json:"search_count,omitempty" minimum:"0"`
	ImageCount         int64           `json:"image_count,omitempty" minimum:"0"`
	PageCount          int64           `json:"page_count,omitempty" minimum:"0"`
	StatusCode         *int            `json:"status_code,omitempty" doc:"HTTP status of the call; 200 when omitted."`
	ResponseTime       float64         `json:"response_time,omitempty" doc:"Seconds."`
	Timestamp          *time.Time      `json:"timestamp,omitempty" doc:"When the call happened (RFC 3339); now when omitted."`
	ErrorMessage       string          `json:"error_message,omitempty"`
	RetryCount         int             `json:"retry_count,omitempty"`
	Partial            bool            `json:"partial,omitempty"`
	Metadata           json.RawMessage `json:"metadata,omitempty" doc:"A JSON object kept with the event."`
	ReservationID      string          `json:"reservation_id,omitempty" maxLength:"64" doc:"Settles this reservation with the event, in the same transaction."`
}

// UsageBatchJSON is the body of POST /usage: one event, or {"events": […]}.
type UsageBatchJSON struct {
	Events []EventJSON `json:"events" maxItems:"1000"`
}

// DecodeEvents reads POST /usage's body: either a single event object or
// {"events": [...]}. Unknown fields are refused so that a misspelt bucket is
// never silently billed as zero. Errors: invalid, naming the field.
func DecodeEvents(body []byte) ([]EventJSON, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, billing.InvalidField("body", "must be a JSON object: one event or {\"events\": [...]}", nil)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &probe); err != nil {
		return nil, jsonError("body", err)
	}
	if _, ok := probe["events"]; ok {
		var b UsageBatchJSON
		if err := strictDecode(trimmed, &b); err != nil {
			return nil, err
		}
		if b.Events == nil {
			return nil, billing.InvalidField("body.events", "must be an array of events", nil)
		}
		return b.Events, nil
	}
	var e EventJSON
	if err := strictDecode(trimmed, &e); err != nil {
		return nil, err
	}
	return []EventJSON{e}, nil
}

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError("body", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return billing.InvalidField("body", "has data after the JSON value", nil)
	}
	return nil
}

// jsonError names the field a JSON error is about.
func jsonError(location string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := location
		if te.Field != "" {
			field += "." + te.Field
		}
		return billing.InvalidField(field, fmt.Sprintf("expected %s, got JSON %s", te.Type, te.Value), nil)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return billing.InvalidField(location, "unknown field "+f, strings.Trim(f, `"`))
	}
	return billing.InvalidField(location, "malformed JSON: "+strings.TrimPrefix(msg, "json: "), nil)
}

// toEvent converts a decoded event, filling defaults.
func (e EventJSON) toEvent(now time.Time) billing.UsageEvent {
	ev := billing.UsageEvent{
		EventID: e.EventID, UserID: e.UserID, Provider: e.Provider, Model: e.Model, Endpoint: e.Endpoint,
		Method: e.Method, ResponseTime: e.ResponseTime, ErrorMessage: e.ErrorMessage, RetryCount: e.RetryCount,
		Partial: e.Partial, StatusCode: 200, Timestamp: now, ReservationID: e.ReservationID,
		Quantities: billing.Quantities{
			Input: e.TokensInput, Output: e.TokensOutput, CachedInput: e.TokensCachedInput,
			CacheWrite5m: e.TokensCacheWrite5m, CacheWrite1h: e.TokensCacheWrite1h, Reasoning: e.TokensReasoning,
			Requests: e.RequestCount, Searches: e.SearchCount, Images: e.ImageCount, Pages: e.PageCount,
		},
	}
	if e.StatusCode != nil {
		ev.StatusCode = *e.StatusCode
	}
	if e.Timestamp != nil {
		ev.Timestamp = e.Timestamp.UTC()
	}
	if len(e.Metadata) > 0 && string(e.Metadata) != "null" {
		var compact bytes.Buffer
		if json.Compact(&compact, e.Metadata) == nil {
			ev.Metadata = compact.String()
		} else {
			ev.Metadata = string(e.Metadata)
		}
	}
	return ev
}
