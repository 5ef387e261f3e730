package gateway

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// The reference readers are the stream readers as they were before the
// fast path (eventScan): every event decoded whole by encoding/json. The
// readers must agree with them on every input.

func refReadOpenAIChatEvent(data []byte, hideUsage bool, u *usage) (show bool) {
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
		u.q, u.reported = c.Usage.quantities(), true
		if hideUsage && len(c.Choices) == 0 {
			return false
		}
	}
	return true
}

func refReadResponsesEvent(data []byte, u *usage) {
	var e responsesEvent
	if json.Unmarshal(data, &e) != nil {
		return
	}
	switch e.Type {
	case "response.output_text.delta", "response.reasoning_text.delta", "response.refusal.delta":
		u.textChars += int64(len(e.Delta))
	case "error", "response.failed":
		u.streamErr = e.Type + ": " + e.failure()
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

func refAnthropicEvent(s *anthropicStream, data []byte, u *usage) {
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
			u.streamErr = e.Error.Type + ": " + e.Error.Message
		}
	}
	if got != nil {
		s.last.merge(got)
		u.q, u.reported = s.last.quantities(), true
	}
}

func refReadGeminiChunk(data []byte, u *usage) {
	var r geminiResponse
	if json.Unmarshal(data, &r) != nil {
		return
	}
	u.add(r)
}

// Real chunks, as the fakes (fakes_test.go) and the providers send them.
const (
	chatChunk = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06",` +
		`"system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":" there"},"logprobs":null,"finish_reason":null}],"usage":null}`
	chatFirstChunk = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06",` +
		`"system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}`
	chatStopChunk = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06",` +
		`"system_fingerprint":"fp_1","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}`
	chatUsageChunk = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06",` +
		`"system_fingerprint":"fp_1","choices":[],"usage":{"prompt_tokens":1200,"completion_tokens":300,"total_tokens":1500,` +
		`"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},` +
		`"completion_tokens_details":{"reasoning_tokens":128,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}`
	chatToolChunk = `{"id":"chatcmpl-2","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","service_tier":"default",` +
		`"choices":[{"index":0,"delta":{"content":null,"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Par"}}]},` +
		`"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"x1Yz"}`
	chatAzureChunk = `{"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}},"delta":{"content":"Bonjour à tous\n"},` +
		`"finish_reason":null,"index":0,"logprobs":null}],"created":1700000000,"id":"chatcmpl-3","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk"}`
	chatSpacedChunk  = `{"id": "x", "model": "deepseek-reasoner", "choices": [{"index": 0, "delta": {"reasoning_content": "Let me think…", "content": null}}]}`
	mistralLastChunk = `{"id":"cmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"mistral-7b",` +
		`"choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"usage":{"prompt_tokens":1000,"completion_tokens":200,"total_tokens":1200}}`

	responsesDelta = `{"type":"response.output_text.delta","sequence_number":1,"item_id":"msg_1","output_index":0,` +
		`"content_index":0,"delta":"Hello","logprobs":[],"obfuscation":"ab12"}`
	responsesCompleted = `{"type":"response.completed","sequence_number":2,"response":{"id":"resp_1","object":"response",` +
		`"status":"completed","model":"gpt-4o-2024-08-06","output":[],"usage":{"input_tokens":1200,"input_tokens_details":{"cached_tokens":1024},` +
		`"output_tokens":300,"output_tokens_details":{"reasoning_tokens":128},"total_tokens":1500}}}`
	responsesFailed = `{"type":"response.failed","message":"boom"}`

	anthropicDelta    = `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}`
	anthropicThinking = `{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Hmm\u2026 \"quoted\""}}`
	anthropicBlock    = `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`
	anthropicPing     = `{"type": "ping"}`
	anthropicStart    = `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-3.5-sonnet",` +
		`"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":100,"cache_creation_input_tokens":2000,` +
		`"cache_read_input_tokens":3000,"output_tokens":1,"cache_creation":{"ephemeral_5m_input_tokens":1500,"ephemeral_1h_input_tokens":500}}}}`
	anthropicMsgDelta = `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":500}}`
	anthropicError    = `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`

	geminiStreamChunk = `{"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"},"index":0}],` +
		`"usageMetadata":{"promptTokenCount":5000,"candidatesTokenCount":50,"totalTokenCount":5350,"cachedContentTokenCount":4000,` +
		`"thoughtsTokenCount":300,"promptTokensDetails":[{"modality":"TEXT","tokenCount":5000}]},"modelVersion":"gemini-2.5-flash","responseId":"r1"}`
	geminiThoughtChunk = `{"candidates":[{"content":{"parts":[{"text":"**Plan**\n","thought":true},{"functionCall":{"name":"f","args":{"a":[1,{"b":null}]}}}],` +
		`"role":"model"},"finishReason":"STOP","safetyRatings":[]}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":-3,` +
		`"toolUsePromptTokenCount":7},"modelVersion":"models/gemini-2.5-pro"}`
)

// adversarial are inputs on which a careless fast path would read what
// encoding/json does not.
var adversarial = []string{
	``, `[DONE]`, ` [DONE] `, `null`, `{}`, `[]`, `"x"`, `{`, `}`, `{"model":"m"`, `{"model":"m"} x`, `{"model":"m"}{}`,
	`{"model":"m","usage":{"prompt_tokens":1}}`,
	`{"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}`,
	`{"model":"m","usage":{"prompt_tokens":1},"usage":null}`,
	`{"model":"m","usage":null,"usage":{"prompt_tokens":1}}`,
	`{"model":"m","USAGE":{"prompt_tokens":1}}`,
	`{"model":"m","Usage":{"prompt_tokens":1}}`,
	`{"model":"m","u\u0073age":{"prompt_tokens":1}}`,
	"{\"model\":\"m\",\"u\u017fage\":{\"prompt_tokens\":1}}", // ſ folds to s
	`{"model":"m","choices":[{"delta":{"content":"has \"usage\":{\"prompt_tokens\":9} inside"}}]}`,
	`{"model":"m","choices":[{"delta":{"content":"a"},"delta":{"reasoning_content":"bb"}}]}`,
	`{"model":"m","choices":[{"delta":{"content":"a","content":"bbb"}}]}`,
	`{"model":"m","choices":[{"delta":{"content":"a"}}],"choices":[{"delta":{}}]}`,
	`{"choices":[{}],"usage":{"prompt_tokens":5}}`, `{"choices":[null],"usage":{"prompt_tokens":5}}`, `{"usage":{}}`, `{"usage":5}`,
	`{"usage":{"prompt_tokens":1.0}}`, `{"usage":{"prompt_tokens":"1"}}`, `{"usage":{"prompt_tokens":null,"completion_tokens":-7}}`,
	`{"usage":{"prompt_tokens":99999999999,"completion_tokens":9223372036854775807,"output_tokens":1}}`,
	`{"usage":{"prompt_tokens":10,"prompt_tokens_details":null,"input_tokens_details":{"cached_tokens":4},"cached_tokens":99}}`,
	`{"usage":{"prompt_tokens":10,"prompt_tokens_details":{"cached_tokens":4,"cached_tokens":5}}}`,
	`{"usage":{"prompt_tokens":10,"prompt_tokens_details":{"cached_tokens":4},"prompt_tokens_details":{"audio_tokens":5}}}`,
	`{"usage":{"prompt_tokens":10,"Prompt_Tokens":11}}`, `{"usage":{"prompt_tokens":10,"prompt_tokens_details":{"CACHED_TOKENS":12}}}`,
	`{"usage":{"completion_tokens":10,"completion_tokens_details":{"reasoning_tokens":20},"output_tokens_details":{"reasoning_tokens":3}}}`,
	`{"usage":{"prompt_tokens_details":[],"completion_tokens":1}}`, `{"usage":{"prompt_tokens_details":{"cached_tokens":[]}}}`,
	`{"model":"a","model":"b"}`, `{"model":"a","MODEL":"b"}`, `{"model":"a","Model":null}`,
	`{"model":5}`, `{"model":null,"choices":[{"delta":{"content":"x"}}]}`, `{"model":"\u006d\u00e9"}`,
	`{"model":"m","choices":[{"delta":{"content":5}}]}`,
	`{"model":"m","choices":[{"delta":{"content":["x"]}}]}`,
	`{"model":"m","choices":[{"delta":null}]}`, `{"model":"m","choices":[null]}`, `{"model":"m","choices":null}`,
	`{"model":"m","choices":[{"delta":"x"}]}`, `{"model":"m","choices":{}}`,
	`{"model":"m","choices":[{"message":{"content":"x"}}]}`, `{"model":"m","choices":[{"message":"x"}]}`,
	`{"model":"m","choices":[{"delta":{"content":"\ud83d\ude00 \ud83d x \u00"}}]}`,
	`{"model":"m","choices":[{"delta":{"content":"\ud83d\ude00 \ud83d x \\ \/ \b\f\n\r\t"}}]}`,
	"{\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"bad \xff\xfe utf8 \xed\xa0\x80\"}}]}",
	"{\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"tab\tinside\"}}]}",
	"{\"model\":\"m\xff\"}",
	"\t\r\n {\"model\" : \"m\" ,\r\n\"choices\"\t:\t[ { \"delta\" : { \"content\" : \"x\" } } ] } \n",
	"\u00a0{\"model\":\"m\"}\u0085",
	`{"model":"m","x":01}`, `{"model":"m","x":-}`, `{"model":"m","x":1.}`, `{"model":"m","x":1e}`, `{"model":"m","x":-0.5e+10}`,
	`{"model":"m","x":tru}`, `{"model":"m","x":nul}`, `{"model":"m","x":truex}`, `{"model":"m","x":[1,2,]}`, `{"model":"m","x":{"a":1,}}`,
	`{"model":"m",}`, `{,"model":"m"}`, `{"model":"m" "x":1}`, `{"model":"m","x":[}`, `{"model":"m","x":"\q"}`, `{"model":"m","x":"\u12"}`,
	`{"model":"m","x":[` + strings.Repeat("[", 80) + strings.Repeat("]", 80) + `]}`,
	`{"model":"m","x":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`,
	`{"model":"m","x":{"choices":[{"delta":{"content":"nested"}}]}}`,
	`{"model":"m","x":"]}\"{"}`, `{"model":"m","x":["]"]}`, `{"model":"m","x":["\"]"]}`,
	`{"type":"response.output_text.delta","delta":"a","delta":"bc"}`,
	`{"type":"response.output_text.delta","delta":null}`, `{"type":"response.output_text.delta","delta":{}}`,
	`{"type":"response.output_text.delta","delta":"x","response":null}`,
	`{"type":"response.output_text.delta","delta":"x","response":{"model":"gpt"}}`,
	`{"type":"response.output_text.delta","delta":"x","message":7}`,
	`{"type":"error","message":"m"}`, `{"TYPE":"response.failed","Message":"m"}`, `{"type":"response.refusal.delta","delta":"\u00e9"}`,
	`{"type":"response.output_text.delt\u0061","delta":"xy"}`,
	`{"type":"content_block_delta","delta":{"text":"a","thinking":"b","partial_json":"{\"c\":1}"}}`,
	`{"type":"content_block_delta","delta":null}`, `{"type":"content_block_delta","delta":{"text":"a"},"delta":{"text":"b"}}`,
	`{"type":"content_block_delta","delta":{"text":"a","TEXT":"bb"}}`, `{"type":"content_block_delta","model":7,"delta":{"text":"a"}}`,
	`{"type":"message_start","message":null}`, `{"type":"message_delta","usage":null}`, `{"type":"error"}`, `{"type":"error","error":null}`,
	`{"type":"message_delta","usage":{"output_tokens":"5"}}`, `{"type":"message_delta","usage":{"output_tokens":5}}`,
	`{"candidates":[{"content":{"parts":[{"text":"a"},{"text":"bc"}]}},{"content":{"parts":[]}}],"usageMetadata":null}`,
	`{"candidates":[{"content":{"parts":[{"text":"a","text":"b"}]}}]}`,
	`{"usageMetadata":{"promptTokenCount":1.5}}`, `{"usageMetadata":{"promptTokenCount":1e3}}`, `{"usageMetadata":{"promptTokenCount":-0}}`,
	`{"usageMetadata":{"promptTokenCount":9223372036854775807,"candidatesTokenCount":-9223372036854775808}}`,
	`{"usageMetadata":{"promptTokenCount":9223372036854775808}}`, `{"usageMetadata":{"promptTokenCount":999999999999999999}}`,
	`{"usageMetadata":{"promptTokenCount":"5"}}`, `{"usageMetadata":{"promptTokenCount":null,"PROMPTTOKENCOUNT":3}}`,
	`{"usageMetadata":{"promptTokenCount":1},"usageMetadata":{"candidatesTokenCount":2}}`,
	`{"modelVersion":"models/"}`, `{"modelVersion":"models/x","candidates":[{"content":null}]}`, `{"candidates":[{"content":{"parts":null}}]}`,
}

// seeds adds the real chunks, the adversarial inputs, and sequences of
// them joined by NUL (which no JSON text holds) to f.
func seeds(f *testing.F, add func(data []byte)) {
	real := []string{chatChunk, chatFirstChunk, chatStopChunk, chatUsageChunk, chatToolChunk, chatAzureChunk, chatSpacedChunk,
		mistralLastChunk, responsesDelta, responsesCompleted, responsesFailed, anthropicDelta, anthropicThinking, anthropicBlock,
		anthropicPing, anthropicStart, anthropicMsgDelta, anthropicError, geminiStreamChunk, geminiThoughtChunk}
	for _, s := range append(real, adversarial...) {
		add([]byte(s))
	}
	add([]byte(strings.Join([]string{chatFirstChunk, chatChunk, chatStopChunk, chatUsageChunk, "[DONE]"}, "\x00")))
	add([]byte(strings.Join([]string{anthropicStart, anthropicBlock, anthropicPing, anthropicDelta, anthropicMsgDelta}, "\x00")))
	add([]byte(strings.Join([]string{geminiStreamChunk, geminiThoughtChunk, `{"modelVersion":""}`}, "\x00")))
}

// events splits fuzz input into a sequence of events at NUL bytes.
func events(data []byte) [][]byte { return bytes.Split(data, []byte{0}) }

// starts are the states a reader may find a stream's usage in.
var starts = []usage{{}, {model: "earlier", textChars: 7, reported: true, q: billing.Quantities{Input: 5, Output: 3}}}

func FuzzOpenAIChatEventDiff(f *testing.F) {
	seeds(f, func(b []byte) { f.Add(b, true); f.Add(b, false) })
	f.Fuzz(func(t *testing.T, data []byte, hide bool) {
		for _, start := range starts {
			got, want := start, start
			for i, ev := range events(data) {
				gs, ws := readOpenAIChatEvent(ev, hide, &got), refReadOpenAIChatEvent(ev, hide, &want)
				if gs != ws || got != want {
					t.Fatalf("event %d %q: read (%v, %+v), want (%v, %+v)", i, ev, gs, got, ws, want)
				}
			}
		}
	})
}

func FuzzResponsesEventDiff(f *testing.F) {
	seeds(f, func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, start := range starts {
			got, want := start, start
			for i, ev := range events(data) {
				readResponsesEvent(ev, &got)
				refReadResponsesEvent(ev, &want)
				if got != want {
					t.Fatalf("event %d %q: read %+v, want %+v", i, ev, got, want)
				}
			}
		}
	})
}

func FuzzAnthropicEventDiff(f *testing.F) {
	seeds(f, func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, start := range starts {
			got, want := start, start
			var gs, ws anthropicStream
			for i, ev := range events(data) {
				gs.event(ev, &got)
				refAnthropicEvent(&ws, ev, &want)
				if got != want || !reflect.DeepEqual(gs, ws) {
					t.Fatalf("event %d %q: read %+v %+v, want %+v %+v", i, ev, got, gs.last, want, ws.last)
				}
			}
		}
	})
}

func FuzzGeminiChunkDiff(f *testing.F) {
	seeds(f, func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, start := range starts {
			got, want := start, start
			for i, ev := range events(data) {
				readGeminiChunk(ev, &got)
				refReadGeminiChunk(ev, &want)
				if got != want {
					t.Fatalf("event %d %q: read %+v, want %+v", i, ev, got, want)
				}
			}
		}
	})
}

// TestEventScanFastPath: the chunks streams are made of take the fast
// path, and the ones it leaves to encoding/json do not.
func TestEventScanFastPath(t *testing.T) {
	for _, tc := range []struct {
		data string
		scan func([]byte) bool
		fast bool
	}{
		{chatChunk, chatScan, true},
		{chatFirstChunk, chatScan, true},
		{chatStopChunk, chatScan, true},
		{chatToolChunk, chatScan, true},
		{chatAzureChunk, chatScan, true},
		{chatSpacedChunk, chatScan, true},
		{chatUsageChunk, chatScan, true},
		{mistralLastChunk, chatScan, true},
		{responsesDelta, responsesScan, true},
		{responsesCompleted, responsesScan, false},
		{responsesFailed, responsesScan, false},
		{anthropicDelta, anthropicScan, true},
		{anthropicThinking, anthropicScan, true},
		{anthropicBlock, anthropicScan, true},
		{anthropicPing, anthropicScan, true},
		{anthropicStart, anthropicScan, false},
		{anthropicMsgDelta, anthropicScan, false},
		{anthropicError, anthropicScan, false},
		{geminiStreamChunk, geminiScan, true},
		{geminiThoughtChunk, geminiScan, true},
	} {
		if got := tc.scan([]byte(tc.data)); got != tc.fast {
			t.Errorf("fast path %v, want %v: %s", got, tc.fast, tc.data)
		}
	}
}

func chatScan(b []byte) bool      { _, ok := scanOpenAIChatEvent(b); return ok }
func responsesScan(b []byte) bool { _, _, ok := scanResponsesEvent(b); return ok }
func anthropicScan(b []byte) bool { _, ok := scanAnthropicEvent(b); return ok }
func geminiScan(b []byte) bool    { _, ok := scanGeminiChunk(b); return ok }

// BenchmarkReadEvent reads one realistic stream event per op, with the
// stream readers (fast) and with the reference readers (decode).
func BenchmarkReadEvent(b *testing.B) {
	var as anthropicStream
	for _, bc := range []struct {
		name       string
		data       string
		fast, full func([]byte, *usage)
	}{
		{"openai-chat", chatChunk,
			func(d []byte, u *usage) { readOpenAIChatEvent(d, true, u) },
			func(d []byte, u *usage) { refReadOpenAIChatEvent(d, true, u) }},
		{"openai-chat-usage", chatUsageChunk,
			func(d []byte, u *usage) { readOpenAIChatEvent(d, true, u) },
			func(d []byte, u *usage) { refReadOpenAIChatEvent(d, true, u) }},
		{"openai-chat-escaped", chatAzureChunk,
			func(d []byte, u *usage) { readOpenAIChatEvent(d, true, u) },
			func(d []byte, u *usage) { refReadOpenAIChatEvent(d, true, u) }},
		{"responses", responsesDelta, readResponsesEvent, refReadResponsesEvent},
		{"anthropic", anthropicDelta, as.event, func(d []byte, u *usage) { refAnthropicEvent(&as, d, u) }},
		{"gemini", geminiStreamChunk, readGeminiChunk, refReadGeminiChunk},
	} {
		data := []byte(bc.data)
		for _, impl := range []struct {
			name string
			read func([]byte, *usage)
		}{{"decode", bc.full}, {"fast", bc.fast}} {
			b.Run(bc.name+"/"+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))
				var u usage
				for b.Loop() {
					impl.read(data, &u)
				}
			})
		}
	}
}
