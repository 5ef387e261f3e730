package gateway_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/alwrity/alwrity-billing/internal/gateway"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

const chatStreamBody = `{"model":"gpt-4o","stream":true,"max_tokens":300,"messages":[{"role":"user","content":"Hello"}]}`

// consistent fails the test unless, once every call is recorded, the
// ledger equals the summaries and no reservation is left held.
func (h *harness) consistent() {
	h.t.Helper()
	h.settled()
	mm, err := h.db.Reconcile(h.ctx)
	if err != nil {
		h.t.Fatalf("reconcile: %v", err)
	}
	for _, m := range mm {
		h.t.Errorf("ledger and summaries differ: %s", m)
	}
	if n, err := h.db.HeldReservationsMismatch(h.ctx); err != nil || n != 0 {
		h.t.Errorf("HeldReservationsMismatch = %d, %v; want 0", n, err)
	}
}

func TestClientDisconnectMidStreamIsBilledInFull(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		release := make(chan struct{})
		h.fakes["openai"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.Header().Set("Content-Type", "text/event-stream")
			rc := http.NewResponseController(w)
			io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}],"usage":null}`+"\n\n")
			rc.Flush()
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			// The rest of the answer, usage included, arrives after the
			// client has gone.
			io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}],"usage":null}`+"\n\n")
			io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[],"usage":`+openaiUsageJSON+`}`+"\n\n")
			io.WriteString(w, "data: [DONE]\n\n")
		})
		ctx, cancel := context.WithCancel(h.ctx)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/gateway/openai/v1/chat/completions", strings.NewReader(chatStreamBody))
		req.Header.Set("Authorization", "Bearer "+h.key)
		resp, err := h.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || !strings.Contains(line, `"Hel"`) {
			t.Fatalf("first event = %q, %v", line, err)
		}
		if resp.Header.Get(gateway.OverheadHeader) == "" {
			t.Errorf("a stream's headers carry no %s", gateway.OverheadHeader)
		}
		cancel()
		resp.Body.Close()
		close(release)
		rows := h.waitLedger(1)
		h.checkRow(rows[0], openaiWant)
		h.consistent()
	})
}

func TestClientDisconnectDrainIsBounded(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0], func(c *gateway.Config) { c.DrainTimeout = 50 * time.Millisecond })
	h.fakes["openai"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hello world"},"finish_reason":null}],"usage":null}`+"\n\n")
		http.NewResponseController(w).Flush()
		// The provider never finishes; the drain timeout ends the wait.
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(h.ctx)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/gateway/openai/v1/chat/completions", strings.NewReader(chatStreamBody))
	req.Header.Set("Authorization", "Bearer "+h.key)
	resp, err := h.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	l := h.waitLedger(1)[0]
	if !l.Partial || l.TokensInput == 0 || l.TokensOutput != 3 || !strings.Contains(l.Metadata, "drain") {
		t.Errorf("a drain cut short must be recorded partial with estimates: %s", describe(l))
	}
	h.consistent()
}

func TestUpstreamResetMidStream(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		h.fakes["anthropic"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
			sse(w,
				"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-3.5-sonnet\",\"content\":[],\"usage\":"+anthropicStartUsageJSON+"}}\n\n",
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n")
			panic(http.ErrAbortHandler) // the connection drops mid-stream
		})
		resp := h.post("/gateway/anthropic/v1/messages",
			`{"model":"claude-3.5-sonnet","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"Hello"}]}`, nil)
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(got), `"Hello"`) {
			t.Errorf("the events before the reset did not reach the client: %q", got)
		}
		l := h.waitLedger(1)[0]
		// Input is known from message_start; output is the larger of the
		// provider's initial count and the text relayed.
		if !l.Partial || l.StatusCode != http.StatusBadGateway || l.TokensInput != 5100 || l.TokensCachedInput != 3000 ||
			l.TokensOutput != 2 || !strings.Contains(l.Metadata, "cut") {
			t.Errorf("reset stream row = %s", describe(l))
		}

		// A reset before any usage: input estimated from the request.
		h.fakes["openai"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
			sse(w, `data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hello there"},"finish_reason":null}],"usage":null}`+"\n\n")
			panic(http.ErrAbortHandler)
		})
		resp = h.post("/gateway/openai/v1/chat/completions", chatStreamBody, nil)
		readAll(t, resp)
		l = h.waitLedger(2)[1]
		if !l.Partial || l.StatusCode != http.StatusBadGateway || l.TokensInput == 0 || l.TokensOutput != 3 ||
			!strings.Contains(l.Metadata, `"estimated":true`) {
			t.Errorf("reset stream without usage row = %s", describe(l))
		}
		h.consistent()
	})
}

func TestUpstreamErrorsAreRelayedAndRecordedAsFailed(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		for i, tc := range []struct {
			status int
			body   string
		}{
			{http.StatusTooManyRequests, `{"error":{"message":"Rate limit reached for gpt-4o","type":"requests","code":"rate_limit_exceeded"}}`},
			{http.StatusInternalServerError, `{"error":{"message":"The server had an error while processing your request.","type":"server_error"}}`},
		} {
			h.fakes["openai"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Retry-After", "7")
				w.Header().Set("X-Request-Id", "req_123")
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			for _, stream := range []bool{false, true} {
				body := `{"model":"gpt-4o","messages":[{"role":"user","content":"Hello"}]}`
				if stream {
					body = chatStreamBody
				}
				resp := h.post("/gateway/openai/v1/chat/completions", body, nil)
				got := readAll(t, resp)
				if resp.StatusCode != tc.status || got != tc.body || resp.Header.Get("Retry-After") != "7" || resp.Header.Get("X-Request-Id") != "req_123" {
					t.Errorf("relayed %d %q (Retry-After %q); want %d %q unchanged", resp.StatusCode, got, resp.Header.Get("Retry-After"), tc.status, tc.body)
				}
				if resp.Header.Get(gateway.CostHeader) != "0" || resp.Header.Get(gateway.OverheadHeader) == "" {
					t.Errorf("cost %q overhead %q", resp.Header.Get(gateway.CostHeader), resp.Header.Get(gateway.OverheadHeader))
				}
			}
			rows := h.waitLedger(2 * (i + 1))
			for _, l := range rows[2*i:] {
				if l.StatusCode != tc.status || l.TokensInput != 0 || l.TokensOutput != 0 || l.RequestCount != 0 || l.CostTotal != 0 || l.Partial ||
					!strings.Contains(l.ErrorMessage, "provider answered") {
					t.Errorf("failed call row = %s", describe(l))
				}
			}
		}
		h.consistent()
	})
}

func TestSlowUpstreamTimesOut(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, func(c *gateway.Config) { c.ReadTimeout = 500 * time.Millisecond })
		h.fakes["gemini"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
			<-r.Context().Done() // never answers
		})
		resp := h.post("/gateway/gemini/v1beta/models/gemini-2.5-flash:generateContent", `{"contents":[{"parts":[{"text":"Hello"}]}]}`, nil)
		got := readAll(t, resp)
		if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(got, "did not answer in time") {
			t.Errorf("slow upstream: %d %s", resp.StatusCode, got)
		}
		l := h.waitLedger(1)[0]
		if l.StatusCode != http.StatusGatewayTimeout || l.TokensInput != 0 || l.CostTotal != 0 || l.Provider != "gemini" {
			t.Errorf("timed-out call row = %s", describe(l))
		}

		// A stream that stalls after its first chunk is cut by the read
		// timeout and billed partially.
		h.fakes["gemini"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
			sse(w, "data: "+geminiChunk("Hel", geminiFirstUsageJSON)+"\r\n\r\n")
			<-r.Context().Done()
		})
		resp = h.post("/gateway/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", `{"contents":[{"parts":[{"text":"Hello"}]}]}`, nil)
		got = readAll(t, resp)
		if !strings.Contains(got, `"Hel"`) {
			t.Errorf("the first chunk did not reach the client: %q", got)
		}
		l = h.waitLedger(2)[1]
		if l.StatusCode != http.StatusGatewayTimeout || !l.Partial || l.TokensInput != 5000 || l.TokensOutput != 350 {
			t.Errorf("stalled stream row = %s", describe(l))
		}
		h.consistent()
	})
}

func TestErrorEventInsideAStream(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0], nil)
	h.fakes["anthropic"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
		sse(w,
			"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-3.5-sonnet\",\"content\":[],\"usage\":"+anthropicStartUsageJSON+"}}\n\n",
			"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n")
	})
	resp := h.post("/gateway/anthropic/v1/messages", `{"model":"claude-3.5-sonnet","max_tokens":10,"stream":true,"messages":[]}`, nil)
	if body := readAll(t, resp); !strings.Contains(body, "overloaded_error") {
		t.Errorf("the error event did not reach the client: %q", body)
	}
	l := h.waitLedger(1)[0]
	if l.StatusCode != http.StatusBadGateway || !l.Partial || l.TokensInput != 5100 || !strings.Contains(l.ErrorMessage, "overloaded_error") {
		t.Errorf("stream error row = %s", describe(l))
	}
}

func TestUnreachableUpstream(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close() // nothing listens there any more
	h := newHarness(t, storetest.Backends()[0], func(c *gateway.Config) {
		c.Upstreams["mistral"] = gateway.Upstream{BaseURL: closed + "/v1", Key: serverKeys["mistral"]}
		c.ConnectTimeout = time.Second
	})
	resp := h.post("/gateway/mistral/v1/chat/completions", `{"model":"mistral-7b","messages":[]}`, nil)
	if body := readAll(t, resp); resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "could not be reached") {
		t.Errorf("unreachable upstream: %d %s", resp.StatusCode, body)
	}
	l2 := h.waitLedger(1)[0]
	if l2.StatusCode != http.StatusBadGateway || l2.TokensInput != 0 || l2.CostTotal != 0 || l2.Partial {
		t.Errorf("unreachable upstream row = %s", describe(l2))
	}
	h.consistent()
}

// TestCallsWithUnstorableTextAreRecorded: a request path with a NUL or a
// byte that is not UTF-8 (the Gemini model is in the path), and a provider
// error whose message holds such bytes, are still recorded: the ledger's
// text is cleaned, never refused after the provider was paid for the call.
func TestCallsWithUnstorableTextAreRecorded(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		content := `{"contents":[{"parts":[{"text":"Hello"}]}],"generationConfig":{"maxOutputTokens":1000}}`
		for _, model := range []string{"gemini-2.5-flash%00", "gemini-2.5-flash%ff"} {
			resp := h.post("/gateway/gemini/v1beta/models/"+model+":generateContent", content, nil)
			readAll(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: status %d", model, resp.StatusCode)
			}
		}
		h.fakes["openai"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "{\"error\":{\"message\":\"bad \\u0000 byte \xff here\",\"type\":\"server_error\"}}")
		})
		resp := h.post("/gateway/openai/v1/chat/completions", chatBody, nil)
		readAll(t, resp)
		if resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("relayed %d; want 500", resp.StatusCode)
		}
		rows := h.waitLedger(3)
		for _, l := range rows {
			for _, s := range []string{l.Endpoint, l.ErrorMessage} {
				if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
					t.Errorf("row keeps unstorable text %q: %s", s, describe(l))
				}
			}
		}
		if msg := rows[2].ErrorMessage; !strings.Contains(msg, "bad \uFFFD byte \uFFFD here") {
			t.Errorf("error message = %q; want the provider's words with the bad bytes replaced", msg)
		}
		h.consistent()
	})
}
