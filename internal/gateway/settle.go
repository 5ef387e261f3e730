package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
)

// settleTimeout bounds recording one call; a record that cannot be written
// in time waits in the pending queue.
const settleTimeout = 10 * time.Second

// outcome is how a call ended, as the ledger records it.
type outcome struct {
	status     int
	u          usage
	partial    bool
	reason     string // why the event is partial
	errMsg     string
	clientGone bool
}

// fail answers the client with a problem and records the call as failed:
// no tokens unless usage is known (u), a partial estimate when u is given
// but empty.
func (x *exchange) fail(status int, msg string, u *usage) {
	o := outcome{status: status, errMsg: msg}
	if u != nil {
		o.u, o.partial, o.reason = *u, true, msg
	}
	ev := x.event(o)
	x.problem(status, msg)
	x.record(ev, nil)
}

// event is the ledger's record of a call that ended with o.
func (x *exchange) event(o outcome) billing.UsageEvent {
	q := o.u.q
	if o.partial {
		if !o.u.reported {
			q.Input = tokensOf(int64(len(x.call.body)))
		}
		q.Output = max(q.Output, tokensOf(o.u.textChars))
		q = normalized(q)
	}
	// A call the provider answered, or billed, is one request (for prices
	// per request); a failed call without usage is none, like its tokens.
	if o.u.reported || o.partial || (o.status >= 200 && o.status < 300) {
		q.Requests = max(q.Requests, 1)
	}
	model := printable(o.u.model)
	if model == "" {
		model = printable(x.call.model)
	}
	meta := struct {
		Source     string `json:"source"`
		Stream     bool   `json:"stream,omitempty"`
		Partial    string `json:"partial,omitempty"`
		ClientGone bool   `json:"client_disconnected,omitempty"`
		Estimated  bool   `json:"estimated,omitempty"`
		FailedOpen bool   `json:"fail_open,omitempty"`
	}{Source: "gateway", Stream: x.call.stream, Partial: o.reason, ClientGone: o.clientGone,
		Estimated: o.partial && !o.u.reported, FailedOpen: x.rsvID == ""}
	metaJSON, _ := json.Marshal(meta)
	return billing.UsageEvent{
		EventID: billing.NewID("gw_"), UserID: x.user, Provider: x.rt.provider, Model: model,
		Endpoint: billing.CleanText(x.call.endpoint, billing.MaxEndpointBytes), Method: http.MethodPost, Quantities: q,
		StatusCode: o.status, ResponseTime: time.Since(x.start).Seconds(), Timestamp: x.ts,
		ErrorMessage: billing.CleanText(x.g.redactString(o.errMsg), billing.MaxErrorMessageBytes), Partial: o.partial, Metadata: string(metaJSON),
	}
}

// quote returns the cost the ledger will record for ev, as exact decimal
// USD, for the client's cost header; false when it cannot be rated now
// (the database is away: the record still follows).
func (x *exchange) quote(ev billing.UsageEvent, within time.Duration) (string, bool) {
	ctx, cancel := withLazyTimeout(x.r.Context(), within)
	defer cancel()
	cost, err := x.g.meter.Quote(ctx, ev)
	if err != nil {
		x.g.cfg.Logger.Debug("gateway could not quote a call; it is answered without its cost", "event_id", ev.EventID, "error", err)
		return "", false
	}
	return cost.String(), true
}

// record writes the call's event to the ledger once its client has been
// answered: in the background, or, when MaxBackgroundSettles records are
// already being written, before the handler returns (back-pressure). It
// is called once per admitted call. flush, if not nil, is called before a
// record written before the handler returns, so that what the client was
// sent does not wait for the ledger.
func (x *exchange) record(ev billing.UsageEvent, flush func()) {
	g := x.g
	it := pendingItem{rsvID: x.rsvID, ev: ev}
	x.owes = false // from here on the record below owns the count
	if !g.inflight.background() {
		if flush != nil {
			flush()
		}
		g.write(it)
		g.inflight.done()
		return
	}
	g.recorders.run(g, it)
}

// maxIdleRecorders bounds the recorders kept waiting for the next record.
const maxIdleRecorders = 32

// recorders write the records of calls whose client was answered, on
// goroutines kept from one record to the next. A record's write (rating,
// then waiting for the ledger's batch) needs a deeper stack than a new
// goroutine starts with: a goroutine per record grew and copied its stack
// on every call. Up to maxIdleRecorders wait for work; the rest end once
// their record is written. Their number is bounded by the background
// slots (inflight), which every record they run holds.
type recorders struct {
	work     chan pendingItem // unbuffered: a send succeeds only when a recorder waits
	idle     atomic.Int32
	stop     chan struct{}
	stopOnce sync.Once
}

func newRecorders() *recorders {
	return &recorders{work: make(chan pendingItem), stop: make(chan struct{})}
}

// run writes it on a waiting recorder, or on a new one when none waits.
// The caller holds a background slot for it.
func (rs *recorders) run(g *Gateway, it pendingItem) {
	select {
	case rs.work <- it:
	default:
		go rs.loop(g, it)
	}
}

func (rs *recorders) loop(g *Gateway, it pendingItem) {
	for {
		g.write(it)
		g.inflight.backgroundDone()
		if rs.idle.Add(1) > maxIdleRecorders {
			rs.idle.Add(-1)
			return
		}
		select {
		case it = <-rs.work:
			rs.idle.Add(-1)
		case <-rs.stop:
			rs.idle.Add(-1)
			return
		}
	}
}

// close ends the waiting recorders; the busy ones end after their record.
func (rs *recorders) close() { rs.stopOnce.Do(func() { close(rs.stop) }) }

// abandon gives up the record an admitted call still owes when its
// handler ends without one (a panic), so that Wait and Shutdown do not
// wait for it forever.
func (x *exchange) abandon() {
	if x.owes {
		x.owes = false
		x.g.inflight.done()
		x.g.cfg.Logger.Error("gateway call ended without a usage record", "provider", x.rt.provider, "user", x.user)
	}
}

// write records one call: it settles the reservation with the usage the
// provider reported (or, fail-open, records the event). A record the
// database cannot take now waits in the pending queue and is written when
// the database returns; it is never dropped. An event the meter refuses
// gives its hold back.
func (g *Gateway) write(it pendingItem) {
	// The client has its answer: the record may wait a moment to share a
	// ledger transaction with other calls' records.
	ctx, cancel := context.WithTimeout(metering.Unhurried(context.Background()), settleTimeout)
	defer cancel()
	var err error
	if it.rsvID == "" {
		_, err = g.meter.Record(ctx, []billing.UsageEvent{it.ev})
	} else {
		_, err = g.meter.Settle(ctx, it.rsvID, it.ev)
	}
	switch billing.ErrorCode(err) {
	case "":
	case billing.CodeInternal, billing.CodeUnavailable:
		g.cfg.Logger.Warn("gateway could not record a call now; it waits for the database", "event_id", it.ev.EventID, "error", err)
		g.pending.add(it)
	default:
		// The event itself was refused: a bug, not an outage. Give the
		// hold back rather than keep the user's units until it expires.
		g.cfg.Logger.Error("gateway call could not be recorded", "event_id", it.ev.EventID, "error", err)
		if it.rsvID != "" {
			if _, rerr := g.meter.Release(ctx, it.rsvID); rerr != nil {
				g.cfg.Logger.Warn("gateway could not release a reservation", "reservation_id", it.rsvID, "error", rerr)
			}
		}
	}
}

// overhead is the time spent in the gateway so far, in milliseconds.
func (x *exchange) overhead() string {
	d := time.Since(x.start) - x.upstreamWait
	return strconv.FormatFloat(float64(d.Nanoseconds())/1e6, 'f', 3, 64)
}

// upstreamError summarises a provider's error answer for the ledger: its
// status and the provider's own message when it sends one, redacted before
// it is shortened (a key cut in two would no longer be found whole).
func (g *Gateway) upstreamError(status int, body []byte) string {
	msg := fmt.Sprintf("provider answered %d %s", status, http.StatusText(status))
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Error) == 0 {
		return msg
	}
	var detail struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(e.Error, &detail) == nil && detail.Message != "" {
		return msg + ": " + billing.Truncate(g.redactString(detail.Message), 1024)
	}
	var s string
	if json.Unmarshal(e.Error, &s) == nil && s != "" {
		return msg + ": " + billing.Truncate(g.redactString(s), 1024)
	}
	return msg
}

// redact removes the server's provider keys from b: a provider may echo the
// key it was sent in an error, and that key must never reach a client.
func (g *Gateway) redact(b []byte) []byte {
	for _, s := range g.secrets {
		if bytes.Contains(b, s) {
			b = bytes.ReplaceAll(b, s, []byte("[redacted]"))
		}
	}
	return b
}

func (g *Gateway) redactString(s string) string {
	for _, k := range g.secrets {
		if strings.Contains(s, string(k)) {
			s = strings.ReplaceAll(s, string(k), "[redacted]")
		}
	}
	return s
}

// printable returns s when the ledger can hold it as a model name, else "".
func printable(s string) string {
	if billing.IdentProblem(s, false) != "" {
		return ""
	}
	return s
}
