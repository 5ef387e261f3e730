package gateway

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

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
//
// A piece is read where it lies: only the bytes of an event it leaves
// unfinished are kept (in pending) for the next piece, so that the events
// of a read are neither copied nor moved one by one.
type sseParser struct {
	pending []byte // bytes of the unfinished event
	off     int    // bytes of pending already split into lines
	name    []byte
	data    []byte
	hasData bool
}

// feed adds b and calls emit for every event it completes. The event's
// slices are valid only during the call.
func (p *sseParser) feed(b []byte, emit func(sseEvent)) {
	buf := b
	if len(p.pending) > 0 {
		// An event continues: it is read from pending, whole.
		p.pending = append(p.pending, b...)
		buf = p.pending
	}
	start, off := 0, p.off // the event being read starts at start
	for {
		end, next, ok := lineEnd(buf, off)
		if !ok {
			break
		}
		line := buf[off:end]
		off = next
		if len(line) == 0 {
			emit(sseEvent{raw: buf[start:off], name: p.name, data: p.data})
			start = off
			p.name, p.data, p.hasData = p.name[:0], p.data[:0], false
			continue
		}
		p.field(line)
	}
	// Keep what is left of the unfinished event, at the start of pending.
	if len(p.pending) > 0 {
		n := copy(p.pending, p.pending[start:])
		p.pending = p.pending[:n]
	} else {
		p.pending = append(p.pending, buf[start:]...)
	}
	p.off = off - start
}

// lineEnd finds the end of the line that starts at buf[off]: the line is
// buf[off:end] and the next starts at next. ok is false when the line is
// not complete yet, a \r at the end of buf included: it may be the first
// half of \r\n.
func lineEnd(buf []byte, off int) (end, next int, ok bool) {
	rest := buf[off:]
	i := bytes.IndexByte(rest, '\n')
	scope := rest
	if i >= 0 {
		scope = rest[:i]
	}
	// A \r before the first \n, if any, ends the line first.
	if j := bytes.IndexByte(scope, '\r'); j >= 0 {
		switch {
		case j+1 == len(rest):
			return 0, 0, false
		case rest[j+1] == '\n':
			return off + j, off + j + 2, true
		}
		return off + j, off + j + 1, true
	}
	if i < 0 {
		return 0, 0, false
	}
	return off + i, off + i + 1, true
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

// eventScan reads the JSON data of a stream event on a fast path, for the
// plain shapes providers send, and gives up (its readers return false) on
// anything it cannot read exactly as encoding/json would: the caller then
// decodes the event with encoding/json, whose reading is the reference.
//
// It decides nothing encoding/json could decide otherwise. A key is matched
// only when it is plain ASCII (no escape, no byte that Unicode folding
// could map onto a field's name), ASCII case-insensitively, as
// encoding/json matches it. A field met twice, which encoding/json merges
// or replaces, is given up on. A string with an escape or invalid UTF-8 is
// decoded by encoding/json, and a nested value the reader skips is checked
// by json.Valid. A value of a type the field cannot hold is given up on, as
// encoding/json would fail the whole event on it.
type eventScan struct {
	b []byte
	i int
}

// maxSkipDepth bounds the nesting of a value the scan skips, far below
// encoding/json's own limit, so that json.Valid on the value alone agrees
// with the validity of the whole event.
const maxSkipDepth = 64

// peek skips whitespace and returns the next byte, 0 at the end.
func (s *eventScan) peek() byte {
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; c {
		case ' ', '\t', '\n', '\r':
		default:
			return c
		}
	}
	return 0
}

// eat consumes c if it is the next byte after whitespace.
func (s *eventScan) eat(c byte) bool {
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

// end reports whether nothing but whitespace is left.
func (s *eventScan) end() bool {
	s.peek()
	return s.i == len(s.b)
}

// object reads an object, calling member with each key; member reads the
// key's value. Keys are given only when plain ASCII.
func (s *eventScan) object(member func(key []byte) bool) bool {
	if !s.eat('{') {
		return false
	}
	if s.eat('}') {
		return true
	}
	for {
		key, ok := s.key()
		if !ok || !s.eat(':') || !member(key) {
			return false
		}
		if !s.eat(',') {
			return s.eat('}')
		}
	}
}

// array reads an array, calling elem to read each element.
func (s *eventScan) array(elem func() bool) bool {
	if !s.eat('[') {
		return false
	}
	if s.eat(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if !s.eat(',') {
			return s.eat(']')
		}
	}
}

// key reads an object key made of printable ASCII without escapes.
func (s *eventScan) key() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	for i := s.i; i < len(s.b); i++ {
		switch c := s.b[i]; {
		case c == '"':
			k := s.b[s.i:i]
			s.i = i + 1
			return k, true
		case c < 0x20 || c == '\\' || c >= utf8.RuneSelf:
			return nil, false
		}
	}
	return nil, false
}

// keyIs reports whether key names the field name as encoding/json matches
// a plain ASCII key: exactly, or equal once ASCII letters are folded.
func keyIs(key []byte, name string) bool {
	return len(key) == len(name) && bytes.EqualFold(key, []byte(name))
}

// once marks bit in seen and reports whether it was not marked yet.
func once(seen *uint32, bit uint32) bool {
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

// str reads a string literal and returns it, quotes included, with whether
// it holds an escape and whether it holds a byte outside ASCII. An escaped
// literal's end is trusted only once encoding/json has accepted it.
func (s *eventScan) str() (lit []byte, escaped, ascii, ok bool) {
	if s.peek() != '"' {
		return nil, false, false, false
	}
	ascii = true
	for i := s.i + 1; i < len(s.b); i++ {
		switch c := s.b[i]; {
		case c == '"':
			lit = s.b[s.i : i+1]
			s.i = i + 1
			return lit, escaped, ascii, true
		case c == '\\':
			escaped = true
			i++ // the escaped byte cannot end the literal
		case c < 0x20:
			return nil, false, false, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false, false, false
}

// literal consumes word (true, false or null) if it comes next.
func (s *eventScan) literal(word string) bool {
	s.peek()
	if len(s.b)-s.i >= len(word) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return true
	}
	return false
}

// stringField reads what encoding/json would store in a string field: a
// string's decoded bytes, or nothing for null (which leaves the field
// empty).
func (s *eventScan) stringField() ([]byte, bool) {
	if s.literal("null") {
		return nil, true
	}
	lit, escaped, ascii, ok := s.str()
	if !ok {
		return nil, false
	}
	if raw := lit[1 : len(lit)-1]; !escaped && (ascii || utf8.Valid(raw)) {
		return raw, true
	}
	// Escapes and invalid UTF-8 (read as U+FFFD) are encoding/json's.
	var v string
	if json.Unmarshal(lit, &v) != nil {
		return nil, false
	}
	return []byte(v), true
}

// textLen reads a string field and returns its decoded length.
func (s *eventScan) textLen() (int64, bool) {
	if s.literal("null") {
		return 0, true
	}
	lit, escaped, ascii, ok := s.str()
	if !ok {
		return 0, false
	}
	if raw := lit[1 : len(lit)-1]; !escaped && (ascii || utf8.Valid(raw)) {
		return int64(len(raw)), true
	}
	var v string
	if json.Unmarshal(lit, &v) != nil {
		return 0, false
	}
	return int64(len(v)), true
}

// int64Field reads what encoding/json would store in an int64 field: an
// integer literal in range, or nothing for null.
func (s *eventScan) int64Field() (int64, bool) {
	if s.literal("null") {
		return 0, true
	}
	start := s.i
	if !s.number() {
		return 0, false
	}
	num := s.b[start:s.i]
	digits := num
	if digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) > 18 || bytes.ContainsAny(digits, ".eE") {
		// Long, fractional or exponent forms are strconv's, as they are
		// encoding/json's.
		n, err := strconv.ParseInt(string(num), 10, 64)
		return n, err == nil
	}
	var n int64
	for _, c := range digits {
		n = n*10 + int64(c-'0')
	}
	if num[0] == '-' {
		n = -n
	}
	return n, true
}

// skip reads any value whose content does not matter, only its validity.
func (s *eventScan) skip() bool {
	switch s.peek() {
	case '"':
		lit, escaped, _, ok := s.str()
		return ok && (!escaped || json.Valid(lit))
	case '{', '[':
		return s.nested()
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	return s.number()
}

// number reads a number literal as the JSON grammar defines it.
func (s *eventScan) number() bool {
	b, i := s.b, s.i
	digits := func() bool {
		start := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		digits()
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	s.i = i
	return true
}

// nested skips an object or array: it finds the value's end by its
// brackets and leaves its validity to json.Valid.
func (s *eventScan) nested() bool {
	depth := 0
	for i := s.i; i < len(s.b); i++ {
		switch s.b[i] {
		case '"':
			for i++; i < len(s.b) && s.b[i] != '"'; i++ {
				if s.b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			if depth++; depth > maxSkipDepth {
				return false
			}
		case '}', ']':
			if depth--; depth == 0 {
				v := s.b[s.i : i+1]
				s.i = i + 1
				return json.Valid(v)
			}
		}
	}
	return false
}
