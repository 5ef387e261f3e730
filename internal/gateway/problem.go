package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/httpapi"
)

// problemFor answers with err as problem+json; errors without a code are
// logged and read "internal error".
func (x *exchange) problemFor(err error) {
	status := httpapi.StatusOf(billing.ErrorCode(err))
	if status >= 500 {
		x.g.cfg.Logger.Error("gateway request failed", "error", err)
	}
	if status == http.StatusUnauthorized {
		x.w.Header().Set("WWW-Authenticate", `Bearer realm="alwrity-billing"`)
	}
	x.problem(status, billing.ErrorMessage(err))
}

// databaseUnavailable refuses a call the database is needed for and does
// not answer: 503 with Retry-After, so that SDKs retry it (they do on 503)
// once the database may be back.
func (x *exchange) databaseUnavailable() {
	x.w.Header().Set("Retry-After", "5")
	x.problem(http.StatusServiceUnavailable, "usage metering is unavailable; try again shortly")
}

// problem answers with an RFC 9457 problem.
func (x *exchange) problem(status int, detail string) {
	x.writeJSON(status, map[string]any{"title": http.StatusText(status), "status": status, "detail": detail})
}

// limitProblem answers a refused admission with the API's 429 body. Like
// the API's /reserve, it names the provider of the refused call when the
// limit is not a provider's own, because ALwrity's clients read "provider"
// from every 429.
func (x *exchange) limitProblem(e *billing.Error) {
	l := *e.Limit
	if l.Provider == "" {
		l.Provider = x.rt.provider
	}
	named := *e
	named.Limit = &l
	x.writeJSON(http.StatusTooManyRequests, httpapi.NewLimitProblem(&named))
}

func (x *exchange) writeJSON(status int, v any) {
	body, _ := json.Marshal(v)
	h := x.w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set(OverheadHeader, x.overhead())
	x.w.WriteHeader(status)
	_, _ = x.w.Write(body)
}
