package gateway

import (
	"strings"
	"testing"
)

// chatStreamReads is a Chat Completions stream as the gateway reads it: n
// content events and the usage chunk the gateway asked for, then [DONE],
// cut into reads of perRead events.
func chatStreamReads(n, perRead int) [][]byte {
	const chunk = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18",` +
		`"choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}],"usage":null}` + "\n\n"
	const usageChunk = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18",` +
		`"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,` +
		`"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}` + "\n\n"
	var reads [][]byte
	var b strings.Builder
	for i := range n {
		b.WriteString(chunk)
		if (i+1)%perRead == 0 {
			reads = append(reads, []byte(b.String()))
			b.Reset()
		}
	}
	b.WriteString(usageChunk + "data: [DONE]\n\n")
	return append(reads, []byte(b.String()))
}

// BenchmarkRelayEvents splits a whole stream into events and reads their
// usage per op, as relayEvents does between its upstream reads and its
// writes: a short answer in a few reads, and a long one arriving in bursts
// of many events per read.
func BenchmarkRelayEvents(b *testing.B) {
	for _, bc := range []struct {
		name           string
		events, window int
	}{{"7-events-3-per-read", 7, 3}, {"700-events-100-per-read", 700, 100}} {
		reads := chatStreamReads(bc.events, bc.window)
		size := 0
		for _, r := range reads {
			size += len(r)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			rt := &routes[0] // OpenAI chat
			var p sseParser
			for b.Loop() {
				sr := streamReader{rt: rt, hideUsage: true}
				var u usage
				relayed := 0
				emit := func(ev sseEvent) {
					if sr.event(ev, &u) {
						relayed += len(ev.raw)
					}
				}
				for _, r := range reads {
					p.feed(r, emit)
				}
				p.flush(emit)
				if !u.reported || relayed == 0 {
					b.Fatal("no usage read")
				}
			}
		})
	}
}
