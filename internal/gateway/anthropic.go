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
			u.streamErr = truncate(e.Error.Type+": "+e.Error.Message, 1024)
		}
	}
	if got != nil {
		s.last.merge(got)
		u.q, u.reported = s.last.quantities(), true
	}
}

// anthropicRequest is what the gateway reads of a Messages request.
type anthropicRequest struct {
	Model     string `json:"model"`
	Stream    bool   `json:"stream"`
	MaxTokens *int64 `json:"max_tokens"`
}
