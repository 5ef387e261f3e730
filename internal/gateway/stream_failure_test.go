package gateway_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/gateway"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// pollLedger waits, up to a generous deadline, for the user's ledger to
// hold n rows, without waiting for the gateway's in-flight calls (Wait)
// the way waitLedger does: a call the test holds open must not hold the
// test too.
func (h *harness) pollLedger(n int) []billing.UsageLog {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		logs := h.ledger()
		if len(logs) >= n {
			return logs
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("ledger has %d rows, want %d", len(logs), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// failedUncharged fails the test unless l is a failed call recorded with
// the given status, no usage and no cost, its error message holding each
// of msgs.
func failedUncharged(t *testing.T, l billing.UsageLog, status int, msgs ...string) {
	t.Helper()
	ok := l.StatusCode == status && !l.Partial && l.TokensInput == 0 && l.TokensOutput == 0 && l.CostTotal == 0 &&
		!strings.Contains(l.Metadata, `"estimated":true`)
	for _, m := range msgs {
		ok = ok && strings.Contains(l.ErrorMessage, m)
	}
	if !ok {
		t.Errorf("row = %s; want status %d, no usage, no cost, not partial, error naming %q", describe(l), status, msgs)
	}
}

// TestStalledClientDoesNotHoldTheRecord: a client that stops reading a
// stream without closing its connection is treated as gone once a write
// to it has waited the read timeout; the gateway drains the provider's
// stream and records the usage the provider reports while the client
// still holds the connection.
func TestStalledClientDoesNotHoldTheRecord(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *gateway.Config) { c.ReadTimeout = time.Second })
		// Far more than the sockets between the gateway and the client
		// hold, so that a write to the client blocks.
		content := strings.Repeat("a", 16<<10)
		filler := `data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"` +
			content + `"},"finish_reason":null}],"usage":null}` + "\n\n"
		h.fakes["openai"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.Header().Set("Content-Type", "text/event-stream")
			rc := http.NewResponseController(w)
			for range 1500 {
				if _, err := io.WriteString(w, filler); err != nil {
					return
				}
			}
			io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[],"usage":`+openaiUsageJSON+`}`+"\n\n")
			io.WriteString(w, "data: [DONE]\n\n")
			rc.Flush()
		})
		resp := h.post("/gateway/openai/v1/chat/completions", chatStreamBody, nil)
		// The client reads the headers, then nothing more, and keeps the
		// connection open until the call is recorded.
		defer resp.Body.Close()
		l := h.pollLedger(1)[0]
		h.checkRow(l, openaiWant)
		if !strings.Contains(l.Metadata, `"client_disconnected":true`) {
			t.Errorf("a client that stopped reading is not marked gone: %s", l.Metadata)
		}
		h.consistent()
	})
}

// TestProviderErrorEventWithoutUsageIsNotCharged: a stream the provider
// ends with an error event before it reported any usage is a failed call,
// recorded without usage or cost, as an error status is: the provider
// said the call failed. (A stream cut short is still billed an estimate;
// see TestUpstreamResetMidStream.)
func TestProviderErrorEventWithoutUsageIsNotCharged(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		h.fakes["anthropic"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
			sse(w, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n")
		})
		resp := h.post("/gateway/anthropic/v1/messages",
			`{"model":"claude-3.5-sonnet","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"Hello"}]}`, nil)
		if body := readAll(t, resp); !strings.Contains(body, "overloaded_error") {
			t.Errorf("the error event did not reach the client: %q", body)
		}
		failedUncharged(t, h.waitLedger(1)[0], http.StatusBadGateway, "overloaded_error: Overloaded")

		// A Responses stream that fails says why in the failed response,
		// whose usage is null.
		h.fakes["openai"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
			failed := `{"id":"resp_1","object":"response","status":"failed","model":"gpt-4o-2024-08-06","output":[],` +
				`"error":{"code":"server_error","message":"The model failed to generate a response."},"usage":null}`
			sse(w,
				"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":"+responseObject("in_progress", "null")+"}\n\n",
				"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hello\"}\n\n",
				"event: response.failed\ndata: {\"type\":\"response.failed\",\"sequence_number\":2,\"response\":"+failed+"}\n\n")
		})
		resp = h.post("/gateway/openai/v1/responses", `{"model":"gpt-4o","input":"Hello","stream":true}`, nil)
		readAll(t, resp)
		failedUncharged(t, h.waitLedger(2)[1], http.StatusBadGateway,
			"response.failed", "server_error", "The model failed to generate a response.")
		h.consistent()
	})
}

// TestErrorObjectInsideAStream: Gemini and Chat Completions report a
// failure after the 200 status line as a chunk holding an error object.
// The call is recorded as failed, with the error's status when it names
// one, billed only with the usage reported before the error.
func TestErrorObjectInsideAStream(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		const geminiErr = `{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}`
		const geminiPath = "/gateway/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent"
		const geminiBody = `{"contents":[{"parts":[{"text":"Hello"}]}]}`

		// An error after a chunk that reported usage: failed, billed with
		// that usage.
		h.fakes["gemini"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
			sse(w, "data: "+geminiChunk("Hel", geminiFirstUsageJSON)+"\r\n\r\n", "data: "+geminiErr+"\r\n\r\n")
		})
		resp := h.post(geminiPath+"?alt=sse", geminiBody, nil)
		if body := readAll(t, resp); !strings.Contains(body, "UNAVAILABLE") {
			t.Errorf("the error chunk did not reach the client: %q", body)
		}
		l := h.waitLedger(1)[0]
		if l.StatusCode != http.StatusServiceUnavailable || !l.Partial || l.TokensInput != 5000 || l.TokensOutput != 350 ||
			!strings.Contains(l.ErrorMessage, "UNAVAILABLE: The model is overloaded") {
			t.Errorf("gemini stream error after usage: row = %s", describe(l))
		}

		// An error as the first chunk: failed, not charged.
		h.fakes["gemini"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
			sse(w, "data: "+geminiErr+"\r\n\r\n")
		})
		readAll(t, h.post(geminiPath+"?alt=sse", geminiBody, nil))
		failedUncharged(t, h.waitLedger(2)[1], http.StatusServiceUnavailable, "The model is overloaded")

		// The same in the JSON array Gemini streams without alt=sse.
		h.fakes["gemini"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, "["+geminiChunk("Hel", geminiFirstUsageJSON)+",\r\n"+
				`{"error":{"code":429,"message":"Resource has been exhausted.","status":"RESOURCE_EXHAUSTED"}}]`)
		})
		readAll(t, h.post(geminiPath, geminiBody, nil))
		l = h.waitLedger(3)[2]
		if l.StatusCode != http.StatusTooManyRequests || !l.Partial || l.TokensInput != 5000 || l.TokensOutput != 350 ||
			!strings.Contains(l.ErrorMessage, "RESOURCE_EXHAUSTED") {
			t.Errorf("gemini array stream error: row = %s", describe(l))
		}

		// OpenAI's error chunk names no HTTP status: 502.
		h.fakes["openai"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
			sse(w,
				`data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}],"usage":null}`+"\n\n",
				`data: {"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}`+"\n\n")
		})
		resp = h.post("/gateway/openai/v1/chat/completions", chatStreamBody, nil)
		if body := readAll(t, resp); !strings.Contains(body, "server_error") {
			t.Errorf("the error chunk did not reach the client: %q", body)
		}
		failedUncharged(t, h.waitLedger(4)[3], http.StatusBadGateway, "server_error: The server had an error")
		h.consistent()
	})
}

// TestGeminiArrayStreamCutMidway: a JSON-array stream (no alt=sse) cut
// before its end is billed with the cumulative usage of the last chunk
// that arrived whole, flagged partial, not estimated from the request.
func TestGeminiArrayStreamCutMidway(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		h.fakes["gemini"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, "["+geminiChunk("Hel", geminiFirstUsageJSON)+",\r\n"+geminiChunk("lo", geminiUsageJSON)+",\r\n")
			third := geminiChunk(" world", geminiUsageJSON)
			io.WriteString(w, third[:len(third)/2])
			http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler) // the connection drops mid-chunk
		})
		resp := h.post("/gateway/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent",
			`{"contents":[{"parts":[{"text":"Hello"}]}]}`, nil)
		if body, _ := io.ReadAll(resp.Body); !strings.Contains(string(body), `"lo"`) {
			t.Errorf("the chunks before the cut did not reach the client: %q", body)
		}
		resp.Body.Close()
		l := h.waitLedger(1)[0]
		if !l.Partial || l.StatusCode != http.StatusBadGateway || l.TokensInput != 5000 || l.TokensCachedInput != 4000 ||
			l.TokensOutput != 500 || l.TokensReasoning != 300 || strings.Contains(l.Metadata, `"estimated":true`) {
			t.Errorf("cut array stream row = %s", describe(l))
		}
		h.consistent()
	})
}

// TestProviderKeyAtTheMessageLimitIsRedacted: a provider message that
// echoes the key across the point where the ledger's copy is shortened
// leaves no part of the key in the ledger: the message is redacted before
// it is cut.
func TestProviderKeyAtTheMessageLimitIsRedacted(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0], nil)
	// pad puts the middle of key at the 1,024th byte of msg.
	pad := func(prefix, key string) string {
		return strings.Repeat("x", 1024-len(prefix)-len(key)/2)
	}
	openaiKey, anthropicKey := serverKeys["openai"], serverKeys["anthropic"]
	h.fakes["openai"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
		if strings.HasSuffix(r.URL.Path, "/responses") {
			failed := `{"id":"resp_1","object":"response","status":"failed","model":"gpt-4o","output":[],` +
				`"error":{"code":"server_error","message":"` + pad("response.failed: server_error: ", openaiKey) + openaiKey + ` was refused"},"usage":null}`
			sse(w, "event: response.failed\ndata: {\"type\":\"response.failed\",\"sequence_number\":0,\"response\":"+failed+"}\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"message":"`+pad("", openaiKey)+openaiKey+` is not valid","type":"invalid_request_error"}}`)
	})
	h.fakes["anthropic"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
		msg := pad("overloaded_error: ", anthropicKey) + anthropicKey + " is overloaded"
		sse(w, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\""+msg+"\"}}\n\n")
	})
	readAll(t, h.post("/gateway/openai/v1/chat/completions", chatBody, nil))
	readAll(t, h.post("/gateway/openai/v1/responses", `{"model":"gpt-4o","input":"Hello","stream":true}`, nil))
	readAll(t, h.post("/gateway/anthropic/v1/messages", `{"model":"claude-3.5-sonnet","max_tokens":10,"stream":true,"messages":[]}`, nil))
	rows := h.waitLedger(3)
	for i, key := range []string{openaiKey, openaiKey, anthropicKey} {
		l := rows[i]
		if strings.Contains(l.ErrorMessage, key[:len(key)/2]) || !strings.Contains(l.ErrorMessage, "[redacted]") {
			t.Errorf("row %d keeps part of the provider key: %s", i, describe(l))
		}
	}
}

// TestStalledClientOfAWholeResponse: a non-streamed response is written
// to the client within the read timeout too; a client that takes the
// headers and no more does not hold the call's record (or the handler)
// for as long as it keeps the connection open.
func TestStalledClientOfAWholeResponse(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *gateway.Config) { c.ReadTimeout = time.Second })
		// Far more than the sockets between the gateway and the client
		// hold, within what the gateway reads whole.
		content := strings.Repeat("a", 24<<20)
		h.fakes["openai"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"c","object":"chat.completion","model":"gpt-4o-2024-08-06","choices":[{"index":0,`+
				`"message":{"role":"assistant","content":"`+content+`"},"finish_reason":"stop"}],"usage":`+openaiUsageJSON+`}`)
		})
		resp := h.post("/gateway/openai/v1/chat/completions", chatBody, nil)
		defer resp.Body.Close()
		h.checkRow(h.pollLedger(1)[0], openaiWant)
		h.consistent()
	})
}
