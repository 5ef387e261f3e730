package tracking

import (
	"bufio"
	"errors"
	"net"
	"net/http"
)

// recorder remembers the status a handler wrote, and the request it was
// given with (whose route pattern the mux records). It offers what the
// writer it wraps offers — flushing, hijacking, and through Unwrap the
// rest of http.ResponseController — so a handler works the same behind
// the middleware as without it.
type recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	req         *http.Request
}

func (r *recorder) WriteHeader(code int) {
	// Informational answers (103 Early Hints) come before the real status;
	// 101 Switching Protocols is final.
	if !r.wroteHeader && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.ResponseWriter.Write(b)
}

// Flush sends what the handler has written so far, as http.Flusher.
func (r *recorder) Flush() { _ = r.FlushError() }

// FlushError flushes through http.ResponseController, which finds the
// flusher under writers that only offer Unwrap. Flushing sends the header,
// with status 200 when the handler set none, so a later WriteHeader no
// longer changes what the client got, nor what is recorded; unless the
// writer cannot flush at all, when nothing was sent.
func (r *recorder) FlushError() error {
	var err error
	if f, ok := r.ResponseWriter.(interface{ FlushError() error }); ok {
		err = f.FlushError() // net/http's own writer: no ResponseController to allocate per flush
	} else {
		err = http.NewResponseController(r.ResponseWriter).Flush()
	}
	if !errors.Is(err, http.ErrNotSupported) {
		r.wroteHeader = true
	}
	return err
}

// Hijack hands the connection over to the handler, as http.Hijacker, when
// the writer under the recorder allows it (HTTP/1; under HTTP/2 it
// returns an error wrapping http.ErrNotSupported). What the handler then
// writes to the connection bypasses the recorder, so a call whose
// connection was hijacked before a status was written is recorded as 101
// Switching Protocols — what a hijacking handler (a WebSocket upgrade)
// almost always answers — rather than as a plain 200 it never sent.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil && !r.wroteHeader {
		r.status, r.wroteHeader = http.StatusSwitchingProtocols, true
	}
	return conn, rw, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
