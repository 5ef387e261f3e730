package tracking_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/tracking"
)

// unwrapOnly is a response writer of another middleware that offers
// nothing beyond http.ResponseWriter but Unwrap, which
// http.ResponseController follows.
type unwrapOnly struct{ http.ResponseWriter }

func (u unwrapOnly) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// plainWriter is a response writer that can neither flush nor hijack.
type plainWriter struct{ http.ResponseWriter }

// serveWriter runs one metered request through the middleware with w (as
// the server's writer) and returns what was settled.
func serveWriter(t *testing.T, w http.ResponseWriter, h http.HandlerFunc) tracking.Outcome {
	t.Helper()
	m := &fakeMeter{}
	r := httptest.NewRequest(http.MethodPost, "/api/openai/chat", nil)
	tracking.Middleware(tracking.Config{Meter: m}, h).ServeHTTP(w, r.WithContext(tracking.WithUser(r.Context(), "u1")))
	got := m.settled()
	if len(got) != 1 {
		t.Fatalf("settled %+v, want one outcome", got)
	}
	return got[0]
}

// TestFlushThroughUnwrap: a flush behind the middleware reaches the
// server's writer also under a writer that offers only Unwrap, as
// http.Flusher and as http.ResponseController.
func TestFlushThroughUnwrap(t *testing.T) {
	for name, flush := range map[string]func(w http.ResponseWriter) error{
		"Flusher":            func(w http.ResponseWriter) error { w.(http.Flusher).Flush(); return nil },
		"ResponseController": func(w http.ResponseWriter) error { return http.NewResponseController(w).Flush() },
	} {
		t.Run(name, func(t *testing.T) {
			rr := httptest.NewRecorder()
			o := serveWriter(t, unwrapOnly{rr}, func(w http.ResponseWriter, _ *http.Request) {
				if err := flush(w); err != nil {
					t.Errorf("flush: %v", err)
				}
			})
			if !rr.Flushed || rr.Code != http.StatusOK || o.StatusCode != http.StatusOK {
				t.Errorf("flushed %v, sent %d, settled %d; want a flushed 200", rr.Flushed, rr.Code, o.StatusCode)
			}
		})
	}
}

// TestFlushSendsStatus: a flush sends the header, so a status written
// after it is not what the client got, nor what is recorded.
func TestFlushSendsStatus(t *testing.T) {
	rr := httptest.NewRecorder()
	o := serveWriter(t, rr, func(w http.ResponseWriter, _ *http.Request) {
		w.(http.Flusher).Flush()
		w.WriteHeader(http.StatusInternalServerError)
	})
	if rr.Code != http.StatusOK || o.StatusCode != http.StatusOK {
		t.Errorf("sent %d, settled %d; want 200 both", rr.Code, o.StatusCode)
	}
}

// TestFlushErrorNotSupported: under a writer that cannot flush, FlushError
// says so, nothing was sent, and a later status is the one recorded.
func TestFlushErrorNotSupported(t *testing.T) {
	rr := httptest.NewRecorder()
	o := serveWriter(t, plainWriter{rr}, func(w http.ResponseWriter, _ *http.Request) {
		f, ok := w.(interface{ FlushError() error })
		if !ok {
			t.Fatalf("the middleware's writer has no FlushError")
		}
		if err := f.FlushError(); !errors.Is(err, http.ErrNotSupported) {
			t.Errorf("FlushError: %v, want ErrNotSupported", err)
		}
		w.WriteHeader(http.StatusBadGateway)
	})
	if rr.Code != http.StatusBadGateway || o.StatusCode != http.StatusBadGateway {
		t.Errorf("sent %d, settled %d; want 502 both", rr.Code, o.StatusCode)
	}
}

// TestHijack: a handler behind the middleware can take over the
// connection (a WebSocket upgrade), and the call is recorded as 101
// Switching Protocols, not as a 200 it never sent.
func TestHijack(t *testing.T) {
	m := &fakeMeter{}
	h := tracking.Middleware(tracking.Config{Meter: m}, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hj, ok := w.(http.Hijacker)
		if !ok {
			t.Errorf("the middleware's writer is no http.Hijacker")
			http.Error(w, "cannot hijack", http.StatusInternalServerError)
			return
		}
		conn, rw, err := hj.Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		line, _ := rw.ReadString('\n') // the first message of the new protocol
		rw.WriteString(line)
		rw.Flush()
	}))
	served := make(chan struct{}) // closed when the middleware has settled
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(served)
		withUser(h).ServeHTTP(w, r)
	}))
	defer srv.Close()

	conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(waitLimit))
	io.WriteString(conn, "GET /api/openai/realtime HTTP/1.1\r\nHost: x\r\nX-User: u1\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello\n")
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("answer %d", res.StatusCode)
	}
	if echo, err := br.ReadString('\n'); err != nil || echo != "hello\n" {
		t.Errorf("echo %q (%v)", echo, err)
	}
	select {
	case <-served:
	case <-time.After(waitLimit):
		t.Fatal("the handler did not return")
	}
	if got := m.settled(); len(got) != 1 || got[0].StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("settled %+v, want one call with status 101", got)
	}
}

// TestHijackNotSupported: under a writer that cannot hijack (HTTP/2, a
// test recorder) Hijack says so, and the status the handler then writes is
// recorded.
func TestHijackNotSupported(t *testing.T) {
	rr := httptest.NewRecorder()
	o := serveWriter(t, rr, func(w http.ResponseWriter, _ *http.Request) {
		hj, ok := w.(http.Hijacker)
		if !ok {
			t.Fatalf("the middleware's writer is no http.Hijacker")
		}
		if _, _, err := hj.Hijack(); !errors.Is(err, http.ErrNotSupported) {
			t.Errorf("hijack: %v, want ErrNotSupported", err)
		}
		http.Error(w, "upgrade required", http.StatusUpgradeRequired)
	})
	if rr.Code != http.StatusUpgradeRequired || o.StatusCode != http.StatusUpgradeRequired || !strings.Contains(rr.Body.String(), "upgrade") {
		t.Errorf("sent %d, settled %d", rr.Code, o.StatusCode)
	}
}
