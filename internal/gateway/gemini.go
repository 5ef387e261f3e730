package gateway

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// geminiUsage is generateContent's usageMetadata. promptTokenCount
// includes cachedContentTokenCount; candidatesTokenCount excludes the
// thinking tokens, which are billed as output too.
type geminiUsage struct {
	PromptTokenCount        int64 `json:"promptTokenCount"`
	CandidatesTokenCount    int64 `json:"candidatesTokenCount"`
	ThoughtsTokenCount      int64 `json:"thoughtsTokenCount"`
	CachedContentTokenCount int64 `json:"cachedContentTokenCount"`
	ToolUsePromptTokenCount int64 `json:"toolUsePromptTokenCount"`
	TotalTokenCount         int64 `json:"totalTokenCount"`
}

// quantities converts the usage; the prompt of a tool call is input.
func (g *geminiUsage) quantities() billing.Quantities {
	return normalized(billing.Quantities{
		Input:       g.PromptTokenCount + g.ToolUsePromptTokenCount,
		CachedInput: g.CachedContentTokenCount,
		Output:      g.CandidatesTokenCount + g.ThoughtsTokenCount,
		Reasoning:   g.ThoughtsTokenCount,
	})
}

// geminiResponse is one generateContent response or stream chunk.
type geminiResponse struct {
	Candidates []struct {
		Content struct {
			Parts []struct {
				Text string `json:"text"`
			} `json:"parts"`
		} `json:"content"`
	} `json:"candidates"`
	UsageMetadata *geminiUsage `json:"usageMetadata"`
	ModelVersion  string       `json:"modelVersion"`
	// Error is set in place of the rest when the call fails after the
	// stream began: Gemini then sends its error object as a chunk.
	Error json.RawMessage `json:"error"`
}

// readGeminiChunk reads one response or stream chunk. Every chunk of a
// stream carries usageMetadata and the last holds the totals, so the last
// one read wins.
func readGeminiChunk(data []byte, u *usage) {
	if c, ok := scanGeminiChunk(data); ok {
		if len(c.model) > 0 {
			if m := bytes.TrimPrefix(c.model, []byte("models/")); string(m) != u.model {
				u.model = string(m)
			}
		}
		u.textChars += c.chars
		if c.hasUsage {
			u.q, u.reported = c.usage.quantities(), true
		}
		return
	}
	var r geminiResponse
	if json.Unmarshal(data, &r) != nil {
		return
	}
	u.add(r)
}

// geminiScanned is what scanGeminiChunk reads of a chunk.
type geminiScanned struct {
	model    []byte
	chars    int64
	usage    geminiUsage
	hasUsage bool
}

// scanGeminiChunk is readGeminiChunk's fast path: it reads a chunk as
// decoding it into a geminiResponse would. ok is false when it cannot be
// sure, or when the chunk carries an error, and the chunk is then decoded.
func scanGeminiChunk(data []byte) (c geminiScanned, ok bool) {
	s := eventScan{b: data}
	var seen uint32
	part := func(key []byte) bool {
		if !keyIs(key, "text") {
			return s.skip()
		}
		n, ok := s.textLen()
		c.chars += n
		return once(&seen, 1<<6) && ok
	}
	content := func(key []byte) bool {
		if !keyIs(key, "parts") {
			return s.skip()
		}
		return once(&seen, 1<<5) && s.array(func() bool {
			seen &^= 1 << 6 // fields are per part
			return s.object(part)
		})
	}
	candidate := func(key []byte) bool {
		if !keyIs(key, "content") {
			return s.skip()
		}
		return once(&seen, 1<<4) && s.object(content)
	}
	metadata := func(key []byte) bool {
		var f *int64
		var bit uint32
		switch g := &c.usage; {
		case keyIs(key, "promptTokenCount"):
			f, bit = &g.PromptTokenCount, 1<<7
		case keyIs(key, "candidatesTokenCount"):
			f, bit = &g.CandidatesTokenCount, 1<<8
		case keyIs(key, "thoughtsTokenCount"):
			f, bit = &g.ThoughtsTokenCount, 1<<9
		case keyIs(key, "cachedContentTokenCount"):
			f, bit = &g.CachedContentTokenCount, 1<<10
		case keyIs(key, "toolUsePromptTokenCount"):
			f, bit = &g.ToolUsePromptTokenCount, 1<<11
		case keyIs(key, "totalTokenCount"):
			f, bit = &g.TotalTokenCount, 1<<12
		default:
			return s.skip()
		}
		n, ok := s.int64Field()
		*f = n
		return once(&seen, bit) && ok
	}
	ok = s.object(func(key []byte) bool {
		var ok bool
		switch {
		case keyIs(key, "modelVersion"):
			c.model, ok = s.stringField()
			return once(&seen, 1<<0) && ok
		case keyIs(key, "candidates"):
			return once(&seen, 1<<1) && s.array(func() bool {
				seen &^= 1<<4 | 1<<5 // fields are per candidate
				return s.object(candidate)
			})
		case keyIs(key, "usageMetadata"):
			if !once(&seen, 1<<2) {
				return false
			}
			if s.literal("null") {
				return true
			}
			c.hasUsage = true
			return s.object(metadata)
		case keyIs(key, "error"):
			return once(&seen, 1<<13) && s.literal("null")
		}
		return s.skip()
	}) && s.end()
	return c, ok
}

func (u *usage) add(r geminiResponse) {
	if r.ModelVersion != "" {
		u.model = strings.TrimPrefix(r.ModelVersion, "models/")
	}
	for _, c := range r.Candidates {
		for _, p := range c.Content.Parts {
			u.textChars += int64(len(p.Text))
		}
	}
	if r.UsageMetadata != nil {
		u.q, u.reported = r.UsageMetadata.quantities(), true
	}
	readStreamError(r.Error, u)
}

// readGeminiBody reads a whole response: one object from generateContent,
// or the JSON array streamGenerateContent sends without alt=sse. The array
// of a stream cut short has no end: its chunks are read one by one, up to
// the first that did not arrive whole, so that the call is billed with the
// cumulative usage of the last complete chunk and the text relayed in them.
func readGeminiBody(b []byte, u *usage) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		dec := json.NewDecoder(bytes.NewReader(b))
		if _, err := dec.Token(); err != nil {
			return
		}
		for dec.More() {
			var r geminiResponse
			if dec.Decode(&r) != nil {
				return
			}
			u.add(r)
		}
		return
	}
	readGeminiChunk(b, u)
}

// geminiRequest is what the gateway reads of a generateContent request.
type geminiRequest struct {
	GenerationConfig *struct {
		MaxOutputTokens *int64 `json:"maxOutputTokens"`
	} `json:"generationConfig"`
	GenerationConfigSnake *struct {
		MaxOutputTokens *int64 `json:"max_output_tokens"`
	} `json:"generation_config"`
}

func (g geminiRequest) maxTokens() *int64 {
	if c := g.GenerationConfig; c != nil && c.MaxOutputTokens != nil {
		return c.MaxOutputTokens
	}
	if c := g.GenerationConfigSnake; c != nil {
		return c.MaxOutputTokens
	}
	return nil
}
