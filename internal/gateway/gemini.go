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
}

// readGeminiChunk reads one response or stream chunk. Every chunk of a
// stream carries usageMetadata and the last holds the totals, so the last
// one read wins.
func readGeminiChunk(data []byte, u *usage) {
	var r geminiResponse
	if json.Unmarshal(data, &r) != nil {
		return
	}
	u.add(r)
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
}

// readGeminiBody reads a whole response: one object from generateContent,
// or the JSON array streamGenerateContent sends without alt=sse.
func readGeminiBody(b []byte, u *usage) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var rs []geminiResponse
		if json.Unmarshal(b, &rs) != nil {
			return
		}
		for _, r := range rs {
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
