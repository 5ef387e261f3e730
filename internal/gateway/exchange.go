package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
)

// exchange is one client call through the gateway.
type exchange struct {
	g     *Gateway
	rt    *route
	w     http.ResponseWriter
	r     *http.Request
	start time.Time // monotonic, for durations
	ts    time.Time // the event's timestamp, from the injected clock
	// upstreamWait is the time spent waiting on the provider, which the
	// overhead header leaves out.
	upstreamWait time.Duration

	user  string
	call  call
	rsvID string // "" when the call went through fail-open
	// owes: the call was admitted and its record is not yet on its way
	// to the ledger.
	owes bool
}

// serve authenticates, admits, forwards, relays and bills one call.
func (x *exchange) serve() {
	g, r := x.g, x.r
	p, err := g.principal(r)
	if errors.Is(err, errKeyUnverifiable) {
		if r.Context().Err() != nil {
			return // the client left; nothing was called
		}
		// The key cannot be checked: refused as any call is while the
		// database is away. Fail-open does not let an unverified key
		// through (principal serves keys it verified before).
		g.cfg.Logger.Error("gateway key lookup failed; refusing the call", "provider", x.rt.provider, "error", err)
		x.databaseUnavailable()
		return
	}
	if err != nil {
		x.problemFor(err)
		return
	}
	x.user = p.UserID
	if p.IsAdmin() {
		if x.user = strings.TrimSpace(r.Header.Get(UserHeader)); x.user == "" {
			x.problem(http.StatusBadRequest, "an admin key must name the user to meter in the "+UserHeader+" header")
			return
		}
	}
	up := g.cfg.Upstreams[x.rt.provider]
	if up.Key == "" {
		x.problem(http.StatusServiceUnavailable, "the gateway has no "+x.rt.provider+" key configured")
		return
	}
	// The body is read whole (it is bounded): the gateway needs its model
	// and limits, and forwarding a buffered copy keeps streams complete
	// under load (see PROVIDERS.md).
	body, err := io.ReadAll(http.MaxBytesReader(x.w, r.Body, g.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			x.problem(http.StatusRequestEntityTooLarge, "the request body is larger than the gateway's limit")
			return
		}
		x.problem(http.StatusBadRequest, "the request body could not be read")
		return
	}
	if x.call, err = x.rt.inspect(r, body); err != nil {
		x.problemFor(err)
		return
	}
	if !x.admit() {
		return
	}
	g.inflight.add()
	x.owes = true
	defer x.abandon()
	x.forward(up)
}

// admit reserves one call and the output the request may use (its
// max_tokens or equivalent, else the configured default; embeddings have
// no output and reserve their input estimate), and the estimated cost. It
// answers the client itself and returns false when the call may not go on.
func (x *exchange) admit() bool {
	g, c := x.g, x.call
	tokens := c.maxTokens
	switch {
	case x.rt.kind == openaiEmbeddings:
		tokens = tokensOf(int64(len(c.body)))
	case !c.hasMax:
		tokens = g.cfg.DefaultMaxTokens
	}
	ctx, cancel := withLazyTimeout(x.r.Context(), g.cfg.AdmissionTimeout)
	rsv, err := g.meter.Reserve(ctx, billing.ReserveRequest{UserID: x.user, Provider: x.rt.provider, Model: printable(c.model),
		Tokens: min(tokens, billing.MaxTokensPerEvent), InProcess: true})
	cancel()
	if err == nil {
		x.rsvID = rsv.ID
		return true
	}
	var be *billing.Error
	switch code := billing.ErrorCode(err); {
	case code == billing.CodeLimitExceeded && errors.As(err, &be) && be.Limit != nil:
		x.limitProblem(be)
		return false
	case code == billing.CodeInternal || code == billing.CodeUnavailable:
		if x.r.Context().Err() != nil {
			return false // the client left; nothing was called
		}
		if g.cfg.FailOpen && !g.pending.full() {
			g.cfg.Logger.Warn("gateway admission failed; forwarding the call unmetered (fail-open) and recording it later",
				"provider", x.rt.provider, "user", x.user, "error", err)
			return true
		}
		g.cfg.Logger.Error("gateway admission failed; refusing the call", "provider", x.rt.provider, "error", err)
		x.databaseUnavailable()
		return false
	default:
		x.problemFor(err)
		return false
	}
}

// forward sends the call upstream with the server's key and relays the
// answer.
func (x *exchange) forward(up Upstream) {
	g, r, c := x.g, x.r, x.call
	target := strings.TrimSuffix(up.BaseURL, "/") + strings.TrimPrefix(r.URL.EscapedPath(), x.rt.clientBase)
	if q := r.URL.RawQuery; q != "" {
		if strings.Contains(q, auth.GatewayKeyParam+"=") {
			v := r.URL.Query()
			v.Del(auth.GatewayKeyParam)
			q = v.Encode()
		}
		if q != "" {
			target += "?" + q
		}
	}
	// The upstream call outlives a client that disconnects: the provider
	// bills the call anyway, so the gateway reads its usage to the end
	// (bounded by the read and drain timeouts).
	uctx, ucancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer ucancel()
	req, err := http.NewRequestWithContext(uctx, http.MethodPost, target, bytes.NewReader(c.body))
	if err != nil {
		x.fail(http.StatusBadGateway, "the provider's URL is invalid", nil)
		return
	}
	req.Header = outboundHeader(r.Header)
	x.rt.setKey(req.Header, up.Key)
	req.ContentLength = int64(len(c.body))
	t := time.Now()
	resp, err := g.transport.RoundTrip(req)
	x.upstreamWait += time.Since(t)
	if err != nil {
		status, msg := http.StatusBadGateway, "the provider could not be reached"
		if isTimeout(err) {
			status, msg = http.StatusGatewayTimeout, "the provider did not answer in time"
		}
		g.cfg.Logger.Warn("gateway upstream call failed", "provider", x.rt.provider, "error", g.redactString(err.Error()))
		x.fail(status, msg, nil)
		return
	}
	defer resp.Body.Close()
	body := &upstreamBody{r: resp.Body, d: g.cfg.ReadTimeout, wait: &x.upstreamWait}
	body.timer = time.AfterFunc(g.cfg.ReadTimeout, func() { body.timedOut.Store(true); ucancel() })
	defer body.timer.Stop()
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	switch {
	case ok && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"):
		x.relayEvents(resp, body, ucancel)
	case ok && c.stream:
		x.relayRaw(resp, body, nil, ucancel)
	default:
		x.relayWhole(resp, body, ucancel)
	}
}

// upstreamBody reads the provider's response, cancelling the call when one
// read waits longer than the read timeout, and counts the time spent
// waiting.
type upstreamBody struct {
	r        io.Reader
	d        time.Duration
	timer    *time.Timer
	timedOut atomic.Bool
	wait     *time.Duration
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.d)
	t := time.Now()
	n, err := b.r.Read(p)
	// The timeout covers waiting for the provider only. Left running, it
	// would fire while the relay writes to a slow client and cancel an
	// upstream that had answered in time, losing the call's usage.
	b.timer.Stop()
	*b.wait += time.Since(t)
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// hopHeaders are never forwarded in either direction (RFC 9110 §7.6.1).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// outboundHeader returns the client's headers fit to forward: without
// hop-by-hop headers, without every place a client may put its key (the
// alwrity key never leaves the server), and without Accept-Encoding so that
// the transport negotiates compression it can undo while reading usage.
func outboundHeader(in http.Header) http.Header {
	out := in.Clone()
	for _, f := range in.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			out.Del(strings.TrimSpace(name))
		}
	}
	for _, h := range hopHeaders {
		out.Del(h)
	}
	for _, h := range auth.GatewayKeyHeaders {
		out.Del(h)
	}
	for _, h := range []string{UserHeader, "Cookie", "Accept-Encoding", "Content-Length", "Host", "Forwarded", "X-Forwarded-For"} {
		out.Del(h)
	}
	return out
}

// copyResponseHeader copies the provider's response headers to the client,
// without hop-by-hop headers and the length (the gateway sets its own), and
// with any provider key a header echoes redacted.
func (g *Gateway) copyResponseHeader(dst, src http.Header) {
	for k, vs := range src {
		for i, v := range vs {
			if r := g.redactString(v); r != v {
				vs = append([]string(nil), vs...)
				vs[i] = r
			}
		}
		dst[k] = vs
	}
	for _, f := range src.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			dst.Del(strings.TrimSpace(name))
		}
	}
	for _, h := range hopHeaders {
		dst.Del(h)
	}
	dst.Del("Content-Length")
}
