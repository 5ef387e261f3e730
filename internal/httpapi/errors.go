package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// StatusOf is the one place an error code becomes an HTTP status.
func StatusOf(code billing.Code) int {
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

// problem turns any error into the problem+json error huma writes. Errors
// without a code are internal: they are logged with their detail and the
// client reads only "internal error".
func (s *Server) problem(ctx context.Context, err error) error {
	code := billing.ErrorCode(err)
	status := StatusOf(code)
	if status >= 500 {
		s.logger.ErrorContext(ctx, "request failed", "error", err)
	}
	var e *billing.Error
	if !errors.As(err, &e) {
		return huma.NewError(status, "internal error")
	}
	if code == billing.CodeInvalid {
		status = invalidStatus(err, e)
	}
	if e.Limit != nil {
		return NewLimitProblem(e)
	}
	details := make([]error, 0, len(e.Fields))
	for _, f := range e.Fields {
		details = append(details, &huma.ErrorDetail{Location: f.Location, Message: f.Message, Value: f.Value})
	}
	if status >= 500 {
		details = nil
	}
	herr := huma.NewError(status, e.Message, details...)
	switch status {
	case http.StatusUnauthorized:
		// RFC 9110 §15.5.2: a 401 must say which scheme would be accepted.
		return huma.ErrorWithHeaders(herr, http.Header{"WWW-Authenticate": {`Bearer realm="alwrity-billing"`}})
	case http.StatusServiceUnavailable:
		return huma.ErrorWithHeaders(herr, http.Header{"Retry-After": {"5"}})
	}
	return herr
}

// invalidStatus is the status of an invalid-input error. A check of a
// request field (query.billing_period, path.alert_id, body.plan_id,
// prices[1].input…) is 422, as are huma's own schema checks, because
// clients written for FastAPI read 422 as "validation failed, see the
// fields". A request that is wrong as a whole (a body that is not JSON or
// not an object, no field named at all) stays 400, as huma's parser answers
// a body it cannot read. Where the contract documents 400 for a field,
// keepBadRequest says so.
func invalidStatus(err error, e *billing.Error) int {
	var keep badRequestError
	if errors.As(err, &keep) {
		return http.StatusBadRequest
	}
	for _, f := range e.Fields {
		if f.Location != "" && f.Location != "body" && f.Location != "file" {
			return http.StatusUnprocessableEntity
		}
	}
	return http.StatusBadRequest
}

// badRequestError keeps an invalid-input error at 400.
type badRequestError struct{ err error }

func (b badRequestError) Error() string { return b.err.Error() }
func (b badRequestError) Unwrap() error { return b.err }

// keepBadRequest marks err, when it is invalid input, as the documented 400
// of its route instead of 422: GET /pricing's unknown provider (ALwrity
// answered 500 there; the contract fixed it as 400) and POST /usage's
// refused batch. Other errors keep their status.
func keepBadRequest(err error) error {
	if err == nil {
		return nil
	}
	return badRequestError{err}
}

// refuse answers err as problem maps it, for a middleware that answers
// before the operation's handler runs.
func (s *Server) refuse(ctx huma.Context, err error) {
	herr := s.problem(ctx.Context(), err)
	var he huma.HeadersError
	if errors.As(herr, &he) {
		for k, vs := range he.GetHeaders() {
			for _, v := range vs {
				ctx.AppendHeader(k, v)
			}
		}
	}
	var se huma.StatusError
	if !errors.As(herr, &se) {
		se = huma.NewError(http.StatusInternalServerError, "internal error")
	}
	ct := "application/json"
	if f, ok := se.(huma.ContentTypeFilter); ok {
		ct = f.ContentType(ct)
	}
	ctx.SetHeader("Content-Type", ct)
	ctx.SetStatus(se.GetStatus())
	if err := s.api.Marshal(ctx.BodyWriter(), "application/json", se); err != nil {
		s.logger.DebugContext(ctx.Context(), "write problem", "error", err)
	}
}

// newError builds huma's problem+json errors (also those huma raises itself,
// such as validation failures) with a readable detail that names every bad
// field, because clients written for FastAPI show only `detail`. 5xx
// errors never carry the text of the underlying error.
func newError(status int, msg string, errs ...error) huma.StatusError {
	model := &huma.ErrorModel{Status: status, Title: http.StatusText(status), Detail: msg}
	if status >= 500 {
		if msg == "" || strings.Contains(msg, "unexpected") {
			model.Detail = "internal error"
		}
		return model
	}
	var parts []string
	for _, err := range errs {
		if err == nil {
			continue
		}
		var d huma.ErrorDetailer
		detail := &huma.ErrorDetail{Message: err.Error()}
		if errors.As(err, &d) {
			detail = d.ErrorDetail()
		}
		model.Errors = append(model.Errors, detail)
		if detail.Location != "" {
			parts = append(parts, fmt.Sprintf("%s: %s", detail.Location, detail.Message))
		} else {
			parts = append(parts, detail.Message)
		}
	}
	if len(parts) > 0 && !strings.Contains(msg, parts[0]) {
		model.Detail = msg + " (" + strings.Join(parts, "; ") + ")"
	}
	return model
}

func init() {
	huma.NewError = newError
}

// LimitProblem is the 429 body of a refused admission: problem+json fields
// plus the fields ALwrity's clients read.
type LimitProblem struct {
	huma.ErrorModel
	ErrorText string        `json:"error"`
	Message   string        `json:"message"`
	Provider  *string       `json:"provider"`
	UsageInfo UsageInfoJSON `json:"usage_info"`
}

// UsageInfoJSON describes the limit that refused a call.
type UsageInfoJSON struct {
	CurrentCalls    json.Number `json:"current_calls" doc:"Calls (or tokens, or USD for the cost limit) used and held this period."`
	Limit           json.Number `json:"limit" doc:"Calls or tokens; USD (exact decimal) for monthly_cost."`
	UsagePercentage float64     `json:"usage_percentage"`
	Type            string      `json:"type" doc:"The limit: total_calls, <provider>_calls, <provider>_tokens or monthly_cost."`
	Requested       json.Number `json:"requested" doc:"What the refused call asked for, in the limit's unit (USD for monthly_cost)."`
	BillingPeriod   string      `json:"billing_period"`
}

// Error returns the message.
func (p *LimitProblem) Error() string { return p.Message }

// NewLimitProblem is ALwrity's 429 body for a refused admission, for the
// API and the LLM gateway alike.
func NewLimitProblem(e *billing.Error) *LimitProblem {
	l := e.Limit
	used := l.InUse()
	// Amounts are in the limit's unit: counts for calls and tokens, exact
	// USD for the cost limit (never pico-dollars beside a limit in USD).
	amount := func(v int64) json.Number {
		if l.Money {
			return json.Number(money.Amount(v).String())
		}
		return json.Number(strconv.FormatInt(v, 10))
	}
	p := &LimitProblem{
		ErrorModel: huma.ErrorModel{Status: http.StatusTooManyRequests, Title: http.StatusText(http.StatusTooManyRequests), Detail: e.Message},
		ErrorText:  "Usage limit exceeded",
		Message:    e.Message,
		UsageInfo: UsageInfoJSON{CurrentCalls: amount(used), Limit: amount(l.Limit), Type: l.Key, Requested: amount(l.Requested),
			BillingPeriod:   l.Period,
			UsagePercentage: billing.LimitUsage{Limit: &l.Limit, Used: used}.Percentage()},
	}
	if l.Provider != "" {
		p.Provider = &l.Provider
	}
	return p
}
