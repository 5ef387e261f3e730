// Package gateway is the LLM gateway: it serves the OpenAI, Anthropic,
// Gemini and Mistral APIs so that a provider's official SDK, pointed at
// this server with a user's alwrity key, has every call admitted against
// the user's plan, forwarded with the server-held provider key, relayed
// (streams as they arrive) and billed from the usage the provider reports.
package gateway

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// Headers the gateway reads or writes.
const (
	// UserHeader lets an admin key name the user a call is metered for.
	UserHeader = "X-Alwrity-User"
	// OverheadHeader is the time the gateway itself spent on the call, in
	// milliseconds: everything but waiting for the provider. A streamed
	// response carries the time before its first byte as a header and the
	// whole call's as a trailer.
	OverheadHeader = "X-Alwrity-Overhead-Ms"
	// CostHeader is the call's exact cost in USD: a header when the
	// response is held until it is billed (non-streaming), a trailer
	// otherwise.
	CostHeader = "X-Alwrity-Cost"
)

// Meter is what the gateway needs of the metering core.
type Meter interface {
	Reserve(ctx context.Context, req billing.ReserveRequest) (billing.Reservation, error)
	Settle(ctx context.Context, id string, e billing.UsageEvent) (billing.EventResult, error)
	Release(ctx context.Context, id string) (billing.Reservation, error)
	Record(ctx context.Context, events []billing.UsageEvent) ([]billing.EventResult, error)
}

// Authenticator finds who a gateway request acts for from the key its SDK
// sent.
type Authenticator interface {
	GatewayPrincipal(r *http.Request) (billing.Principal, error)
}

// Gateway serves the provider routes.
type Gateway struct {
	cfg       Config
	meter     Meter
	auth      Authenticator
	transport *http.Transport
	pending   *pendingQueue
	keys      keyCache
	bufs      sync.Pool
	secrets   [][]byte // provider keys, redacted from anything relayed
}

// New returns a gateway metering with meter and authenticating with auth.
// Close it to stop its background retries and idle connections.
func New(cfg Config, meter Meter, auth Authenticator) *Gateway {
	cfg = cfg.withDefaults()
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	// One transport for every upstream, so connections are reused across
	// calls and users.
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.ConnectTimeout,
		ResponseHeaderTimeout: cfg.ReadTimeout,
		ExpectContinueTimeout: time.Second,
		WriteBufferSize:       32 << 10,
		ReadBufferSize:        32 << 10,
	}
	g := &Gateway{cfg: cfg, meter: meter, auth: auth, transport: tr, keys: keyCache{ttl: cfg.KeyCacheTTL}}
	g.bufs.New = func() any { b := make([]byte, 32<<10); return &b }
	g.pending = &pendingQueue{g: g, stop: make(chan struct{})}
	for _, u := range cfg.Upstreams {
		if u.Key != "" {
			g.secrets = append(g.secrets, []byte(u.Key))
		}
	}
	return g
}

// Register mounts the gateway's routes on mux.
func (g *Gateway) Register(mux *http.ServeMux) {
	for i := range routes {
		rt := &routes[i]
		mux.Handle(rt.pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			x := &exchange{g: g, rt: rt, w: w, r: r, start: time.Now(), ts: g.cfg.Now()}
			x.serve()
		}))
	}
	mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		x := &exchange{g: g, w: w, r: r, start: time.Now()}
		x.problem(http.StatusNotFound, "the gateway serves no "+r.Method+" "+r.URL.Path+"; see the README's LLM gateway section")
	})
}

// Close stops retrying pending records (after one last attempt) and closes
// idle upstream connections.
func (g *Gateway) Close() {
	g.pending.close()
	g.transport.CloseIdleConnections()
}

// Pending returns how many usage records wait for the database.
func (g *Gateway) Pending() int { return g.pending.len() }
