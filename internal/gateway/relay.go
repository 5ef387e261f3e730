package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// streamQuoteTimeout bounds the quote of a stream's cost trailer.
const streamQuoteTimeout = 50 * time.Millisecond

// errDrainLimit stops reading an upstream whose client has gone once the
// drain bounds are reached.
var errDrainLimit = errors.New("drain limit reached after the client disconnected")

// relayWhole holds a non-streaming response until it is read, so that the
// client receives its cost in a header, and records the call once the
// client is answered. A response larger than MaxBufferedResponse is
// relayed as it arrives instead.
func (x *exchange) relayWhole(resp *http.Response, body *upstreamBody, cancel func()) {
	limit := x.g.cfg.MaxBufferedResponse
	buf, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		x.cutBeforeHeaders(body, err)
		return
	}
	if int64(len(buf)) > limit {
		x.relayRaw(resp, body, buf, cancel)
		return
	}
	var u usage
	x.rt.readBody(buf, &u)
	o := outcome{status: resp.StatusCode, u: u}
	if resp.StatusCode >= 400 {
		o.errMsg = x.g.upstreamError(resp.StatusCode, buf)
		buf = x.g.redact(buf)
	} else if !u.reported {
		o.partial, o.reason = true, "the provider reported no usage"
	}
	ev := x.event(o)
	h := x.w.Header()
	x.g.copyResponseHeader(h, resp.Header)
	h.Set("Content-Length", strconv.Itoa(len(buf)))
	if cost, ok := x.quote(ev, x.g.cfg.AdmissionTimeout); ok {
		h.Set(CostHeader, cost)
	}
	h.Set(OverheadHeader, x.overhead())
	// The client gets the read timeout to take the response, as a stream's
	// client does each write: one that stops reading must not hold the
	// call's record (and this handler) for as long as it keeps the
	// connection. net/http clears the deadline when the handler returns.
	_ = http.NewResponseController(x.w).SetWriteDeadline(time.Now().Add(x.g.cfg.ReadTimeout))
	x.w.WriteHeader(resp.StatusCode)
	_, _ = x.w.Write(buf)
	x.record(ev, nil)
}

// cutBeforeHeaders answers a call whose upstream failed while its
// non-streaming body was read: nothing has reached the client yet, so it
// gets a 502 (or 504) and the call is recorded as failed and partial.
func (x *exchange) cutBeforeHeaders(body *upstreamBody, err error) {
	status, msg := http.StatusBadGateway, "the provider's response was cut short"
	if body.timedOut.Load() {
		status, msg = http.StatusGatewayTimeout, "the provider stopped answering within the read timeout"
	}
	x.g.cfg.Logger.Warn("gateway upstream response cut", "provider", x.rt.provider, "error", x.g.redactString(err.Error()))
	x.fail(status, msg, &usage{})
}

// relayRaw relays a response as it arrives, byte for byte, keeping a copy
// (up to MaxBufferedResponse) to read its usage at the end. It serves
// streams that are not server-sent events (Gemini's JSON array without
// alt=sse) and responses too large to hold. head is what was already read.
func (x *exchange) relayRaw(resp *http.Response, body *upstreamBody, head []byte, cancel func()) {
	g := x.g
	x.writeStreamHeader(resp)
	rc := http.NewResponseController(x.w)
	keep := int64(len(head)) <= g.cfg.MaxBufferedResponse
	kept := append([]byte(nil), head...)
	cl := x.newClientLink(rc, cancel)
	defer cl.stop()
	if len(head) > 0 {
		cl.write(head)
		cl.flush()
	}
	bp := g.bufs.Get().(*[]byte)
	defer g.bufs.Put(bp)
	var cut error
	for {
		n, err := body.Read(*bp)
		if n > 0 {
			if keep {
				if int64(len(kept)+n) > g.cfg.MaxBufferedResponse {
					keep, kept = false, nil
				} else {
					kept = append(kept, (*bp)[:n]...)
				}
			}
			cl.write((*bp)[:n])
		}
		if err == io.EOF {
			// What the last read brought leaves with the end of the
			// response (see relayEvents).
			break
		}
		if err == nil {
			err = cl.check(n)
		}
		if err != nil {
			cl.flush()
			cut = err
			break
		}
		// The next read may wait on the provider: the client has every
		// byte read so far first.
		cl.flush()
	}
	var u usage
	if keep {
		x.rt.readBody(kept, &u)
	}
	x.finishStream(resp.StatusCode, u, cut, body, cl)
}

// writeStreamHeader writes the header of a relayed stream. The stream ends
// with trailers (finishStream), announced here by the overhead trailer,
// given its value at the end: a response that declares a trailer is sent
// chunked even when the handler returns before anything was flushed (a
// stream read whole in one read, whose last bytes the relay leaves for the
// end of the response), where the server would otherwise send it with a
// Content-Length and no trailers.
func (x *exchange) writeStreamHeader(resp *http.Response) {
	h := x.w.Header()
	x.g.copyResponseHeader(h, resp.Header)
	h.Set(OverheadHeader, x.overhead())
	h.Set(http.TrailerPrefix+OverheadHeader, "")
	x.w.WriteHeader(resp.StatusCode)
}

// relayEvents relays a server-sent event stream event by event, flushing
// as events arrive, reading usage from the events and hiding the usage
// chunk the gateway asked for on the client's behalf.
func (x *exchange) relayEvents(resp *http.Response, body *upstreamBody, cancel func()) {
	g := x.g
	x.writeStreamHeader(resp)
	rc := http.NewResponseController(x.w)
	cl := x.newClientLink(rc, cancel)
	defer cl.stop()
	sr := streamReader{rt: x.rt, hideUsage: x.call.hideUsage}
	// A Chat Completions stream reports a failure as a chunk holding only
	// an error object, which the chunk reader does not look for.
	chat := x.rt.kind == openaiChat || x.rt.kind == mistralChat
	var u usage
	var p sseParser
	emit := func(ev sseEvent) {
		if sr.event(ev, &u) {
			cl.write(ev.raw)
		}
		if chat {
			readOpenAIChatError(ev.data, &u)
		}
	}
	bp := g.bufs.Get().(*[]byte)
	defer g.bufs.Put(bp)
	var cut error
	for {
		n, err := body.Read(*bp)
		if n > 0 {
			p.feed((*bp)[:n], emit)
		}
		if err == io.EOF {
			// The relay reads nothing more: what the last read brought
			// is not flushed on its own but leaves with the end of the
			// response and its trailers, in one write, as soon as the
			// call is billed (finishStream) and the handler returns.
			p.flush(emit)
			break
		}
		if err == nil {
			err = cl.check(n)
		}
		if err != nil {
			// What arrived of an unfinished event still reaches the client.
			p.flush(emit)
			cl.flush()
			cut = err
			break
		}
		// The next read may wait on the provider: the client has every
		// event read so far first, in one write.
		cl.flush()
	}
	x.finishStream(resp.StatusCode, u, cut, body, cl)
}

// clientLink is the client side of a relay. Once the client is gone,
// writes stop and the upstream is drained within the drain bounds: the
// drain timer starts as soon as the client's request context ends, even
// while the relay waits on a silent upstream.
//
// A client that stops reading without closing its connection is gone too:
// what one upstream read brought must reach it within the read timeout
// (a write deadline), else the relay would wait on it, and the call's
// record with it, for as long as it holds the connection, while its
// reservation expires.
type clientLink struct {
	x       *exchange
	rc      *http.ResponseController
	cancel  func()
	gone    bool
	pending bool // bytes written since the last flush
	drained int64
	expired atomic.Bool
	// noDeadline: the response writer takes no write deadline (one that
	// does not reach its connection); writes then wait as long as they do.
	noDeadline bool

	mu        sync.Mutex
	timer     *time.Timer
	stopped   bool
	stopWatch func() bool
}

func (x *exchange) newClientLink(rc *http.ResponseController, cancel func()) *clientLink {
	c := &clientLink{x: x, rc: rc, cancel: cancel}
	c.stopWatch = context.AfterFunc(x.r.Context(), c.startDrain)
	return c
}

// startDrain starts the drain timer once.
func (c *clientLink) startDrain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil || c.stopped {
		return
	}
	c.timer = time.AfterFunc(c.x.g.cfg.DrainTimeout, func() { c.expired.Store(true); c.cancel() })
}

func (c *clientLink) write(b []byte) {
	if c.gone {
		return
	}
	if !c.pending {
		// The first write since the last flush: this write, those that
		// follow it and their flush share the bound.
		c.bound()
	}
	if _, err := c.x.w.Write(b); err != nil {
		c.leave()
		return
	}
	c.pending = true
}

func (c *clientLink) flush() {
	if c.gone || !c.pending {
		return
	}
	c.pending = false
	if err := c.rc.Flush(); err != nil {
		c.leave()
	}
}

// bound gives the client the read timeout, from now, to take what is
// written to it. A write or flush past it fails, and the client is then
// treated as gone.
func (c *clientLink) bound() {
	if c.noDeadline {
		return
	}
	if err := c.rc.SetWriteDeadline(time.Now().Add(c.x.g.cfg.ReadTimeout)); err != nil {
		c.noDeadline = true
	}
}

// check notices a client that left and enforces the drain bounds on the n
// bytes just read.
func (c *clientLink) check(n int) error {
	if !c.gone && c.x.r.Context().Err() != nil {
		c.leave()
	}
	if !c.gone {
		return nil
	}
	c.drained += int64(n)
	if c.drained > c.x.g.cfg.DrainBytes || c.expired.Load() {
		return errDrainLimit
	}
	return nil
}

func (c *clientLink) leave() {
	if !c.gone {
		c.gone = true
		c.startDrain()
	}
}

// stop ends the link once the relay is over. The end of the response,
// which the server writes once the handler returns, gets a bound of its
// own: the deadline of the last write may have passed while the relay
// read on (the server clears it once the response is written).
func (c *clientLink) stop() {
	c.stopWatch()
	if !c.gone {
		c.bound()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.timer != nil {
		c.timer.Stop()
	}
}

// finishStream bills a relayed stream: its cost goes in a trailer, and its
// record is written without holding up the end of the response. A stream
// that ended without usage, or was cut before its end, is billed from what
// is known (the provider's partial usage, else input estimated from the
// request and output from the text relayed), flagged partial. A stream the
// provider ended with an error is a failed call, billed only with the
// usage the provider reported.
func (x *exchange) finishStream(status int, u usage, cut error, body *upstreamBody, cl *clientLink) {
	o := outcome{status: status, u: u, clientGone: cl.gone || x.r.Context().Err() != nil}
	switch {
	case u.streamErr != "":
		// The status line said 200, but the provider said the call failed
		// (whether or not the connection then closed cleanly). Without
		// usage it is not charged, as an error status is not; only a
		// stream cut short, which the provider likely bills, is estimated.
		o.status = http.StatusBadGateway
		if u.streamErrStatus != 0 {
			o.status = u.streamErrStatus
		}
		o.errMsg = "provider stream error: " + billing.Truncate(x.g.redactString(u.streamErr), 1024)
		if u.reported {
			o.partial, o.reason = true, "the provider ended the stream with an error"
		}
	case cut == nil && u.reported:
	case cut == nil:
		o.partial, o.reason = true, "the stream ended without usage"
	case errors.Is(cut, errDrainLimit) || cl.expired.Load():
		o.partial, o.reason = true, "the client disconnected and the provider's stream outlasted the drain limits"
	default:
		o.partial = true
		o.status, o.reason = http.StatusBadGateway, "the provider's stream was cut before it ended"
		if body.timedOut.Load() {
			o.status, o.reason = http.StatusGatewayTimeout, "the provider's stream stopped within the read timeout"
		}
		o.errMsg = o.reason
		x.g.cfg.Logger.Warn("gateway upstream stream cut", "provider", x.rt.provider, "error", x.g.redactString(cut.Error()))
	}
	ev := x.event(o)
	// The stream's last bytes wait for this quote (they leave with the
	// trailers, in one write), so it is given streamQuoteTimeout, not the
	// admission's: it answers from memory in microseconds, and when the
	// catalog's version must be read first and the database is slow the
	// stream ends on time without the cost trailer (the ledger has it).
	if cost, ok := x.quote(ev, streamQuoteTimeout); ok {
		x.w.Header().Set(http.TrailerPrefix+CostHeader, cost)
	}
	x.w.Header().Set(http.TrailerPrefix+OverheadHeader, x.overhead())
	// The last events were left for the end of the response: they are
	// flushed first should the record hold the handler (back-pressure).
	x.record(ev, cl.flush)
}
