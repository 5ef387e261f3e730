package gateway

import (
	"bytes"
	"encoding/json"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// openaiUsage is OpenAI's usage object in both its shapes: Chat Completions
// and Embeddings (prompt_/completion_tokens) and the Responses API
// (input_/output_tokens). Mistral sends the first shape. Details are parts
// of their totals.
type openaiUsage struct {
	PromptTokens            int64            `json:"prompt_tokens"`
	CompletionTokens        int64            `json:"completion_tokens"`
	PromptTokensDetails     *openaiCached    `json:"prompt_tokens_details"`
	CompletionTokensDetails *openaiReasoning `json:"completion_tokens_details"`
	InputTokens             int64            `json:"input_tokens"`
	OutputTokens            int64            `json:"output_tokens"`
	InputTokensDetails      *openaiCached    `json:"input_tokens_details"`
	OutputTokensDetails     *openaiReasoning `json:"output_tokens_details"`
}

// openaiCached and openaiReasoning are the usage details billing reads.
type (
	openaiCached struct {
		CachedTokens int64 `json:"cached_tokens"`
	}
	openaiReasoning struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	}
)

func (u *openaiUsage) quantities() billing.Quantities {
	q := billing.Quantities{Input: u.PromptTokens + u.InputTokens, Output: u.CompletionTokens + u.OutputTokens}
	if d := u.PromptTokensDetails; d != nil {
		q.CachedInput += d.CachedTokens
	}
	if d := u.InputTokensDetails; d != nil {
		q.CachedInput += d.CachedTokens
	}
	if d := u.CompletionTokensDetails; d != nil {
		q.Reasoning += d.ReasoningTokens
	}
	if d := u.OutputTokensDetails; d != nil {
		q.Reasoning += d.ReasoningTokens
	}
	return normalized(q)
}

// openaiChunk is a Chat Completions response or stream chunk (OpenAI and
// Mistral), or an Embeddings response, reduced to what billing reads.
type openaiChunk struct {
	Model   string `json:"model"`
	Choices []struct {
		Delta struct {
			Content   string `json:"content"`
			Reasoning string `json:"reasoning_content"`
		} `json:"delta"`
		Message struct {
			Content json.RawMessage `json:"content"`
		} `json:"message"`
	} `json:"choices"`
	Usage *openaiUsage `json:"usage"`
}

// readOpenAIBody reads a whole Chat Completions or Embeddings response.
func readOpenAIBody(b []byte, u *usage) {
	var c openaiChunk
	if json.Unmarshal(b, &c) != nil {
		return
	}
	if c.Model != "" {
		u.model = c.Model
	}
	if c.Usage != nil {
		u.q, u.reported = c.Usage.quantities(), true
	}
}

var sseDone = []byte("[DONE]")

// readOpenAIChatEvent reads one Chat Completions stream event. The chunk
// that carries only usage is hidden when the gateway asked for it on the
// client's behalf (hideUsage).
func readOpenAIChatEvent(data []byte, hideUsage bool, u *usage) (show bool) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, sseDone) {
		return true
	}
	if c, ok := scanOpenAIChatEvent(data); ok {
		// Same string, no copy: most chunks repeat the model.
		if len(c.model) > 0 && string(c.model) != u.model {
			u.model = string(c.model)
		}
		u.textChars += c.chars
		if c.hasUsage {
			u.q, u.reported = c.usage, true
			if hideUsage && c.choices == 0 {
				return false
			}
		}
		return true
	}
	var c openaiChunk
	if json.Unmarshal(data, &c) != nil {
		return true
	}
	if c.Model != "" {
		u.model = c.Model
	}
	for _, ch := range c.Choices {
		u.textChars += int64(len(ch.Delta.Content) + len(ch.Delta.Reasoning))
	}
	if c.Usage != nil {
		// Streams report usage once, cumulatively; a later report replaces
		// an earlier one rather than adding to it.
		u.q, u.reported = c.Usage.quantities(), true
		if hideUsage && len(c.Choices) == 0 {
			return false
		}
	}
	return true
}

// readOpenAIChatError reads the error object a Chat Completions stream
// (OpenAI's, Mistral's) sends in place of a chunk when the call fails after
// its 200 status line: data: {"error":{"message":"…","type":"server_error"}}.
// It is read apart from readOpenAIChatEvent, which reads usage and text:
// only an event that may hold an "error" member is decoded again, and
// encoding/json matches that key in any ASCII case or through \u escapes
// (no other rune folds onto its letters).
func readOpenAIChatError(data []byte, u *usage) {
	if !containsFold(data, []byte("error")) && !bytes.Contains(data, []byte(`\u`)) {
		return
	}
	var c struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(data, &c) != nil {
		return
	}
	readStreamError(c.Error, u)
}

// openaiScanned is what scanOpenAIChatEvent reads of a chunk.
type openaiScanned struct {
	model    []byte
	chars    int64 // the length of the choices' text
	choices  int
	usage    billing.Quantities
	hasUsage bool
}

// scanOpenAIChatEvent is readOpenAIChatEvent's fast path: it reads a chunk
// as decoding it into an openaiChunk would. ok is false when it cannot be
// sure (a message, anything unusual), and the chunk is then decoded.
func scanOpenAIChatEvent(data []byte) (c openaiScanned, ok bool) {
	s := eventScan{b: data}
	var seen uint32
	delta := func(key []byte) bool {
		switch {
		case keyIs(key, "content"):
			if !once(&seen, 1<<3) {
				return false
			}
		case keyIs(key, "reasoning_content"):
			if !once(&seen, 1<<4) {
				return false
			}
		default:
			return s.skip()
		}
		n, ok := s.textLen()
		c.chars += n
		return ok
	}
	choice := func(key []byte) bool {
		switch {
		case keyIs(key, "delta"):
			return once(&seen, 1<<2) && s.object(delta)
		case keyIs(key, "message"):
			return false
		}
		return s.skip()
	}
	var u openaiUsage
	// detail reads a details object holding one count, name, into *n.
	detail := func(name string, n *int64, bit uint32) bool {
		return s.object(func(key []byte) bool {
			if !keyIs(key, name) {
				return s.skip()
			}
			var ok bool
			*n, ok = s.int64Field()
			return once(&seen, bit) && ok
		})
	}
	usage := func(key []byte) bool {
		var f *int64
		var bit uint32
		switch {
		case keyIs(key, "prompt_tokens"):
			f, bit = &u.PromptTokens, 1<<7
		case keyIs(key, "completion_tokens"):
			f, bit = &u.CompletionTokens, 1<<8
		case keyIs(key, "input_tokens"):
			f, bit = &u.InputTokens, 1<<9
		case keyIs(key, "output_tokens"):
			f, bit = &u.OutputTokens, 1<<10
		case keyIs(key, "prompt_tokens_details"):
			if !once(&seen, 1<<11) {
				return false
			}
			if s.literal("null") {
				return true
			}
			u.PromptTokensDetails = new(openaiCached)
			return detail("cached_tokens", &u.PromptTokensDetails.CachedTokens, 1<<15)
		case keyIs(key, "input_tokens_details"):
			if !once(&seen, 1<<12) {
				return false
			}
			if s.literal("null") {
				return true
			}
			u.InputTokensDetails = new(openaiCached)
			return detail("cached_tokens", &u.InputTokensDetails.CachedTokens, 1<<16)
		case keyIs(key, "completion_tokens_details"):
			if !once(&seen, 1<<13) {
				return false
			}
			if s.literal("null") {
				return true
			}
			u.CompletionTokensDetails = new(openaiReasoning)
			return detail("reasoning_tokens", &u.CompletionTokensDetails.ReasoningTokens, 1<<17)
		case keyIs(key, "output_tokens_details"):
			if !once(&seen, 1<<14) {
				return false
			}
			if s.literal("null") {
				return true
			}
			u.OutputTokensDetails = new(openaiReasoning)
			return detail("reasoning_tokens", &u.OutputTokensDetails.ReasoningTokens, 1<<18)
		default:
			return s.skip()
		}
		var ok bool
		*f, ok = s.int64Field()
		return once(&seen, bit) && ok
	}
	ok = s.object(func(key []byte) bool {
		switch {
		case keyIs(key, "model"):
			var ok bool
			c.model, ok = s.stringField()
			return once(&seen, 1<<0) && ok
		case keyIs(key, "choices"):
			return once(&seen, 1<<1) && s.array(func() bool {
				c.choices++
				seen &^= 1<<2 | 1<<3 | 1<<4 // fields are per choice
				return s.object(choice)
			})
		case keyIs(key, "usage"):
			if !once(&seen, 1<<5) {
				return false
			}
			if s.literal("null") {
				return true
			}
			c.hasUsage = true
			return s.object(usage)
		}
		return s.skip()
	}) && s.end()
	if c.hasUsage {
		c.usage = u.quantities()
	}
	return c, ok
}

// responsesEvent is a Responses API stream event, or (Response set to the
// whole body) a non-streaming response.
type responsesEvent struct {
	Type     string `json:"type"`
	Delta    string `json:"delta"`
	Message  string `json:"message"`
	Response *struct {
		Model string       `json:"model"`
		Usage *openaiUsage `json:"usage"`
		// Error says why a failed response failed (response.failed).
		Error json.RawMessage `json:"error"`
	} `json:"response"`
}

// readResponsesBody reads a whole Responses API response.
func readResponsesBody(b []byte, u *usage) {
	var r struct {
		Model string       `json:"model"`
		Usage *openaiUsage `json:"usage"`
	}
	if json.Unmarshal(b, &r) != nil {
		return
	}
	if r.Model != "" {
		u.model = r.Model
	}
	if r.Usage != nil {
		u.q, u.reported = r.Usage.quantities(), true
	}
}

// failure is what an "error" or "response.failed" event says went wrong,
// whole (it is redacted, then cut, when recorded): response.failed says
// it in the response it carries.
func (e *responsesEvent) failure() string {
	if e.Response != nil {
		var failed usage
		readStreamError(e.Response.Error, &failed)
		if failed.streamErr != "" {
			return failed.streamErr
		}
	}
	return e.Message
}

// readResponsesEvent reads one Responses API stream event: usage arrives
// once, with the final response (completed, incomplete or failed).
func readResponsesEvent(data []byte, u *usage) {
	if typ, delta, ok := scanResponsesEvent(data); ok {
		switch string(typ) {
		case "response.output_text.delta", "response.reasoning_text.delta", "response.refusal.delta":
			u.textChars += delta
		}
		return
	}
	var e responsesEvent
	if json.Unmarshal(data, &e) != nil {
		return
	}
	switch e.Type {
	case "response.output_text.delta", "response.reasoning_text.delta", "response.refusal.delta":
		u.textChars += int64(len(e.Delta))
	case "error", "response.failed":
		u.streamErr = e.Type + ": " + e.failure()
	}
	if e.Response == nil {
		return
	}
	if e.Response.Model != "" {
		u.model = e.Response.Model
	}
	if e.Response.Usage != nil {
		u.q, u.reported = e.Response.Usage.quantities(), true
	}
}

// scanResponsesEvent is readResponsesEvent's fast path, for the events
// without a response object (the deltas): it returns the event's type and
// the length of its delta, as decoding it into a responsesEvent would. ok is
// false when it cannot be sure, for an error event, or when the event
// carries a response, and the event is then decoded.
func scanResponsesEvent(data []byte) (typ []byte, delta int64, ok bool) {
	s := eventScan{b: data}
	var seen uint32
	ok = s.object(func(key []byte) bool {
		var ok bool
		switch {
		case keyIs(key, "type"):
			typ, ok = s.stringField()
			return once(&seen, 1<<0) && ok
		case keyIs(key, "delta"):
			delta, ok = s.textLen()
			return once(&seen, 1<<1) && ok
		case keyIs(key, "message"):
			// Read only for errors, which are decoded; still a string.
			_, ok = s.textLen()
			return once(&seen, 1<<2) && ok
		case keyIs(key, "response"):
			return once(&seen, 1<<3) && s.literal("null")
		}
		return s.skip()
	}) && s.end()
	if t := string(typ); t == "error" || t == "response.failed" {
		return nil, 0, false
	}
	return typ, delta, ok
}

// openaiRequest is what the gateway reads of an OpenAI or Mistral request.
type openaiRequest struct {
	Model               string `json:"model"`
	Stream              bool   `json:"stream"`
	MaxTokens           *int64 `json:"max_tokens"`
	MaxCompletionTokens *int64 `json:"max_completion_tokens"`
	MaxOutputTokens     *int64 `json:"max_output_tokens"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// withIncludeUsage returns the request body with
// stream_options.include_usage set, keeping every other field as sent.
// body is valid JSON: the route has decoded it already.
func withIncludeUsage(body []byte) ([]byte, error) {
	if b, ok := spliceIncludeUsage(body); ok {
		return b, nil
	}
	return rewriteIncludeUsage(body)
}

// rewriteIncludeUsage is withIncludeUsage by decoding the body's members
// and encoding them again with stream_options changed.
func rewriteIncludeUsage(body []byte) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, err
	}
	opts := map[string]json.RawMessage{}
	if raw, ok := fields["stream_options"]; ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		if err := json.Unmarshal(raw, &opts); err != nil {
			return nil, err
		}
	}
	opts["include_usage"] = json.RawMessage("true")
	raw, err := json.Marshal(opts)
	if err != nil {
		return nil, err
	}
	fields["stream_options"] = raw
	return json.Marshal(fields)
}

// includeUsageField is the member withIncludeUsage adds to a request that
// has no stream_options.
var includeUsageField = []byte(`"stream_options":{"include_usage":true}`)

// spliceIncludeUsage is withIncludeUsage's fast path for the usual
// request, one with no stream_options at all: it inserts the member after
// the opening brace instead of decoding and re-encoding the whole body
// (prompts run to megabytes). body must be valid JSON. ok is false when
// it is not an object, or might hold a key that reads as stream_options —
// the name in any case, a \u escape anywhere, or "ſ", which folds to
// "s" —; the caller then rewrites it the slow way.
func spliceIncludeUsage(body []byte) ([]byte, bool) {
	t := bytes.TrimLeft(body, " \t\r\n")
	if len(t) == 0 || t[0] != '{' ||
		bytes.Contains(t, []byte(`\u`)) || bytes.Contains(t, []byte("ſ")) ||
		containsFold(t, []byte("stream_options")) {
		return nil, false
	}
	rest := t[1:]
	out := make([]byte, 0, len(t)+len(includeUsageField)+1)
	out = append(out, '{')
	out = append(out, includeUsageField...)
	if r := bytes.TrimLeft(rest, " \t\r\n"); len(r) > 0 && r[0] != '}' {
		out = append(out, ',')
	}
	return append(out, rest...), true
}

// containsFold reports whether s holds sub, ASCII letters compared
// without case (sub is lower-case ASCII).
func containsFold(s, sub []byte) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i]|0x20 != sub[0] {
			continue
		}
		j := 1
		for ; j < len(sub); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c |= 0x20
			}
			if c != sub[j] {
				break
			}
		}
		if j == len(sub) {
			return true
		}
	}
	return false
}
