package gateway

import (
	"encoding/json"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// anthropicUsage is the Messages API's usage object. Every field is a
// pointer because a stream's message_delta repeats only some of them, and
// each field keeps its last reported value: summing events would count the
// input twice.
type anthropicUsage struct {
	InputTokens              *int64 `json:"input_tokens"`
	CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
	OutputTokens             *int64 `json:"output_tokens"`
	CacheCreation            *struct {
		Ephemeral5m *int64 `json:"ephemeral_5m_input_tokens"`
		Ephemeral1h *int64 `json:"ephemeral_1h_input_tokens"`
	} `json:"cache_creation"`
	ServerToolUse *struct {
		WebSearchRequests *int64 `json:"web_search_requests"`
	} `json:"server_tool_use"`
}

// merge takes every field o reports, keeping the others.
func (a *anthropicUsage) merge(o *anthropicUsage) {
	set := func(dst **int64, v *int64) {
		if v != nil {
			*dst = v
		}
	}
	set(&a.InputTokens, o.InputTokens)
	set(&a.CacheCreationInputTokens, o.CacheCreationInputTokens)
	set(&a.CacheReadInputTokens, o.CacheReadInputTokens)
	set(&a.OutputTokens, o.OutputTokens)
	if o.CacheCreation != nil {
		if a.CacheCreation == nil {
			a.CacheCreation = o.CacheCreation
		} else {
			set(&a.CacheCreation.Ephemeral5m, o.CacheCreation.Ephemeral5m)
			set(&a.CacheCreation.Ephemeral1h, o.CacheCreation.Ephemeral1h)
		}
	}
	if o.ServerToolUse != nil {
		if a.ServerToolUse == nil {
			a.ServerToolUse = o.ServerToolUse
		} else {
			set(&a.ServerToolUse.WebSearchRequests, o.ServerToolUse.WebSearchRequests)
		}
	}
}

// quantities converts the usage: Anthropic's input_tokens excludes the
// cache, so total input is input + cache writes + cache reads. Cache writes
// without a 5 min / 1 h breakdown are 5 min writes, Anthropic's default.
func (a *anthropicUsage) quantities() billing.Quantities {
	v := func(p *int64) int64 {
		if p == nil || *p < 0 {
			return 0
		}
		return *p
	}
	write := v(a.CacheCreationInputTokens)
	var w5, w1 int64
	if c := a.CacheCreation; c != nil {
		w5, w1 = v(c.Ephemeral5m), v(c.Ephemeral1h)
	}
	if w5+w1 < write {
		w5 = write - w1
	}
	if w5+w1 > write {
		write = w5 + w1
	}
	q := billing.Quantities{
		Input:        v(a.InputTokens) + write + v(a.CacheReadInputTokens),
		CachedInput:  v(a.CacheReadInputTokens),
		CacheWrite5m: w5,
		CacheWrite1h: w1,
		Output:       v(a.OutputTokens),
	}
	if s := a.ServerToolUse; s != nil {
		q.Searches = v(s.WebSearchRequests)
	}
	return normalized(q)
}

// anthropicEvent is a Messages stream event, or (Usage and Model set) a
// whole non-streaming response.
type anthropicEvent struct {
	Type    string `json:"type"`
	Model   string `json:"model"`
	Message *struct {
		Model string          `json:"model"`
		Usage *anthropicUsage `json:"usage"`
	} `json:"message"`
	Delta *struct {
		Text        string `json:"text"`
		Thinking    string `json:"thinking"`
		PartialJSON string `json:"partial_json"`
	} `json:"delta"`
	Usage *anthropicUsage `json:"usage"`
	Error *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// anthropicStream gathers a Messages stream's usage field by field.
type anthropicStream struct {
	last anthropicUsage
}

// readAnthropicBody reads a whole Messages response.
func readAnthropicBody(b []byte, u *usage) {
	var e anthropicEvent
	if json.Unmarshal(b, &e) != nil {
		return
	}
	if e.Model != "" {
		u.model = e.Model
	}
	if e.Usage != nil {
		u.q, u.reported = e.Usage.quantities(), true
	}
}

// event reads one stream event: message_start carries the input and cache
// counts, message_delta cumulative counts.
func (s *anthropicStream) event(data []byte, u *usage) {
	if chars, ok := scanAnthropicEvent(data); ok {
		u.textChars += chars
		return
	}
	var e anthropicEvent
	if json.Unmarshal(data, &e) != nil {
		return
	}
	var got *anthropicUsage
	switch e.Type {
	case "message_start":
		if e.Message != nil {
			if e.Message.Model != "" {
				u.model = e.Message.Model
			}
			got = e.Message.Usage
		}
	case "message_delta":
		got = e.Usage
	case "content_block_delta":
		if e.Delta != nil {
			u.textChars += int64(len(e.Delta.Text) + len(e.Delta.Thinking) + len(e.Delta.PartialJSON))
		}
	case "error":
		u.streamErr = "error event"
		if e.Error != nil {
			u.streamErr = e.Error.Type + ": " + e.Error.Message
		}
	}
	if got != nil {
		s.last.merge(got)
		u.q, u.reported = s.last.quantities(), true
	}
}

// scanAnthropicEvent is the stream reader's fast path, for the events that
// carry no usage, message or error (content blocks, pings, stops): it
// returns the length of the text a content_block_delta adds, as decoding
// the event into an anthropicEvent would. ok is false when it cannot be
// sure, for an error event, or when the event carries a message, usage or
// error, and the event is then decoded.
func scanAnthropicEvent(data []byte) (chars int64, ok bool) {
	sc := eventScan{b: data}
	var typ []byte
	var seen uint32
	delta := func(key []byte) bool {
		switch {
		case keyIs(key, "text"):
			if !once(&seen, 1<<6) {
				return false
			}
		case keyIs(key, "thinking"):
			if !once(&seen, 1<<7) {
				return false
			}
		case keyIs(key, "partial_json"):
			if !once(&seen, 1<<8) {
				return false
			}
		default:
			return sc.skip()
		}
		n, ok := sc.textLen()
		chars += n
		return ok
	}
	ok = sc.object(func(key []byte) bool {
		var ok bool
		switch {
		case keyIs(key, "type"):
			typ, ok = sc.stringField()
			return once(&seen, 1<<0) && ok
		case keyIs(key, "model"):
			// Read only from a message; still a string.
			_, ok = sc.textLen()
			return once(&seen, 1<<1) && ok
		case keyIs(key, "delta"):
			// null leaves no delta, which adds nothing.
			return once(&seen, 1<<2) && (sc.literal("null") || sc.object(delta))
		case keyIs(key, "message"):
			return once(&seen, 1<<3) && sc.literal("null")
		case keyIs(key, "usage"):
			return once(&seen, 1<<4) && sc.literal("null")
		case keyIs(key, "error"):
			return once(&seen, 1<<5) && sc.literal("null")
		}
		return sc.skip()
	}) && sc.end()
	switch string(typ) {
	case "content_block_delta":
		return chars, ok
	case "error":
		return 0, false
	}
	return 0, ok
}

// anthropicRequest is what the gateway reads of a Messages request.
type anthropicRequest struct {
	Model     string `json:"model"`
	Stream    bool   `json:"stream"`
	MaxTokens *int64 `json:"max_tokens"`
}
