package gateway_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestProviderKeysNeverLeak drives every route, streaming and not, plus a
// provider error that echoes the key it was sent, and asserts that no
// provider key appears in any response (status line, headers, body,
// trailers), in the logs or in the ledger, and that the client's alwrity key
// never reaches a provider.
func TestProviderKeysNeverLeak(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0], nil)
	// A provider answering an error that names the key it received.
	h.fakes["anthropic"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Debug-Key", r.Header.Get("X-Api-Key"))
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key `+r.Header.Get("X-Api-Key")+`"}}`)
	})
	calls := []struct{ path, body string }{
		{"/gateway/openai/v1/chat/completions", chatBody},
		{"/gateway/openai/v1/chat/completions", chatStreamBody},
		{"/gateway/openai/v1/responses", `{"model":"gpt-4o","input":"Hello","stream":true}`},
		{"/gateway/openai/v1/embeddings", `{"model":"text-embedding-3-small","input":"Hello","encoding_format":"base64"}`},
		{"/gateway/anthropic/v1/messages", `{"model":"claude-3.5-sonnet","max_tokens":10,"messages":[]}`},
		{"/gateway/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=" + h.key, `{"contents":[]}`},
		{"/gateway/mistral/v1/chat/completions", `{"model":"mistral-7b","stream":true,"messages":[]}`},
	}
	var seen strings.Builder
	for _, c := range calls {
		resp := h.post(c.path, c.body, nil)
		body := readAll(t, resp)
		seen.WriteString(resp.Status + "\n")
		for _, hd := range []http.Header{resp.Header, resp.Trailer} {
			for k, vs := range hd {
				seen.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
			}
		}
		seen.WriteString(body + "\n")
	}
	rows := h.waitLedger(len(calls))
	var ledger strings.Builder
	for _, l := range rows {
		ledger.WriteString(describe(l) + "\n")
	}
	for p, k := range serverKeys {
		if strings.Contains(seen.String(), k) {
			t.Errorf("the %s key reached a client:\n%s", p, seen.String())
		}
		if strings.Contains(h.logs.String(), k) {
			t.Errorf("the %s key reached the logs:\n%s", p, h.logs.String())
		}
		if strings.Contains(ledger.String(), k) {
			t.Errorf("the %s key reached the ledger:\n%s", p, ledger.String())
		}
	}
	if !strings.Contains(seen.String(), "[redacted]") {
		t.Errorf("the provider's echo of its key was not redacted:\n%s", seen.String())
	}
	for p, f := range h.fakes {
		headers, queries := f.seen()
		for i, hd := range headers {
			for k, vs := range hd {
				if strings.Contains(strings.Join(vs, ","), h.key) {
					t.Errorf("the alwrity key reached %s in header %s", p, k)
				}
			}
			if strings.Contains(queries[i], h.key) {
				t.Errorf("the alwrity key reached %s in the query", p)
			}
		}
	}
}
