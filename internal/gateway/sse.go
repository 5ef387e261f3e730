package gateway

import "bytes"

// sseEvent is one server-sent event as the upstream wrote it.
type sseEvent struct {
	// raw is the event's bytes as received, its terminating blank line
	// included, so that the client sees exactly what the provider sent.
	raw  []byte
	name []byte // the event: field, if any
	data []byte // the data: lines joined by '\n'
}

// sseParser splits an event stream into events as its bytes arrive, in
// pieces of any size. It accepts the three line endings the SSE grammar
// allows (\n, \r\n, \r).
type sseParser struct {
	pending []byte // bytes of the event being read
	off     int    // bytes of pending already split into lines
	name    []byte
	data    []byte
	hasData bool
}

// feed adds b and calls emit for every event it completes. The event's
// slices are valid only during the call.
func (p *sseParser) feed(b []byte, emit func(sseEvent)) {
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
		p.field(line)
	}
}

// flush emits what is left when the stream ends: an event without its
// blank line (or a lone trailing \r) still reaches the client, and its data
// is still read for usage.
func (p *sseParser) flush(emit func(sseEvent)) {
	if len(p.pending) == 0 {
		return
	}
	if rest := p.pending[p.off:]; len(rest) > 0 {
		line := bytes.TrimRight(rest, "\r")
		if len(line) > 0 {
			p.field(line)
		}
	}
	emit(sseEvent{raw: p.pending, name: p.name, data: p.data})
	p.pending, p.off, p.name, p.data, p.hasData = p.pending[:0], 0, p.name[:0], p.data[:0], false
}

func (p *sseParser) field(line []byte) {
	if line[0] == ':' {
		return // a comment
	}
	name, value, found := bytes.Cut(line, []byte{':'})
	if found && len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	switch string(name) {
	case "data":
		if p.hasData {
			p.data = append(p.data, '\n')
		}
		p.data = append(p.data, value...)
		p.hasData = true
	case "event":
		p.name = append(p.name[:0], value...)
	}
}
