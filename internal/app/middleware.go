package app

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"

	"github.com/rs/cors"
)

// allowOrigins lets the pages of origins call every route from a browser
// (Config.CORSOrigins): it answers their preflight requests itself, before
// authentication (a preflight carries no key), and marks their responses
// readable. Any request header may be sent (keys come as Authorization,
// X-Api-Key or X-Goog-Api-Key, as each provider's SDK sends them), and
// Retry-After and X-Request-Id may be read. Credentials (cookies) are not
// allowed cross-origin. With no origins it adds nothing.
func allowOrigins(origins []string, next http.Handler) http.Handler {
	if len(origins) == 0 {
		return next
	}
	return cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
			http.MethodDelete},
		AllowedHeaders: []string{"*"},
		ExposedHeaders: []string{"Retry-After", "X-Request-Id"},
		MaxAge:         600,
	}).Handler(next)
}

// recoverPanics turns a handler panic into a logged 500 whose body says
// only "internal error". A handler that panics after its response started
// cannot change the status any more: the connection is cut instead
// (http.ErrAbortHandler), so that the client sees a broken response, not a
// 200 with a problem glued to half a body.
func recoverPanics(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := &startGuard{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				logger.ErrorContext(r.Context(), "handler panicked", "panic", v, "path", r.URL.Path,
					"response_started", g.started, "stack", string(debug.Stack()))
				if g.started {
					panic(http.ErrAbortHandler)
				}
				writeProblem(w, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(g, r)
	})
}

// startGuard notes whether a response has started (a final status, a byte
// of body, a flush or a hijack). Everything else reaches the writer below
// through Unwrap, as http.ResponseController expects.
type startGuard struct {
	http.ResponseWriter
	started bool
}

func (g *startGuard) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		g.started = true
	}
	g.ResponseWriter.WriteHeader(code)
}

func (g *startGuard) Write(b []byte) (int, error) {
	g.started = true
	return g.ResponseWriter.Write(b)
}

func (g *startGuard) Flush() { _ = g.FlushError() }

func (g *startGuard) FlushError() error {
	g.started = true
	// Asked directly first: a ResponseController is an allocation, and a
	// stream flushes after every event.
	if f, ok := g.ResponseWriter.(interface{ FlushError() error }); ok {
		return f.FlushError()
	}
	return http.NewResponseController(g.ResponseWriter).Flush()
}

func (g *startGuard) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	g.started = true
	return http.NewResponseController(g.ResponseWriter).Hijack()
}

func (g *startGuard) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// writeProblem writes an RFC 9457 problem for errors raised outside the
// API's own error mapping.
func writeProblem(w http.ResponseWriter, status int, detail string) {
	body, _ := json.Marshal(map[string]any{"title": http.StatusText(status), "status": status, "detail": detail})
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	w.Write(body)
}
