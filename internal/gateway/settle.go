package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/alwrity/alwrity-billing/internal/billing"
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
	x.settle(o)
	x.problem(status, msg)
}

// settle records the call: it settles the reservation with the usage the
// provider reported (or, fail-open, records the event), and returns the
// cost as exact decimal USD. A record the database cannot take now waits in
// the pending queue and is written when the database returns; it is never
// dropped.
func (x *exchange) settle(o outcome) (cost string, billed bool) {
	g := x.g
	q := o.u.q
	if o.partial {
		if !o.u.reported {
			q.Input = tokensOf(int64(len(x.call.body)))
		}
		q.Output = max(q.Output, tokensOf(o.u.textChars))
		q = normalized(q)
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
	ev := billing.UsageEvent{
		EventID: newEventID(), UserID: x.user, Provider: x.rt.provider, Model: model,
		Endpoint: truncate(x.call.endpoint, 512), Method: http.MethodPost, Quantities: q,
		StatusCode: o.status, ResponseTime: time.Since(x.start).Seconds(), Timestamp: x.ts,
		ErrorMessage: truncate(g.redactString(o.errMsg), 4096), Partial: o.partial, Metadata: string(metaJSON),
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(x.r.Context()), settleTimeout)
	defer cancel()
	var res billing.EventResult
	var err error
	if x.rsvID == "" {
		var rs []billing.EventResult
		if rs, err = g.meter.Record(ctx, []billing.UsageEvent{ev}); err == nil && len(rs) == 1 {
			res = rs[0]
		}
	} else {
		res, err = g.meter.Settle(ctx, x.rsvID, ev)
	}
	if err == nil {
		return res.Cost.String(), true
	}
	switch billing.ErrorCode(err) {
	case billing.CodeInternal, billing.CodeUnavailable:
		g.cfg.Logger.Warn("gateway could not record a call now; it waits for the database", "event_id", ev.EventID, "error", err)
		g.pending.add(pendingItem{rsvID: x.rsvID, ev: ev})
	default:
		// The event itself was refused: a bug, not an outage. Give the
		// hold back rather than keep the user's units until it expires.
		g.cfg.Logger.Error("gateway call could not be recorded", "event_id", ev.EventID, "error", err)
		if x.rsvID != "" {
			if _, rerr := g.meter.Release(ctx, x.rsvID); rerr != nil {
				g.cfg.Logger.Warn("gateway could not release a reservation", "reservation_id", x.rsvID, "error", rerr)
			}
		}
	}
	return "", false
}

// overhead is the time spent in the gateway so far, in milliseconds.
func (x *exchange) overhead() string {
	d := time.Since(x.start) - x.upstreamWait
	return strconv.FormatFloat(float64(d.Nanoseconds())/1e6, 'f', 3, 64)
}

// upstreamError summarises a provider's error answer for the ledger: its
// status and the provider's own message when it sends one.
func upstreamError(status int, body []byte) string {
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
		return msg + ": " + truncate(detail.Message, 1024)
	}
	var s string
	if json.Unmarshal(e.Error, &s) == nil && s != "" {
		return msg + ": " + truncate(s, 1024)
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

func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "gw_" + hex.EncodeToString(b[:])
}

// printable returns s when the ledger can hold it as a model name, else "".
func printable(s string) string {
	if len(s) > 128 || !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\r\n\t") {
		return ""
	}
	return s
}

// truncate shortens s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
