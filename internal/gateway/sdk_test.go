package gateway_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"google.golang.org/genai"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// want is the ledger row a call must produce, computed by hand from the
// fake's usage and the seeded prices.
type want struct {
	model                                           string
	in, out, cached, write5m, write1h, reason, srch int64
	requests                                        int64 // 1 for every answered call
	cost                                            string
}

func (h *harness) checkRow(l billing.UsageLog, w want) {
	h.t.Helper()
	got := want{l.ModelUsed, l.TokensInput, l.TokensOutput, l.TokensCachedInput, l.TokensCacheWrite5m, l.TokensCacheWrite1h,
		l.TokensReasoning, l.SearchCount, l.RequestCount, l.CostTotal.String()}
	w.cost, w.requests = money.MustParse(w.cost).String(), 1
	if got != w || l.StatusCode != http.StatusOK || l.Partial || l.Provider == "" {
		h.t.Errorf("ledger row = %s\nwant %+v, status 200, not partial", describe(l), w)
	}
}

// checkPair checks the last two rows (a non-streamed then a streamed call
// of the same response) against w and each other.
func (h *harness) checkPair(provider string, total int, w want) {
	h.t.Helper()
	rows := h.waitLedger(total)
	plain, streamed := rows[len(rows)-2], rows[len(rows)-1]
	for _, l := range []billing.UsageLog{plain, streamed} {
		if l.Provider != provider {
			h.t.Errorf("provider = %q, want %q", l.Provider, provider)
		}
		h.checkRow(l, w)
	}
	if !sameUsage(plain, streamed) {
		h.t.Errorf("streamed and non-streamed calls recorded different usage:\n%s\n%s", describe(plain), describe(streamed))
	}
}

// gpt-4o: 176 uncached × 0.0000025 + 1024 cached × 0.00000125 + 300 output
// (128 of them reasoning, billed as output) × 0.00001 = 0.00472.
var openaiWant = want{model: "gpt-4o-2024-08-06", in: 1200, out: 300, cached: 1024, reason: 128, cost: "0.00472"}

func TestOpenAISDK(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		client := openai.NewClient(option.WithBaseURL(h.url+"/gateway/openai/v1"), option.WithAPIKey(h.key),
			option.WithHTTPClient(h.http), option.WithMaxRetries(0))
		params := openai.ChatCompletionNewParams{Model: "gpt-4o", MaxCompletionTokens: openai.Int(300),
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello")}}

		t.Run("chat", func(t *testing.T) {
			h := h.with(t)
			res, err := client.Chat.Completions.New(h.ctx, params)
			if err != nil {
				t.Fatalf("chat: %v", err)
			}
			if res.Choices[0].Message.Content != "Hello there" || res.Usage.PromptTokensDetails.CachedTokens != 1024 {
				t.Errorf("the client got %+v", res)
			}
			stream := client.Chat.Completions.NewStreaming(h.ctx, params)
			var text strings.Builder
			for stream.Next() {
				c := stream.Current()
				if len(c.Choices) == 0 || c.Usage.TotalTokens != 0 {
					t.Errorf("the client sees the usage chunk it did not ask for: %s", c.RawJSON())
				}
				for _, ch := range c.Choices {
					text.WriteString(ch.Delta.Content)
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("stream: %v", err)
			}
			stream.Close()
			if text.String() != "Hello there" {
				t.Errorf("streamed text = %q", text.String())
			}
			if !strings.Contains(string(h.fakes["openai"].lastBody()), `"include_usage":true`) {
				t.Errorf("the gateway did not ask for stream usage: %s", h.fakes["openai"].lastBody())
			}
			h.checkPair("openai", 2, openaiWant)

			// A client that asks for usage itself sees the usage chunk.
			withUsage := params
			withUsage.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			stream = client.Chat.Completions.NewStreaming(h.ctx, withUsage)
			var sawUsage bool
			for stream.Next() {
				if c := stream.Current(); len(c.Choices) == 0 && c.Usage.PromptTokens == 1200 {
					sawUsage = true
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("stream with usage: %v", err)
			}
			stream.Close()
			if !sawUsage {
				t.Error("a client that asked for include_usage did not get the usage chunk")
			}
			h.checkPair("openai", 3, openaiWant)
		})

		t.Run("responses", func(t *testing.T) {
			h := h.with(t)
			rp := responses.ResponseNewParams{Model: "gpt-4o", MaxOutputTokens: openai.Int(300),
				Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Hello")}}
			res, err := client.Responses.New(h.ctx, rp)
			if err != nil {
				t.Fatalf("responses: %v", err)
			}
			if res.Usage.InputTokens != 1200 {
				t.Errorf("the client got usage %+v", res.Usage)
			}
			stream := client.Responses.NewStreaming(h.ctx, rp)
			var completed bool
			for stream.Next() {
				if ev := stream.Current(); ev.Type == "response.completed" && ev.Response.Usage.OutputTokens == 300 {
					completed = true
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("responses stream: %v", err)
			}
			stream.Close()
			if !completed {
				t.Error("the client did not get response.completed with its usage")
			}
			h.checkPair("openai", 5, openaiWant)
		})

		t.Run("embeddings", func(t *testing.T) {
			h := h.with(t)
			res, err := client.Embeddings.New(h.ctx, openai.EmbeddingNewParams{Model: "text-embedding-3-small",
				Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("Hello")}})
			if err != nil {
				t.Fatalf("embeddings: %v", err)
			}
			if len(res.Data) != 1 || len(res.Data[0].Embedding) != 3 {
				t.Errorf("the client got %+v", res.Data)
			}
			rows := h.waitLedger(6)
			l := rows[len(rows)-1]
			// No price is seeded for this model: it is recorded, flagged
			// unpriced, never silently dropped.
			if l.TokensInput != 8 || l.TokensOutput != 0 || l.StatusCode != 200 || !l.Unpriced || l.Endpoint != "/embeddings" {
				t.Errorf("embeddings row = %s unpriced %v endpoint %s", describe(l), l.Unpriced, l.Endpoint)
			}
		})
	})
}

// mistral-7b: 1000 × 0.0000002 + 200 × 0.0000006 = 0.00032.
var mistralWant = want{model: "mistral-7b", in: 1000, out: 200, cost: "0.00032"}

func TestMistralWithOpenAISDK(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		client := openai.NewClient(option.WithBaseURL(h.url+"/gateway/mistral/v1"), option.WithAPIKey(h.key),
			option.WithHTTPClient(h.http), option.WithMaxRetries(0))
		params := openai.ChatCompletionNewParams{Model: "mistral-7b", MaxTokens: openai.Int(200),
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Bonjour")}}
		res, err := client.Chat.Completions.New(h.ctx, params)
		if err != nil {
			t.Fatalf("chat: %v", err)
		}
		if res.Choices[0].Message.Content != "Bonjour" {
			t.Errorf("the client got %+v", res)
		}
		stream := client.Chat.Completions.NewStreaming(h.ctx, params)
		var sawUsage bool
		for stream.Next() {
			if stream.Current().Usage.PromptTokens == 1000 {
				sawUsage = true
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("stream: %v", err)
		}
		stream.Close()
		if !sawUsage {
			t.Error("Mistral's own usage chunk did not reach the client")
		}
		if strings.Contains(string(h.fakes["mistral"].lastBody()), "include_usage") {
			t.Errorf("the gateway changed a Mistral request: %s", h.fakes["mistral"].lastBody())
		}
		h.checkPair("mistral", 2, mistralWant)
	})
}

// claude-3.5-sonnet: 100 uncached × 0.000003 + 1500 5-minute cache writes
// × 0.00000375 + 500 1-hour writes × 0.000006 + 3000 cache reads ×
// 0.0000003 + 500 output × 0.000015 = 0.017325. Input is all of them:
// 100 + 2000 + 3000 = 5100, counted once although the stream repeats it.
var anthropicWant = want{model: "claude-3.5-sonnet", in: 5100, out: 500, cached: 3000, write5m: 1500, write1h: 500, srch: 1, cost: "0.017325"}

func TestAnthropicSDK(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		client := anthropic.NewClient(aoption.WithBaseURL(h.url+"/gateway/anthropic"), aoption.WithAPIKey(h.key),
			aoption.WithHTTPClient(h.http), aoption.WithMaxRetries(0))
		params := anthropic.MessageNewParams{Model: "claude-3.5-sonnet", MaxTokens: 1024,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello"))}}
		msg, err := client.Messages.New(h.ctx, params)
		if err != nil {
			t.Fatalf("messages: %v", err)
		}
		if msg.Usage.CacheReadInputTokens != 3000 || len(msg.Content) != 1 || msg.Content[0].Text != "Hello" {
			t.Errorf("the client got %+v", msg)
		}
		stream := client.Messages.NewStreaming(h.ctx, params)
		var acc anthropic.Message
		for stream.Next() {
			if err := acc.Accumulate(stream.Current()); err != nil {
				t.Fatalf("accumulate: %v", err)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("stream: %v", err)
		}
		stream.Close()
		if acc.Usage.OutputTokens != 500 || len(acc.Content) != 1 || acc.Content[0].Text != "Hello" {
			t.Errorf("the streamed message is %+v", acc)
		}
		h.checkPair("anthropic", 2, anthropicWant)
	})
}

// gemini-2.5-flash (no cached-input price, so cached tokens bill as input):
// 5000 input × 0.0000003 + (200 + 300 thinking) output × 0.0000025 =
// 0.00275.
var geminiWant = want{model: "gemini-2.5-flash", in: 5000, out: 500, cached: 4000, reason: 300, cost: "0.00275"}

func TestGeminiSDK(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		client, err := genai.NewClient(h.ctx, &genai.ClientConfig{APIKey: h.key, Backend: genai.BackendGeminiAPI, HTTPClient: h.http,
			HTTPOptions: genai.HTTPOptions{BaseURL: h.url + "/gateway/gemini/"}})
		if err != nil {
			t.Fatalf("genai client: %v", err)
		}
		cfg := &genai.GenerateContentConfig{MaxOutputTokens: 1000}
		res, err := client.Models.GenerateContent(h.ctx, "gemini-2.5-flash", genai.Text("Hello"), cfg)
		if err != nil {
			t.Fatalf("generateContent: %v", err)
		}
		if res.Text() != "Hello" || res.UsageMetadata.ThoughtsTokenCount != 300 {
			t.Errorf("the client got %+v", res)
		}
		var text strings.Builder
		for chunk, err := range client.Models.GenerateContentStream(h.ctx, "gemini-2.5-flash", genai.Text("Hello"), cfg) {
			if err != nil {
				t.Fatalf("streamGenerateContent: %v", err)
			}
			text.WriteString(chunk.Text())
		}
		if text.String() != "Hello" {
			t.Errorf("streamed text = %q", text.String())
		}
		h.checkPair("gemini", 2, geminiWant)
		headers, queries := h.fakes["gemini"].seen()
		for i := range headers {
			if strings.Contains(queries[i], h.key) || headers[i].Get("X-Goog-Api-Key") != serverKeys["gemini"] {
				t.Errorf("call %d reached Gemini with query %q and key header %q", i, queries[i], headers[i].Get("X-Goog-Api-Key"))
			}
		}
	})
}
