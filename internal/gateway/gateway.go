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
	"github.com/alwrity/alwrity-billing/internal/money"
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
	// CostHeader is the call's exact cost in USD, rated as the ledger
	// records it (the record itself is written after the client is
	// answered): a header on a non-streaming response, a trailer on a
	// stream.
	CostHeader = "X-Alwrity-Cost"
)

// Meter is what the gateway needs of the metering core.
type Meter interface {
	Reserve(ctx context.Context, req billing.ReserveRequest) (billing.Reservation, error)
	// Quote rates an event as Settle and Record would, recording nothing.
	Quote(ctx context.Context, e billing.UsageEvent) (money.Amount, error)
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
	inflight  *inflight
	recorders *recorders
	keys      keyCache
	bufs      sync.Pool
	secrets   [][]byte // provider keys, redacted from anything relayed
}

// New returns a gateway metering with meter and authenticating with auth.
// Close it (or Shutdown) to write the records still owed and stop its
// background retries and idle connections.
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
		// Each upstream connection keeps these buffers while it lives;
		// the relay reads through its own larger buffer.
		WriteBufferSize: 8 << 10,
		ReadBufferSize:  8 << 10,
	}
	g := &Gateway{cfg: cfg, meter: meter, auth: auth, transport: tr, keys: keyCache{ttl: cfg.KeyCacheTTL}}
	g.bufs.New = func() any { b := make([]byte, 32<<10); return &b }
	g.pending = &pendingQueue{g: g, stop: make(chan struct{})}
	g.inflight = newInflight(cfg.MaxBackgroundSettles)
	g.recorders = newRecorders()
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

// Wait returns once no admitted call is still to be recorded (written to
// the ledger, or queued as pending while the database refuses it), or with
// an error when ctx ends first. Calls are recorded after their client is
// answered: a reader of the ledger waits here first.
func (g *Gateway) Wait(ctx context.Context) error { return g.inflight.wait(ctx) }

// Shutdown waits, until ctx ends, for the calls in flight to be recorded
// (relays still running and records being written in the background), then
// makes the pending queue's last attempt and closes idle upstream
// connections. Stop the HTTP server first: a call that ends after Shutdown
// began is recorded before its handler returns, and one that ends after
// ctx did may find the pending queue closed (it is logged). It returns an
// error counting the calls not recorded in time.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.inflight.close()
	err := g.inflight.wait(ctx)
	if err != nil {
		g.cfg.Logger.Error("gateway stopping before every call was recorded", "error", err)
	}
	g.recorders.close()
	g.pending.close()
	g.transport.CloseIdleConnections()
	return err
}

// Close is Shutdown without a deadline.
func (g *Gateway) Close() { _ = g.Shutdown(context.Background()) }

// Pending returns how many usage records wait for the database.
func (g *Gateway) Pending() int { return g.pending.len() }
