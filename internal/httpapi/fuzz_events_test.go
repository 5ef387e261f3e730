package httpapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/httpapi"
)

// FuzzDecodeEvents feeds POST /usage's decoder arbitrary bodies. It must
// never panic; a refusal must be an invalid-input error naming a field of
// the body; and whatever it accepts must survive a round trip: each event
// marshalled again (alone, and as a batch) decodes to the same events, so
// nothing a client sent is lost or changed between decoding and storing.
//
//	go test -run '^$' -fuzz FuzzDecodeEvents ./internal/httpapi/
func FuzzDecodeEvents(f *testing.F) {
	for _, seed := range []string{
		// A single event, full and minimal.
		`{"event_id": "e1", "user_id": "alice", "provider": "openai", "model": "gpt-4", "endpoint": "/v1/chat/completions",
		  "method": "POST", "tokens_input": 1000, "tokens_output": 500, "tokens_cached_input": 200,
		  "tokens_cache_write_5m": 10, "tokens_cache_write_1h": 20, "tokens_reasoning": 100, "request_count": 1,
		  "search_count": 2, "image_count": 3, "page_count": 4, "status_code": 200, "response_time": 1.25,
		  "timestamp": "2026-11-15T11:59:00.123456Z", "error_message": "", "retry_count": 1, "partial": true,
		  "metadata": {"trace": "abc", "n": [1, 2, {"x": null}]}}`,
		`{"provider": "gemini"}`,
		`{}`,
		// A batch.
		`{"events": [{"event_id": "a", "provider": "openai"}, {"event_id": "b", "provider": "anthropic", "status_code": 0,
		  "timestamp": "2026-11-15T13:00:00+02:00", "metadata": null}]}`,
		`{"events": []}`,
		`{"events": null}`,
		// Nested junk.
		`{"events": [[[[{"events": [{}]}]]]]}`,
		`{"metadata": {"a": {"b": {"c": {"d": [[[[[[]]]]]]}}}}, "provider": "x"}`,
		`{"events": [{"metadata": "not an object"}, 7, "x", null, true]}`,
		`{"events": {"0": {"provider": "openai"}}}`,
		// Huge numbers.
		`{"tokens_input": 9223372036854775807, "tokens_output": 9223372036854775808}`,
		`{"tokens_input": 1e400}`,
		`{"response_time": 1.7976931348623157e308, "retry_count": -2147483649}`,
		`{"status_code": 99999999999999999999999999}`,
		`{"response_time": -0.0, "tokens_input": -0}`,
		// Unknown fields, misspelt and case-shifted.
		`{"provider": "openai", "tokens_inptu": 5}`,
		`{"events": [{"provider": "openai", "bogus": {}}], "extra": 1}`,
		`{"PROVIDER": "openai", "Tokens_Input": 3}`,
		// Text oddities.
		`{"provider": "open\u0000ai", "model": "\ud800", "error_message": "\"quoted\"\n"}`,
		"{\"provider\": \"\xff\xfe\"}",
		// Not an object, or not JSON.
		`[]`, `null`, `"x"`, ``, `{`, `{"events": [`, `{"a": 1} {"b": 2}`, `{"timestamp": "yesterday"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := httpapi.DecodeEvents(body)
		if err != nil {
			var be *billing.Error
			if !errors.As(err, &be) || be.Code != billing.CodeInvalid || len(be.Fields) == 0 {
				t.Fatalf("refusal is not an invalid-input error naming a field: %#v", err)
			}
			for _, f := range be.Fields {
				if !strings.HasPrefix(f.Location, "body") {
					t.Fatalf("refusal names %q, not a field of the body", f.Location)
				}
			}
			return
		}
		if len(events) == 0 || len(events) > billing.MaxBatchEvents {
			t.Fatalf("accepted %d events", len(events))
		}
		// Each event alone.
		for i, e := range events {
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatalf("event %d does not marshal: %v", i, err)
			}
			again, err := httpapi.DecodeEvents(b)
			if err != nil {
				t.Fatalf("event %d marshalled as %s is refused: %v", i, b, err)
			}
			if len(again) != 1 || !sameEvent(e, again[0]) {
				t.Fatalf("event %d changed in a round trip:\n was %+v\n now %+v", i, e, again)
			}
		}
		// All of them as a batch.
		b, err := json.Marshal(httpapi.UsageBatchJSON{Events: events})
		if err != nil {
			t.Fatal(err)
		}
		again, err := httpapi.DecodeEvents(b)
		if err != nil {
			t.Fatalf("the batch marshalled as %s is refused: %v", b, err)
		}
		if len(again) != len(events) {
			t.Fatalf("a batch of %d decodes to %d events", len(events), len(again))
		}
		for i := range events {
			if !sameEvent(events[i], again[i]) {
				t.Fatalf("batch event %d changed in a round trip:\n was %+v\n now %+v", i, events[i], again[i])
			}
		}
	})
}

// sameEvent compares two decoded events: times by instant (a zone's
// *Location differs between decodes) and metadata as compact JSON (which
// marshalling produces).
func sameEvent(a, b httpapi.EventJSON) bool {
	if (a.Timestamp == nil) != (b.Timestamp == nil) || a.Timestamp != nil && !a.Timestamp.Equal(*b.Timestamp) {
		return false
	}
	if !bytes.Equal(compactJSON(a.Metadata), compactJSON(b.Metadata)) {
		return false
	}
	a.Timestamp, b.Timestamp, a.Metadata, b.Metadata = nil, nil, nil, nil
	return reflect.DeepEqual(a, b)
}

func compactJSON(raw json.RawMessage) []byte {
	if raw == nil {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return raw
	}
	return buf.Bytes()
}
