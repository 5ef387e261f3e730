package billing

import (
	"time"

	"github.com/alwrity/alwrity-billing/internal/money"
)

// Counters are the running totals of one period, for one provider or all.
type Counters struct {
	Calls           int64
	Errors          int64
	TokensInput     int64
	TokensOutput    int64
	Cost            money.Amount
	ResponseTimeSum float64 // seconds
}

// Plus returns c and o summed.
func (c Counters) Plus(o Counters) Counters {
	return Counters{Calls: c.Calls + o.Calls, Errors: c.Errors + o.Errors, TokensInput: c.TokensInput + o.TokensInput,
		TokensOutput: c.TokensOutput + o.TokensOutput, Cost: c.Cost + o.Cost, ResponseTimeSum: c.ResponseTimeSum + o.ResponseTimeSum}
}

// Tokens returns input plus output tokens.
func (c Counters) Tokens() int64 { return c.TokensInput + c.TokensOutput }

// AvgResponseTime returns the mean response time in seconds.
func (c Counters) AvgResponseTime() float64 {
	if c.Calls == 0 {
		return 0
	}
	return c.ResponseTimeSum / float64(c.Calls)
}

// ErrorRate returns failed calls as a percentage of all calls.
func (c Counters) ErrorRate() float64 {
	if c.Calls == 0 {
		return 0
	}
	return float64(c.Errors) * 100 / float64(c.Calls)
}

// PeriodUsage is a user's usage in one period (or all time).
type PeriodUsage struct {
	UserID      string
	Period      Period
	Total       Counters
	ByProvider  map[string]Counters
	LastUpdated time.Time
}

// UsageLog is one metered call: a row of the append-only ledger.
type UsageLog struct {
	ID                 int64
	EventID            string
	UserID             string
	Provider           string
	ModelUsed          string
	Endpoint           string
	Method             string
	TokensInput        int64 // every input token: uncached, cache reads and cache writes
	TokensOutput       int64 // every output token, reasoning included
	TokensCachedInput  int64
	TokensCacheWrite5m int64
	TokensCacheWrite1h int64
	TokensReasoning    int64
	RequestCount       int64
	SearchCount        int64
	ImageCount         int64
	PageCount          int64
	CostInput          money.Amount
	CostOutput         money.Amount
	CostTotal          money.Amount
	ResponseTime       float64 // seconds
	StatusCode         int
	ErrorMessage       string
	RetryCount         int
	Unpriced           bool
	Partial            bool
	Metadata           string // JSON object text
	Timestamp          time.Time
	BillingPeriod      string
	PeriodStart        time.Time
}

// TokensTotal returns input plus output tokens.
func (l UsageLog) TokensTotal() int64 { return l.TokensInput + l.TokensOutput }

// Failed reports whether the call failed (a status of 400 or more).
func (l UsageLog) Failed() bool { return l.StatusCode >= 400 }

// ProviderFault reports whether a call's status counts against its
// provider's health: a server error (5xx), a rate limit (429), a timeout
// (408), or a key the provider refused (401, 403; the gateway's keys are
// the server's). Other 4xx are the caller's own mistakes (a malformed
// request, an unknown model, a body too large): failed calls of their user
// (Failed), but they say nothing about the provider, and a user sending
// them must not raise a system_health alert or mark a provider unhealthy.
func ProviderFault(status int) bool {
	switch status {
	case 401, 403, 408, 429:
		return true
	}
	return status >= 500
}

// LogFilter selects usage logs, newest first.
type LogFilter struct {
	UserID        string // "" for every user (admins only)
	Provider      string
	StatusCode    int
	BillingPeriod string
	Limit         int
	Offset        int
	// Before, when set, selects only the logs after that position in
	// newest-first order (keyset paging: a page costs the same however deep).
	Before *LogPosition
}

// LogPosition is a usage log's place in newest-first order: its timestamp,
// then its id for logs of the same instant.
type LogPosition struct {
	Timestamp time.Time
	ID        int64
}

// ProviderHealth is a provider's recent error rate and latency.
type ProviderHealth struct {
	Requests  int64
	Errors    int64
	ErrorRate float64 // percent
	P50Ms     float64
	P95Ms     float64
}

// ProjectedCost extrapolates the period's cost to its end: the cost so far
// divided by the part of the period that has passed, in exact money. In
// the first hundredth of a period (about seven hours of a month) the cost
// so far is the projection: a few calls in its first seconds would
// project a fortune (and past the largest amount, nothing at all).
func (u PeriodUsage) ProjectedCost(now time.Time) money.Amount {
	num, den := u.Period.Elapsed(now)
	if num <= 0 || num < den/100 {
		return u.Total.Cost
	}
	p, err := u.Total.Cost.MulRatio(den, num)
	if err != nil {
		return u.Total.Cost
	}
	return p
}
