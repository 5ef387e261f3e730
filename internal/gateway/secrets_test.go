package gateway_test

import (
	"io"
	"net/http"
	"slices"
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

// TestProviderKeysNeverLeakFromAPlainStringError: some providers answer an
// error whose "error" is a plain string, not an object with a message. A
// key echoed in that string is redacted like any other, also when the
// message is long enough that the ledger keeps only its first 1,024 bytes
// and the key straddles that cut (redacted after the cut, its first half
// would no longer be found whole): it reaches neither the client, nor the
// logs, nor the ledger's error message, which carry the redaction marker
// instead.
func TestProviderKeysNeverLeakFromAPlainStringError(t *testing.T) {
	const kept = 1024 // bytes of a provider's message the ledger keeps
	// echo is a provider's error message naming key; a long one puts the
	// middle of the key at the cut.
	echo := func(key string, long bool) string {
		const lead, tail = "invalid api key ", " for this project"
		if !long {
			return lead + key + tail
		}
		pad := strings.Repeat("-", kept-len(key)/2-len(lead)-len("rejected: ")-1)
		return "rejected: " + pad + " " + lead + key + tail
	}
	h := newHarness(t, storetest.Backends()[0], nil)
	calls := []struct {
		provider, path, body string
		long                 bool
	}{
		{"openai", "/gateway/openai/v1/chat/completions", chatBody, false},
		{"openai", "/gateway/openai/v1/chat/completions", chatBody, true},
		{"openai", "/gateway/openai/v1/chat/completions", chatStreamBody, true},
		{"anthropic", "/gateway/anthropic/v1/messages", `{"model":"claude-3.5-sonnet","max_tokens":10,"messages":[]}`, true},
		{"gemini", "/gateway/gemini/v1beta/models/gemini-2.5-flash:generateContent", `{"contents":[]}`, true},
		{"mistral", "/gateway/mistral/v1/chat/completions", `{"model":"mistral-7b","messages":[]}`, true},
	}
	var want []string // the ledger's error messages
	for _, c := range calls {
		h.fakes[c.provider].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, mustJSON(map[string]string{"error": echo(presentedKey(r), c.long)}))
		})
		key := serverKeys[c.provider]
		msg := strings.ReplaceAll(echo(key, c.long), key, "[redacted]")
		if len(msg) > kept {
			msg = msg[:kept]
		}
		if !strings.Contains(msg, "[redacted]") {
			t.Fatalf("the test's message %q lost its marker to the cut", msg)
		}
		want = append(want, "provider answered 401 Unauthorized: "+msg)

		resp := h.post(c.path, c.body, nil)
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: status %d; want the provider's 401", c.path, resp.StatusCode)
		}
		if strings.Contains(body, key[:len(key)/2]) || !strings.Contains(body, "[redacted]") {
			t.Errorf("%s: the client read %q; want the %s key redacted", c.path, body, c.provider)
		}
	}
	rows := h.waitLedger(len(calls))
	for _, l := range rows {
		for p, k := range serverKeys {
			// Half a key is a leak too: a cut may have split it.
			if strings.Contains(describe(l), k[:len(k)/2]) || strings.Contains(describe(l), k[len(k)/2:]) {
				t.Errorf("(part of) the %s key reached the ledger: %s", p, describe(l))
			}
		}
		if !slices.Contains(want, l.ErrorMessage) {
			t.Errorf("%s call's error_message %q; want one of %q", l.Provider, l.ErrorMessage, want)
		}
	}
	logs := h.logs.String()
	for p, k := range serverKeys {
		if strings.Contains(logs, k[:len(k)/2]) || strings.Contains(logs, k[len(k)/2:]) {
			t.Errorf("(part of) the %s key reached the logs:\n%s", p, logs)
		}
	}
}
