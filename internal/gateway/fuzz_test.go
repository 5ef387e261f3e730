package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

type parsed struct{ name, data string }

// parseAll splits in into events, feeding it in pieces cut at the given
// points, and returns the events and the raw bytes they carried.
func parseAll(in []byte, cuts []int) ([]parsed, []byte) {
	return parseWith(&sseParser{}, in, cuts)
}

// eventSplitter is an SSE parser: sseParser, or the reference one the
// fuzz targets compare it with.
type eventSplitter interface {
	feed(b []byte, emit func(sseEvent))
	flush(emit func(sseEvent))
}

// parseWith is parseAll with parser p.
func parseWith(p eventSplitter, in []byte, cuts []int) ([]parsed, []byte) {
	var evs []parsed
	var raw []byte
	emit := func(e sseEvent) {
		evs = append(evs, parsed{string(e.name), string(e.data)})
		raw = append(raw, e.raw...)
	}
	prev := 0
	for _, c := range cuts {
		if c < prev || c > len(in) {
			continue
		}
		p.feed(in[prev:c], emit)
		prev = c
	}
	p.feed(in[prev:], emit)
	p.flush(emit)
	return evs, raw
}

func TestSSEParser(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []parsed
	}{
		{"data: a\n\n", []parsed{{"", "a"}}},
		{"event: x\r\ndata: 1\r\ndata:2\r\n\r\n", []parsed{{"x", "1\n2"}}},
		{"data: a\r\rdata: b\r\r", []parsed{{"", "a"}, {"", "b"}}},
		{": comment\n\ndata: [DONE]\n\n", []parsed{{"", ""}, {"", "[DONE]"}}},
		{"data: unterminated", []parsed{{"", "unterminated"}}},
	} {
		for cut := 0; cut <= len(tc.in); cut++ {
			got, raw := parseAll([]byte(tc.in), []int{cut})
			if string(raw) != tc.in {
				t.Errorf("%q cut at %d: raw %q is not the input", tc.in, cut, raw)
			}
			if len(got) != len(tc.want) {
				t.Errorf("%q cut at %d: events %q, want %q", tc.in, cut, got, tc.want)
				continue
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("%q cut at %d: event %d = %q, want %q", tc.in, cut, i, got[i], tc.want[i])
				}
			}
		}
	}
}

// FuzzSSEParser: whatever the bytes and however they are split, the
// client receives exactly the bytes the provider sent, and the events read
// do not depend on how the stream was cut into reads.
func FuzzSSEParser(f *testing.F) {
	f.Add([]byte("event: message_start\ndata: {\"a\":1}\n\ndata: [DONE]\n\n"), 3, 17)
	f.Add([]byte("data: x\r\n\r\ndata: y\r\r:c\n"), 1, 9)
	f.Add([]byte("\r\n\n\r"), 1, 2)
	f.Fuzz(func(t *testing.T, in []byte, a, b int) {
		whole, raw := parseAll(in, nil)
		if !bytes.Equal(raw, in) {
			t.Fatalf("relayed %q, want %q", raw, in)
		}
		if a < 0 {
			a = -a
		}
		if b < 0 {
			b = -b
		}
		cuts := []int{a % (len(in) + 1), b % (len(in) + 1)}
		if cuts[0] > cuts[1] {
			cuts[0], cuts[1] = cuts[1], cuts[0]
		}
		split, raw := parseAll(in, cuts)
		if !bytes.Equal(raw, in) {
			t.Fatalf("split at %v relayed %q, want %q", cuts, raw, in)
		}
		// A lone \r at a cut may end a line early in one reading and not
		// in the other (the grammar lets \r end a line); compare only
		// inputs without \r for equal events.
		if !bytes.Contains(in, []byte{'\r'}) {
			if len(split) != len(whole) {
				t.Fatalf("split at %v gave %d events, whole gave %d", cuts, len(split), len(whole))
			}
			for i := range whole {
				if whole[i] != split[i] {
					t.Fatalf("event %d: %q vs %q", i, whole[i], split[i])
				}
			}
		}
	})
}

func validUsage(t *testing.T, u usage) {
	t.Helper()
	if err := u.q.Validate(); err != nil {
		t.Fatalf("usage %+v does not validate: %v", u.q, err)
	}
	if u.q.Input > 100_000_000 || u.q.Output > 100_000_000 {
		t.Fatalf("usage %+v beyond one event's limits", u.q)
	}
}

// FuzzOpenAIUsage reads arbitrary bodies and stream events the way the
// gateway reads OpenAI's and Mistral's: it never panics and always yields
// usage the ledger accepts.
func FuzzOpenAIUsage(f *testing.F) {
	f.Add([]byte(`{"model":"gpt-4o","usage":{"prompt_tokens":1200,"completion_tokens":300,"prompt_tokens_details":{"cached_tokens":1024},"completion_tokens_details":{"reasoning_tokens":128}}}`), true)
	f.Add([]byte(`{"choices":[],"usage":{"prompt_tokens":-5,"completion_tokens":9e18}}`), false)
	f.Add([]byte(`{"type":"response.completed","response":{"model":"gpt-4o","usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":50},"output_tokens":3,"output_tokens_details":{"reasoning_tokens":7}}}}`), true)
	f.Add([]byte(`[DONE]`), false)
	f.Add([]byte(`{"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"m"},"usage":null}}`), false)
	f.Add([]byte(`{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}`), true)
	f.Add([]byte(`{"ERROR":{"message":"m","code":"503"}}`), false)
	f.Add([]byte(`{"\u0065rror":"boom","choices":[]}`), false)
	f.Add([]byte(`{"choices":[{"delta":{"content":"an error"}}],"error":null}`), false)
	f.Fuzz(func(t *testing.T, data []byte, hide bool) {
		for _, read := range []func(*usage){
			func(u *usage) { readOpenAIBody(data, u) },
			func(u *usage) { readOpenAIChatEvent(data, hide, u) },
			func(u *usage) { readOpenAIChatError(data, u) },
			func(u *usage) { readResponsesBody(data, u) },
			func(u *usage) { readResponsesEvent(data, u) },
		} {
			var u usage
			read(&u)
			validUsage(t, u)
			if s := u.streamErrStatus; s != 0 && (s < 400 || s > 599) {
				t.Fatalf("stream error status %d is not an error status", s)
			}
		}
		var u usage
		if !readOpenAIChatEvent(data, false, &u) {
			t.Fatal("an event was hidden from a client that asked for usage")
		}
		// The error reader skips only events in which encoding/json could
		// not find an error member.
		var got, want usage
		readOpenAIChatError(data, &got)
		var c struct {
			Error json.RawMessage `json:"error"`
		}
		if json.Unmarshal(data, &c) == nil {
			readStreamError(c.Error, &want)
		}
		if got != want {
			t.Fatalf("read error %+v, want %+v", got, want)
		}
	})
}

// FuzzAnthropicUsage reads arbitrary Messages bodies and event sequences.
func FuzzAnthropicUsage(f *testing.F) {
	f.Add([]byte(`{"type":"message_start","message":{"model":"claude","usage":{"input_tokens":100,"cache_creation_input_tokens":2000,"cache_read_input_tokens":3000,"output_tokens":1}}}`),
		[]byte(`{"type":"message_delta","usage":{"output_tokens":500,"cache_creation":{"ephemeral_5m_input_tokens":1500,"ephemeral_1h_input_tokens":900}}}`))
	f.Add([]byte(`{"usage":{"input_tokens":-1,"server_tool_use":{"web_search_requests":99999999}}}`), []byte(`{"type":"message_delta","usage":{"input_tokens":null}}`))
	f.Fuzz(func(t *testing.T, first, second []byte) {
		var s anthropicStream
		var u usage
		s.event(first, &u)
		s.event(second, &u)
		validUsage(t, u)
		var b usage
		readAnthropicBody(first, &b)
		validUsage(t, b)
	})
}

// FuzzGeminiUsage reads arbitrary generateContent bodies, arrays and
// chunks.
func FuzzGeminiUsage(f *testing.F) {
	f.Add([]byte(`{"usageMetadata":{"promptTokenCount":5000,"candidatesTokenCount":200,"cachedContentTokenCount":4000,"thoughtsTokenCount":300},"modelVersion":"models/gemini-2.5-flash"}`))
	f.Add([]byte(`[{"usageMetadata":{"promptTokenCount":1}},{"usageMetadata":{"promptTokenCount":2,"cachedContentTokenCount":7}}]`))
	f.Add([]byte(`[{"candidates":[{"content":{"parts":[{"text":"Hel"}]}}],"usageMetadata":{"promptTokenCount":5}},` + "\r\n" +
		`{"candidates":[{"content":{"parts":[{"text":"lo"}]}}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":2}},{"cand`))
	f.Add([]byte(`[{"usageMetadata":{"promptTokenCount":1}},{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}]`))
	f.Add([]byte(`{"error":{"code":"429","message":"exhausted"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var u usage
		readGeminiBody(data, &u)
		validUsage(t, u)
		// An array cut short is read up to its last whole chunk: never
		// more text than the whole array holds.
		for _, n := range []int{len(data) / 2, len(data) - 1} {
			if n < 0 || !bytes.HasPrefix(bytes.TrimSpace(data), []byte("[")) {
				continue
			}
			var p usage
			readGeminiBody(data[:n], &p)
			validUsage(t, p)
			if p.textChars > u.textChars {
				t.Fatalf("the first %d bytes hold %d characters of text, the whole %d", n, p.textChars, u.textChars)
			}
		}
		var c usage
		readGeminiChunk(data, &c)
		validUsage(t, c)
		if strings.HasPrefix(c.model, "models/") {
			t.Fatalf("model %q keeps its resource prefix", c.model)
		}
	})
}

// FuzzIncludeUsage: the rewritten request is still the client's JSON
// object, with include_usage set and every other field kept.
func FuzzIncludeUsage(f *testing.F) {
	f.Add([]byte(`{"model":"gpt-4o","stream":true,"stream_options":{"include_obfuscation":false}}`))
	f.Add([]byte(`{"stream_options":null}`))
	f.Add([]byte(`{"stream_options":{"include_usage":false}}`))
	f.Add([]byte(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Hi"}]}`))
	f.Add([]byte(` { } `))
	f.Add([]byte(`{"STREAM_OPTIONS":{"include_usage":false},"stream":true}`))
	f.Add([]byte(`{"stream\u005foptions":null}`))
	f.Add([]byte(`{"ſtream_options":null}`))
	f.Add([]byte(`{"a":1,"a":2}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) {
			return // the route has decoded every body it rewrites
		}
		out, err := withIncludeUsage(body)
		if err != nil {
			return
		}
		// The fast path means what the decoding rewrite means.
		if fast, ok := spliceIncludeUsage(body); ok {
			slow, err := rewriteIncludeUsage(body)
			if err != nil {
				t.Fatalf("spliced %q, which the rewrite refuses: %v", body, err)
			}
			var a, b any
			if json.Unmarshal(fast, &a) != nil || json.Unmarshal(slow, &b) != nil || !reflect.DeepEqual(a, b) {
				t.Fatalf("spliced %q into %q; the rewrite gives %q", body, fast, slow)
			}
		}
		var before, after map[string]json.RawMessage
		if json.Unmarshal(body, &before) != nil {
			t.Fatalf("rewrote a body that is not a JSON object: %q", body)
		}
		if err := json.Unmarshal(out, &after); err != nil {
			t.Fatalf("rewritten body is not JSON: %v", err)
		}
		var opts struct {
			IncludeUsage bool `json:"include_usage"`
		}
		if json.Unmarshal(after["stream_options"], &opts) != nil || !opts.IncludeUsage {
			t.Fatalf("include_usage not set in %s", out)
		}
		for k := range before {
			if _, ok := after[k]; !ok {
				t.Fatalf("field %q lost", k)
			}
		}
	})
}

// FuzzInspect reads arbitrary request bodies on every route: it never
// panics, never reserves a negative output, and a stream it rewrites still
// asks for usage.
func FuzzInspect(f *testing.F) {
	f.Add([]byte(`{"model":"gpt-4o","stream":true,"max_tokens":-5}`), uint8(0), "gemini-2.5-flash:streamGenerateContent")
	f.Add([]byte(`{"generationConfig":{"maxOutputTokens":100}}`), uint8(4), "m:generateContent")
	f.Add([]byte(`{"model":"claude","max_tokens":1024,"stream":true}`), uint8(3), "")
	f.Fuzz(func(t *testing.T, body []byte, which uint8, call string) {
		rt := &routes[int(which)%len(routes)]
		r := httptest.NewRequest(http.MethodPost, "http://x"+rt.clientBase+"/chat/completions", bytes.NewReader(body))
		r.SetPathValue("version", "v1beta")
		r.SetPathValue("call", call)
		c, err := rt.inspect(r, body)
		if err != nil {
			return
		}
		if c.maxTokens < 0 {
			t.Fatalf("negative output reserved: %d", c.maxTokens)
		}
		if c.hideUsage && !bytes.Contains(c.body, []byte(`"include_usage":true`)) {
			t.Fatalf("hid usage without asking for it: %s", c.body)
		}
	})
}

// BenchmarkIncludeUsage: asking for stream usage on a chat request with a
// 20 KB conversation, spliced (the usual request) and rewritten (one that
// names stream_options already).
func BenchmarkIncludeUsage(b *testing.B) {
	msg := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 40)
	var msgs []string
	for range 10 {
		msgs = append(msgs, fmt.Sprintf(`{"role":"user","content":%q}`, msg))
	}
	body := []byte(`{"model":"gpt-4o","stream":true,"messages":[` + strings.Join(msgs, ",") + `]}`)
	b.Run("splice", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := withIncludeUsage(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("rewrite", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := rewriteIncludeUsage(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
