package gateway

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// usage is what a response says its call used, gathered from a whole body
// or event by event from a stream.
type usage struct {
	q        billing.Quantities
	model    string // the model the provider says answered, if it says
	reported bool   // the provider reported usage
	// textChars counts generated text relayed to the client, to estimate
	// the output of a stream cut before its usage arrived.
	textChars int64
	// streamErr is an error the provider reported inside a stream whose
	// status was already 200 (Anthropic's overloaded_error, OpenAI's
	// response.failed, the error object of a Gemini or Chat Completions
	// stream). It is kept whole: the provider may echo its key in it, and
	// only a message redacted first may be shortened (finishStream).
	streamErr string
	// streamErrStatus is the HTTP status the stream's error names in its
	// code (Gemini's 429, 503), 0 when it names none.
	streamErrStatus int
}

// readStreamError reads the error object a Gemini or Chat Completions
// stream sends in place of a chunk when the call fails after its 200
// status line: {"code":503,"message":"…","status":"UNAVAILABLE"} from
// Gemini, {"message":"…","type":"server_error","code":null} from OpenAI.
// raw is the event's error member: an object, or a message alone; absent,
// null or anything else, there is no error.
func readStreamError(raw json.RawMessage, u *usage) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || (raw[0] != '{' && raw[0] != '"') || bytes.Equal(raw, []byte(`""`)) {
		return
	}
	var e struct {
		Code    json.RawMessage `json:"code"`
		Message string          `json:"message"`
		Status  string          `json:"status"`
		Type    string          `json:"type"`
	}
	var s string
	var msg []string
	var status int
	switch {
	case json.Unmarshal(raw, &e) == nil:
		// The code is an HTTP status when it is a number (Gemini's 503),
		// else a name worth keeping ("rate_limit_exceeded").
		var name string
		if json.Unmarshal(e.Code, &status) != nil && json.Unmarshal(e.Code, &name) == nil {
			if n, err := strconv.Atoi(name); err == nil {
				status, name = n, ""
			}
		}
		for _, part := range []string{e.Status, e.Type, name, e.Message} {
			if part != "" {
				msg = append(msg, part)
			}
		}
	case json.Unmarshal(raw, &s) == nil && s != "":
		msg = append(msg, s)
	}
	u.streamErr, u.streamErrStatus = "error object", 0
	if len(msg) > 0 {
		u.streamErr = strings.Join(msg, ": ")
	}
	if status >= 400 && status <= 599 {
		u.streamErrStatus = status
	}
}

// normalized returns q made safe to record: no negative counts, no count
// beyond what one event may carry, and buckets within their totals. A
// provider that reports a bucket larger than its total is believed about
// the total.
func normalized(q billing.Quantities) billing.Quantities {
	clamp := func(v *int64, hi int64) {
		if *v < 0 {
			*v = 0
		}
		if *v > hi {
			*v = hi
		}
	}
	for _, v := range []*int64{&q.Input, &q.Output, &q.CachedInput, &q.CacheWrite5m, &q.CacheWrite1h, &q.Reasoning} {
		clamp(v, billing.MaxTokensPerEvent)
	}
	for _, v := range []*int64{&q.Requests, &q.Searches, &q.Images, &q.Pages} {
		clamp(v, billing.MaxUnitsPerEvent)
	}
	clamp(&q.CachedInput, q.Input)
	clamp(&q.CacheWrite5m, q.Input-q.CachedInput)
	clamp(&q.CacheWrite1h, q.Input-q.CachedInput-q.CacheWrite5m)
	clamp(&q.Reasoning, q.Output)
	return q
}

// tokensOf estimates the tokens of n bytes of text, about four bytes a
// token, for calls whose real usage never arrived.
func tokensOf(n int64) int64 { return (n + 3) / 4 }
