package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
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
// never silently billed as zero. Each event of a batch is decoded on its
// own, so that every problem is named by its event and field
// ("body.events[3].tokens_input"), as a client needs to fix its batch.
// Errors: invalid, naming each bad field.
func DecodeEvents(body []byte) ([]EventJSON, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, billing.InvalidField("body", "must be a JSON object: one event or {\"events\": [...]}", nil)
	}
	// Fast path: a well-formed batch decodes in one pass. Anything else
	// (a single event, or any error) takes the slower path below, which
	// names every bad event and field.
	var batch UsageBatchJSON
	if strictDecode(trimmed, "body", &batch) == nil && batch.Events != nil {
		if err := checkBatchSize(len(batch.Events)); err != nil {
			return nil, err
		}
		return batch.Events, nil
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &probe); err != nil {
		return nil, jsonError("body", err)
	}
	raw, isBatch := probe["events"]
	if !isBatch {
		var e EventJSON
		if err := strictDecode(trimmed, "body", &e); err != nil {
			return nil, err
		}
		return []EventJSON{e}, nil
	}
	var fields []billing.FieldError
	for _, k := range slices.Sorted(maps.Keys(probe)) {
		if k != "events" {
			fields = append(fields, billing.FieldError{Location: "body." + k, Message: "unknown field (a batch holds only \"events\")", Value: k})
		}
	}
	if len(fields) > 0 {
		return nil, decodeRefusal(fields)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		return nil, billing.InvalidField("body.events", "must be an array of events", nil)
	}
	if err := checkBatchSize(len(items)); err != nil {
		return nil, err
	}
	events := make([]EventJSON, len(items))
	for i, item := range items {
		if err := strictDecode(item, fmt.Sprintf("body.events[%d]", i), &events[i]); err != nil {
			var be *billing.Error
			if errors.As(err, &be) {
				fields = append(fields, be.Fields...)
			}
		}
	}
	if len(fields) > 0 {
		return nil, decodeRefusal(fields)
	}
	return events, nil
}

// decodeRefusal refuses a batch whose events could not be decoded, naming
// the first few problems in the message and every one in the fields.
// checkBatchSize refuses an empty batch and one over the limit.
func checkBatchSize(n int) error {
	switch {
	case n == 0:
		return billing.InvalidField("body.events", "must hold at least one event", 0)
	case n > billing.MaxBatchEvents:
		return &billing.Error{Code: billing.CodeInvalid,
			Message: fmt.Sprintf("a batch holds at most %d events, got %d", billing.MaxBatchEvents, n),
			Fields:  []billing.FieldError{{Location: "body.events", Message: "too many events", Value: n}}}
	}
	return nil
}

func decodeRefusal(fields []billing.FieldError) error {
	msgs := make([]string, 0, min(len(fields), 5))
	for _, f := range fields[:min(len(fields), 5)] {
		msgs = append(msgs, f.Location+": "+f.Message)
	}
	more := ""
	if len(fields) > 5 {
		more = fmt.Sprintf(" (and %d more)", len(fields)-5)
	}
	return &billing.Error{Code: billing.CodeInvalid,
		Message: "the batch was refused and nothing was stored: " + strings.Join(msgs, "; ") + more, Fields: fields}
}

// strictDecode decodes one JSON value into v, refusing unknown fields and
// trailing data; errors name their field under location.
func strictDecode(b []byte, location string, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(location, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return billing.InvalidField(location, "has data after the JSON value", nil)
	}
	return nil
}

// jsonError names the field a JSON error is about. The only field of an
// event whose own decoder can fail is its timestamp (time.Time), so a time
// error is reported there.
func jsonError(location string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := location
		if te.Field != "" {
			field += "." + te.Field
		}
		return billing.InvalidField(field, fmt.Sprintf("must be %s, got JSON %s", jsonKind(te.Type), te.Value), nil)
	}
	var pe *time.ParseError
	msg := err.Error()
	if errors.As(err, &pe) || strings.HasPrefix(msg, "Time.UnmarshalJSON") {
		return billing.InvalidField(location+".timestamp", "must be an RFC 3339 time, such as 2026-11-29T17:41:42Z", nil)
	}
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name := strings.Trim(f, `"`)
		return billing.InvalidField(location+"."+name, "unknown field", name)
	}
	return billing.InvalidField(location, "malformed JSON: "+strings.TrimPrefix(msg, "json: "), nil)
}

// jsonKind describes what JSON a Go type accepts, in a client's words.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another JSON type"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "a JSON object"
	}
	return "a " + t.String()
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
