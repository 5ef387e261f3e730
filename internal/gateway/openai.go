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
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
	InputTokens        int64 `json:"input_tokens"`
	OutputTokens       int64 `json:"output_tokens"`
	InputTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
}

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

// responsesEvent is a Responses API stream event, or (Response set to the
// whole body) a non-streaming response.
type responsesEvent struct {
	Type     string `json:"type"`
	Delta    string `json:"delta"`
	Message  string `json:"message"`
	Response *struct {
		Model string       `json:"model"`
		Usage *openaiUsage `json:"usage"`
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

// readResponsesEvent reads one Responses API stream event: usage arrives
// once, with the final response (completed, incomplete or failed).
func readResponsesEvent(data []byte, u *usage) {
	var e responsesEvent
	if json.Unmarshal(data, &e) != nil {
		return
	}
	switch e.Type {
	case "response.output_text.delta", "response.reasoning_text.delta", "response.refusal.delta":
		u.textChars += int64(len(e.Delta))
	case "error", "response.failed":
		u.streamErr = truncate(e.Type+": "+e.Message, 1024)
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
func withIncludeUsage(body []byte) ([]byte, error) {
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
