package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/danielgtaylor/huma/v2"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/httpapi"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// statusOf maps the gateway's own refusals to HTTP statuses, as the API
// does.
func statusOf(code billing.Code) int {
	switch code {
	case billing.CodeInvalid:
		return http.StatusBadRequest
	case billing.CodeNotFound:
		return http.StatusNotFound
	case billing.CodeConflict:
		return http.StatusConflict
	case billing.CodeUnauthorized:
		return http.StatusUnauthorized
	case billing.CodeForbidden:
		return http.StatusForbidden
	case billing.CodeLimitExceeded:
		return http.StatusTooManyRequests
	case billing.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case billing.CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// problemFor answers with err as problem+json; errors without a code are
// logged and read "internal error".
func (x *exchange) problemFor(err error) {
	status := statusOf(billing.ErrorCode(err))
	if status >= 500 {
		x.g.cfg.Logger.Error("gateway request failed", "error", err)
	}
	if status == http.StatusUnauthorized {
		x.w.Header().Set("WWW-Authenticate", `Bearer realm="alwrity-billing"`)
	}
	x.problem(status, billing.ErrorMessage(err))
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
	used := l.Used + l.Reserved
	amount := func(v int64) json.Number {
		if l.Money {
			return json.Number(money.Amount(v).String())
		}
		return json.Number(strconv.FormatInt(v, 10))
	}
	p := &httpapi.LimitProblem{
		ErrorModel: huma.ErrorModel{Status: http.StatusTooManyRequests, Title: http.StatusText(http.StatusTooManyRequests), Detail: e.Message},
		ErrorText:  "Usage limit exceeded",
		Message:    e.Message,
		Provider:   &l.Provider,
		UsageInfo: httpapi.UsageInfoJSON{CurrentCalls: amount(used), Limit: amount(l.Limit), Type: l.Key,
			Requested: amount(l.Requested), BillingPeriod: l.Period,
			UsagePercentage: billing.LimitUsage{Limit: &l.Limit, Used: used}.Percentage()},
	}
	x.writeJSON(http.StatusTooManyRequests, p)
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
