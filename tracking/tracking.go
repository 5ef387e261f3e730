// Package tracking meters the AI-provider calls a Go service makes on
// behalf of its users: wrap any http.Handler, and each request is admitted
// against the user's plan before the handler runs and settled afterwards
// with its response time, status and the tokens the handler reports.
//
// It works in-process against alwrity-billing's store (NewLocalMeter) or
// against a remote alwrity-billing server (NewClient), which batches and
// retries settlements with the same event ids, bounds its buffer and never
// blocks a request past its timeout. With Config.Metrics (NewMetrics) it
// exports Prometheus request metrics, the same implementation and series as
// the alwrity-billing server's own /metrics.
package tracking

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Call is what a request is about to spend.
type Call struct {
	UserID   string
	Provider string
	Model    string
	// Tokens is the most the call may use; 0 when unknown.
	Tokens int64
}

// Usage is what a call spent, as the provider reported it. Token buckets are
// parts of TokensInput and TokensOutput.
type Usage struct {
	Model              string
	TokensInput        int64
	TokensOutput       int64
	TokensCachedInput  int64
	TokensCacheWrite5m int64
	TokensCacheWrite1h int64
	TokensReasoning    int64
	Requests           int64
	Searches           int64
	Images             int64
	Pages              int64
}

// Outcome is how a call ended.
type Outcome struct {
	UserID   string
	Provider string
	EventID  string
	// Endpoint is the route that was called. The middleware sets the
	// http.ServeMux pattern that matched, without its method
	// ("/api/{provider}/chat"), when it can see one, and otherwise the
	// cleaned request path. The meters record it as the server stores it:
	// control characters and invalid UTF-8 replaced by U+FFFD, cut to 512
	// bytes.
	Endpoint string
	// Method is the request's method; the meters record one that is longer
	// than 16 bytes or not an HTTP token as "OTHER".
	Method string
	// StatusCode is the status the client was sent: 500 for a handler that
	// panicked, 101 for a connection the handler hijacked.
	StatusCode   int
	ResponseTime time.Duration
	Timestamp    time.Time
	Usage        Usage
}

// Meter admits and settles calls.
type Meter interface {
	// Reserve holds one call of the user's limits; it returns a
	// *LimitError when a limit refuses it.
	Reserve(ctx context.Context, c Call) (reservationID string, err error)
	// Settle records the call's real usage and releases the rest of the
	// hold. It must not block for long: a remote meter queues it.
	Settle(ctx context.Context, reservationID string, o Outcome) error
}

// LimitError is a refusal by the user's plan limits.
type LimitError struct {
	Provider string
	Limit    string // total_calls, <provider>_calls, <provider>_tokens or monthly_cost
	Message  string
	Used     string // used and held this period, exact text (USD for monthly_cost)
	Max      string // the limit as exact text (USD for monthly_cost)
}

func (e *LimitError) Error() string { return e.Message }

// ErrUnavailable wraps failures to reach the meter.
var ErrUnavailable = errors.New("billing meter unavailable")

// Identify names the user and provider of a request; ok is false for
// requests that are not metered.
type Identify func(r *http.Request) (userID, provider string, ok bool)

// Config configures the middleware.
type Config struct {
	Meter    Meter
	Identify Identify
	// FailOpen lets requests through when the meter cannot be reached;
	// by default they are refused with 503.
	FailOpen bool
	// Timeout bounds admission, so a slow meter never holds a request
	// forever, and settling. Zero or less means the default, 2 s: a
	// negative bound would refuse every request.
	Timeout time.Duration
	// OnError is told about settle failures (default: ignored).
	OnError func(error)
	// Metrics, when set, counts every request, metered calls and refusals
	// for Prometheus (see NewMetrics).
	Metrics *Metrics
	Now     func() time.Time
}

type userKey struct{}

// WithUser returns a context naming the authenticated user; the service's
// own authentication sets it, and DefaultIdentify reads it.
func WithUser(ctx context.Context, userID string) context.Context {
	return context.WithValue(ctx, userKey{}, userID)
}

type reportKey struct{}

// report collects what a handler says it spent.
type report struct {
	mu    sync.Mutex
	usage Usage
	set   bool
}

// Report records, from inside a metered handler, what the call spent. Later
// reports replace earlier ones (providers report cumulative totals).
func Report(ctx context.Context, u Usage) {
	if r, ok := ctx.Value(reportKey{}).(*report); ok {
		r.mu.Lock()
		r.usage, r.set = u, true
		r.mu.Unlock()
	}
}

// Middleware meters next per cfg. With cfg.Metrics it also counts and times
// every request next serves, metered or not, as Metrics.Middleware does.
// It panics when cfg.Meter or next is nil, at construction rather than on
// the first metered request.
func Middleware(cfg Config, next http.Handler) http.Handler {
	if cfg.Meter == nil {
		panic("tracking: Middleware needs a Config.Meter (NewLocalMeter or NewClient)")
	}
	if next == nil {
		panic("tracking: Middleware needs a handler to wrap")
	}
	if cfg.Identify == nil {
		cfg.Identify = DefaultIdentify
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t := &tracker{cfg: cfg, next: next}
	if cfg.Metrics == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.serve(w, r, nil) })
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cfg.Metrics.serve(w, r, func(rec *recorder) { t.serve(rec, r, rec) })
	})
}

// tracker meters the requests of one Middleware.
type tracker struct {
	cfg  Config
	next http.Handler
}

// serve meters one request. rec, when not nil, is the request metrics'
// recorder (and w itself): the metered call's status is read from it, and
// it learns the request passed on, whose route pattern the mux records.
func (t *tracker) serve(w http.ResponseWriter, r *http.Request, rec *recorder) {
	cfg, next := t.cfg, t.next
	user, provider, ok := cfg.Identify(r)
	if !ok {
		next.ServeHTTP(w, r)
		return
	}
	start := cfg.Now()
	ctx, cancel := context.WithTimeout(r.Context(), cfg.Timeout)
	id, err := cfg.Meter.Reserve(ctx, Call{UserID: user, Provider: provider})
	cancel()
	var le *LimitError
	switch {
	case errors.As(err, &le):
		cfg.Metrics.refusal(provider, le.Limit)
		writeLimit(w, le, provider)
		return
	case err != nil && !cfg.FailOpen:
		cfg.Metrics.refusal(provider, "unavailable")
		w.Header().Set("Retry-After", "5")
		writeProblem(w, http.StatusServiceUnavailable, "usage metering is unavailable; try again shortly")
		return
	}
	rep := &report{}
	if rec == nil {
		rec = &recorder{ResponseWriter: w, status: http.StatusOK}
	}
	inner := r.WithContext(context.WithValue(r.Context(), reportKey{}, rep))
	rec.req = inner
	if id == "" {
		// Failed open: nothing was reserved, so nothing is settled.
		next.ServeHTTP(rec, inner)
		cfg.Metrics.served(provider, rec.status, cfg.Now().Sub(start))
		return
	}
	// Settling is deferred so that a handler that panics still has its
	// call recorded (as failed) and its hold released, instead of
	// holding a unit of the user's limits until the reservation expires.
	returned := false
	defer func() {
		status := rec.status
		if !returned {
			status = http.StatusInternalServerError
		}
		rep.mu.Lock()
		usage := rep.usage
		rep.mu.Unlock()
		o := Outcome{UserID: user, Provider: provider, EventID: id, Endpoint: endpointOf(r, inner), Method: cleanMethod(r.Method),
			StatusCode: status, ResponseTime: cfg.Now().Sub(start), Timestamp: start, Usage: usage}
		cfg.Metrics.served(provider, status, o.ResponseTime)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), cfg.Timeout)
		defer cancel()
		if err := cfg.Meter.Settle(sctx, id, o); err != nil && cfg.OnError != nil {
			cfg.OnError(fmt.Errorf("settle %s: %w", id, err))
		}
	}()
	next.ServeHTTP(rec, inner)
	returned = true
}
