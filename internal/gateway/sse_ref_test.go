package gateway

import (
	"bytes"
	"testing"
)

// refSSEParser is the parser sseParser replaced, which copied every read
// into pending and moved the rest of it after each event: its reading is
// the reference the current one must match, event for event. It reads
// fields with sseParser.field, which did not change.
type refSSEParser struct {
	pending []byte // bytes of the event being read
	off     int    // bytes of pending already split into lines
	sseParser
}

// feed adds b and calls emit for every event it completes. The event's
// slices are valid only during the call.
func (p *refSSEParser) feed(b []byte, emit func(sseEvent)) {
	p.pending = append(p.pending, b...)
	for {
		rest := p.pending[p.off:]
		i := bytes.IndexAny(rest, "\r\n")
		if i < 0 {
			return
		}
		end := i + 1
		if rest[i] == '\r' {
			if i+1 == len(rest) {
				// A lone \r at the end may be the first half of \r\n.
				return
			}
			if rest[i+1] == '\n' {
				end++
			}
		}
		line := rest[:i]
		p.off += end
		if len(line) == 0 {
			emit(sseEvent{raw: p.pending[:p.off], name: p.name, data: p.data})
			n := copy(p.pending, p.pending[p.off:])
			p.pending = p.pending[:n]
			p.off, p.name, p.data, p.hasData = 0, p.name[:0], p.data[:0], false
			continue
		}
		p.sseParser.field(line)
	}
}

// flush emits what is left when the stream ends: an event without its
// blank line (or a lone trailing \r) still reaches the client, and its data
// is still read for usage.
func (p *refSSEParser) flush(emit func(sseEvent)) {
	if len(p.pending) == 0 {
		return
	}
	if rest := p.pending[p.off:]; len(rest) > 0 {
		line := bytes.TrimRight(rest, "\r")
		if len(line) > 0 {
			p.sseParser.field(line)
		}
	}
	emit(sseEvent{raw: p.pending, name: p.name, data: p.data})
	p.pending, p.off, p.name, p.data, p.hasData = p.pending[:0], 0, p.name[:0], p.data[:0], false
}

// refParseAll is parseAll with the reference parser.
func refParseAll(in []byte, cuts []int) ([]parsed, []byte) {
	return parseWith(&refSSEParser{}, in, cuts)
}

// FuzzSSEParserMatchesReference: however the stream is cut into reads,
// the parser emits the events, names, data and raw bytes the reference
// parser emits for the same reads.
func FuzzSSEParserMatchesReference(f *testing.F) {
	f.Add([]byte("event: message_start\ndata: {\"a\":1}\n\ndata: [DONE]\n\n"), 3, 17)
	f.Add([]byte("data: x\r\n\r\ndata: y\r\r:c\n"), 1, 9)
	f.Add([]byte("\r\n\n\r"), 1, 2)
	f.Add([]byte("data: a\r"), 8, 9)
	f.Add([]byte("data:1\ndata:2\r\n\rdata: 3\n\n\n"), 6, 14)
	f.Fuzz(func(t *testing.T, in []byte, a, b int) {
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
		for _, c := range [][]int{nil, cuts, {cuts[0]}} {
			got, gotRaw := parseAll(in, c)
			want, wantRaw := refParseAll(in, c)
			if !bytes.Equal(gotRaw, wantRaw) {
				t.Fatalf("cuts %v: relayed %q, reference %q", c, gotRaw, wantRaw)
			}
			if len(got) != len(want) {
				t.Fatalf("cuts %v: %d events %q, reference %d %q", c, len(got), got, len(want), want)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("cuts %v: event %d = %q, reference %q", c, i, got[i], want[i])
				}
			}
		}
	})
}
