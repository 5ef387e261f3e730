package httpapi

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// Envelope is ALwrity's success wrapper: {"success": true, "data": …}.
type Envelope[T any] struct {
	Success bool `json:"success"`
	Data    T    `json:"data"`
}

func ok[T any](data T) *struct{ Body Envelope[T] } {
	return &struct{ Body Envelope[T] }{Body: Envelope[T]{Success: true, Data: data}}
}

// Limits reports a plan's limits as numbers. For ALwrity compatibility an
// unlimited limit is written as 0, and "_zero_means" says for every key
// whether its 0 means unlimited, disabled (not allowed) or a real limit.
type Limits struct {
	entries []billing.LimitUsage
}

// MarshalJSON writes the limits in their stable order.
func (l Limits) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	zero := map[string]string{}
	b.WriteByte('{')
	for _, e := range l.entries {
		b.WriteString(`"` + e.Key + `":`)
		var v int64
		switch {
		case e.Limit == nil:
			zero[e.Key] = "unlimited"
		case *e.Limit == 0:
			zero[e.Key] = "disabled"
		default:
			zero[e.Key] = "limited"
			v = *e.Limit
		}
		if e.Money {
			b.WriteString(money.Amount(v).String())
		} else {
			b.WriteString(strconv.FormatInt(v, 10))
		}
		b.WriteByte(',')
	}
	zm, err := json.Marshal(zero)
	if err != nil {
		return nil, err
	}
	b.WriteString(`"_zero_means":`)
	b.Write(zm)
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Schema describes Limits in the OpenAPI document.
func (Limits) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{
		Type:        "object",
		Description: "Limit per key (total_calls, <provider>_calls, <provider>_tokens, monthly_cost in USD). 0 is ambiguous; _zero_means says whether it means unlimited, disabled or limited.",
		Properties: map[string]*huma.Schema{
			"total_calls":  {Type: "integer"},
			"monthly_cost": {Type: "number"},
			"_zero_means": {Type: "object", AdditionalProperties: &huma.Schema{
				Type: "string", Enum: []any{"unlimited", "disabled", "limited"}}},
		},
		AdditionalProperties: &huma.Schema{Type: "number"},
	}
}

// PlanJSON is a plan as GET /plans shows it.
type PlanJSON struct {
	ID           int64        `json:"id"`
	Name         string       `json:"name"`
	Tier         string       `json:"tier" enum:"free,basic,pro,enterprise"`
	PriceMonthly money.Amount `json:"price_monthly"`
	PriceYearly  money.Amount `json:"price_yearly"`
	Description  string       `json:"description"`
	Features     []string     `json:"features"`
	Limits       Limits       `json:"limits"`
	// Ours, beside ALwrity's fields.
	Version            int           `json:"version" doc:"Edits make new versions of a plan; this is the version number."`
	SoftLimits         bool          `json:"soft_limits" doc:"Calls above the call and token limits are admitted and billed as overage."`
	OveragePerCall     *money.Amount `json:"overage_per_call" doc:"USD per call above total_calls; null when none."`
	OveragePer1KTokens *money.Amount `json:"overage_per_1k_tokens" doc:"USD per 1,000 tokens above a provider's token limit; null when none."`
}

// PlansData is GET /plans.
type PlansData struct {
	Plans []PlanJSON `json:"plans"`
	Total int        `json:"total"`
}

// LongContextJSON is the price set used once a prompt exceeds the threshold.
type LongContextJSON struct {
	ThresholdTokens          int64        `json:"threshold_tokens"`
	CostPerInputToken        money.Amount `json:"cost_per_input_token"`
	CostPerOutputToken       money.Amount `json:"cost_per_output_token"`
	CostPerCachedInputToken  money.Amount `json:"cost_per_cached_input_token"`
	CostPerCacheWrite5mToken money.Amount `json:"cost_per_cache_write_5m_token"`
	CostPerCacheWrite1hToken money.Amount `json:"cost_per_cache_write_1h_token"`
	CostPerReasoningToken    money.Amount `json:"cost_per_reasoning_token"`
}

// PriceJSON is one model's current price, per token or per unit, in USD.
type PriceJSON struct {
	Provider                 string           `json:"provider"`
	ModelName                string           `json:"model_name"`
	CostPerInputToken        money.Amount     `json:"cost_per_input_token"`
	CostPerOutputToken       money.Amount     `json:"cost_per_output_token"`
	CostPerCachedInputToken  money.Amount     `json:"cost_per_cached_input_token"`
	CostPerCacheWrite5mToken money.Amount     `json:"cost_per_cache_write_5m_token"`
	CostPerCacheWrite1hToken money.Amount     `json:"cost_per_cache_write_1h_token"`
	CostPerReasoningToken    money.Amount     `json:"cost_per_reasoning_token"`
	CostPerRequest           money.Amount     `json:"cost_per_request"`
	CostPerSearch            money.Amount     `json:"cost_per_search"`
	CostPerImage             money.Amount     `json:"cost_per_image"`
	CostPerPage              money.Amount     `json:"cost_per_page"`
	LongContext              *LongContextJSON `json:"long_context"`
	Description              string           `json:"description"`
	EffectiveDate            time.Time        `json:"effective_date"`
	EffectiveTo              *time.Time       `json:"effective_to"`
}

// PricingData is GET /pricing.
type PricingData struct {
	Pricing []PriceJSON `json:"pricing"`
	Total   int         `json:"total"`
}

// PlanLimitsJSON is the plan part of usage statistics.
type PlanLimitsJSON struct {
	PlanName string   `json:"plan_name"`
	Tier     string   `json:"tier"`
	Limits   Limits   `json:"limits"`
	Features []string `json:"features"`
}

// ProviderUsageJSON is one provider's share of a period's usage.
type ProviderUsageJSON struct {
	Calls  int64        `json:"calls"`
	Tokens int64        `json:"tokens"`
	Cost   money.Amount `json:"cost"`
}

// AlertBriefJSON is an alert as usage statistics list it.
type AlertBriefJSON struct {
	ID        int64     `json:"id"`
	Type      string    `json:"type"`
	Title     string    `json:"title"`
	Message   string    `json:"message"`
	Severity  string    `json:"severity"`
	CreatedAt time.Time `json:"created_at"`
}

// UsageStats is a user's usage in one period (or all time).
type UsageStats struct {
	BillingPeriod     string                       `json:"billing_period"`
	PeriodStart       *time.Time                   `json:"period_start"`
	PeriodEnd         *time.Time                   `json:"period_end"`
	UsageStatus       string                       `json:"usage_status" enum:"active,warning,limit_reached"`
	TotalCalls        int64                        `json:"total_calls"`
	TotalTokens       int64                        `json:"total_tokens"`
	TokensInput       int64                        `json:"tokens_input"`
	TokensOutput      int64                        `json:"tokens_output"`
	TotalCost         money.Amount                 `json:"total_cost"`
	TotalErrors       int64                        `json:"total_errors"`
	AvgResponseTime   float64                      `json:"avg_response_time" doc:"Seconds."`
	ErrorRate         float64                      `json:"error_rate" doc:"Percent of calls that failed."`
	Limits            PlanLimitsJSON               `json:"limits"`
	ProviderBreakdown map[string]ProviderUsageJSON `json:"provider_breakdown"`
	Alerts            []AlertBriefJSON             `json:"alerts"`
	UsagePercentages  map[string]float64           `json:"usage_percentages"`
	LastUpdated       time.Time                    `json:"last_updated"`
}

// ProviderTrendJSON is one provider's series, aligned with Trends.Periods.
type ProviderTrendJSON struct {
	Calls  []int64        `json:"calls"`
	Cost   []money.Amount `json:"cost"`
	Tokens []int64        `json:"tokens"`
}

// Trends are per-period series over consecutive months, oldest first.
type Trends struct {
	Periods        []string                     `json:"periods"`
	TotalCalls     []int64                      `json:"total_calls"`
	TotalCost      []money.Amount               `json:"total_cost"`
	TotalTokens    []int64                      `json:"total_tokens"`
	ProviderTrends map[string]ProviderTrendJSON `json:"provider_trends"`
}

// Projections extrapolate this period's cost to its end.
type Projections struct {
	ProjectedMonthlyCost     money.Amount `json:"projected_monthly_cost"`
	CostLimit                money.Amount `json:"cost_limit" doc:"0 when the plan has no cost limit."`
	ProjectedUsagePercentage float64      `json:"projected_usage_percentage"`
}

// DashboardSummary is the dashboard's headline figures.
type DashboardSummary struct {
	TotalAPICallsThisMonth int64        `json:"total_api_calls_this_month"`
	TotalCostThisMonth     money.Amount `json:"total_cost_this_month"`
	UsageStatus            string       `json:"usage_status"`
	UnreadAlerts           int64        `json:"unread_alerts"`
}

// Dashboard is GET /dashboard/{user_id}.
type Dashboard struct {
	CurrentUsage       UsageStats       `json:"current_usage"`
	CurrentPeriodUsage UsageStats       `json:"current_period_usage"`
	TotalUsage         UsageStats       `json:"total_usage"`
	Trends             Trends           `json:"trends"`
	Limits             PlanLimitsJSON   `json:"limits"`
	Alerts             []AlertBriefJSON `json:"alerts"`
	Projections        Projections      `json:"projections"`
	Summary            DashboardSummary `json:"summary"`
}

// AlertJSON is an alert as GET /alerts shows it.
type AlertJSON struct {
	ID                  int64      `json:"id"`
	Type                string     `json:"type"`
	ThresholdPercentage int        `json:"threshold_percentage"`
	Provider            *string    `json:"provider"`
	Title               string     `json:"title"`
	Message             string     `json:"message"`
	Severity            string     `json:"severity" enum:"info,warning,error"`
	IsSent              bool       `json:"is_sent"`
	SentAt              *time.Time `json:"sent_at"`
	IsRead              bool       `json:"is_read"`
	ReadAt              *time.Time `json:"read_at"`
	BillingPeriod       string     `json:"billing_period"`
	CreatedAt           time.Time  `json:"created_at"`
}

// AlertsData is GET /alerts/{user_id}.
type AlertsData struct {
	Alerts      []AlertJSON `json:"alerts"`
	Total       int64       `json:"total"`
	UnreadCount int64       `json:"unread_count"`
}

// MessageBody is {"success": true, "message": …}.
type MessageBody struct {
	Success bool   `json:"success"`
	Message string `json:"message"`
}

// SubscriptionJSON is a stored subscription.
type SubscriptionJSON struct {
	ID                 int64     `json:"id"`
	BillingCycle       string    `json:"billing_cycle" enum:"monthly,yearly"`
	CurrentPeriodStart time.Time `json:"current_period_start"`
	CurrentPeriodEnd   time.Time `json:"current_period_end"`
	Status             string    `json:"status"`
	AutoRenew          bool      `json:"auto_renew"`
	TimeZone           string    `json:"time_zone"`
	CreatedAt          time.Time `json:"created_at"`
}

// SubscriptionPlanJSON is the plan part of a user's subscription.
type SubscriptionPlanJSON struct {
	ID           int64        `json:"id"`
	Name         string       `json:"name"`
	Tier         string       `json:"tier"`
	PriceMonthly money.Amount `json:"price_monthly"`
	PriceYearly  money.Amount `json:"price_yearly"`
	Description  string       `json:"description"`
	IsFree       bool         `json:"is_free"`
}

// UserSubscriptionData is GET /user/{user_id}/subscription.
type UserSubscriptionData struct {
	Subscription *SubscriptionJSON    `json:"subscription"`
	Plan         SubscriptionPlanJSON `json:"plan"`
	Status       string               `json:"status"`
	Limits       Limits               `json:"limits"`
	UsagePeriod  PeriodJSON           `json:"usage_period"`
}

// PeriodJSON is a usage period.
type PeriodJSON struct {
	BillingPeriod string    `json:"billing_period"`
	Start         time.Time `json:"start"`
	End           time.Time `json:"end"`
}

// StatusData is GET /status/{user_id}.
type StatusData struct {
	Active    bool   `json:"active"`
	Plan      string `json:"plan"`
	Tier      string `json:"tier"`
	CanUseAPI bool   `json:"can_use_api"`
	Limits    Limits `json:"limits"`
	// Reason is present only when active is false, as ALwrity's clients
	// read its presence as "not active".
	Reason string `json:"reason,omitempty" doc:"Why the subscription is not active; present only when active is false."`
	// UsageReason explains can_use_api false while the subscription is
	// active: a limit that binds every call is used up this period.
	UsageReason string `json:"usage_reason,omitempty" doc:"Why an active subscription cannot use the API now (a limit of every call used up this period); present only when active is true and can_use_api is false."`
}

// LogJSON is one usage-log row.
type LogJSON struct {
	ID                 int64        `json:"id"`
	EventID            string       `json:"event_id"`
	UserID             string       `json:"user_id"`
	Timestamp          time.Time    `json:"timestamp"`
	Provider           string       `json:"provider"`
	ModelUsed          string       `json:"model_used"`
	Endpoint           string       `json:"endpoint"`
	Method             string       `json:"method"`
	TokensInput        int64        `json:"tokens_input"`
	TokensOutput       int64        `json:"tokens_output"`
	TokensTotal        int64        `json:"tokens_total"`
	TokensCachedInput  int64        `json:"tokens_cached_input"`
	TokensCacheWrite5m int64        `json:"tokens_cache_write_5m"`
	TokensCacheWrite1h int64        `json:"tokens_cache_write_1h"`
	TokensReasoning    int64        `json:"tokens_reasoning"`
	CostInput          money.Amount `json:"cost_input"`
	CostOutput         money.Amount `json:"cost_output"`
	CostTotal          money.Amount `json:"cost_total"`
	ResponseTime       float64      `json:"response_time" doc:"Seconds."`
	StatusCode         int          `json:"status_code"`
	Status             string       `json:"status" enum:"success,failed"`
	ErrorMessage       *string      `json:"error_message"`
	BillingPeriod      string       `json:"billing_period"`
	RetryCount         int          `json:"retry_count"`
	Unpriced           bool         `json:"unpriced"`
	Partial            bool         `json:"partial"`
}

// LogsBody is GET /usage-logs (no envelope, as ALwrity's).
type LogsBody struct {
	Logs       []LogJSON `json:"logs"`
	TotalCount int64     `json:"total_count"`
	Limit      int       `json:"limit"`
	Offset     int       `json:"offset"`
	HasMore    bool      `json:"has_more"`
	// NextCursor pages on by keyset; ours, beside ALwrity's offset paging.
	NextCursor *string `json:"next_cursor" nullable:"true" doc:"Pass as cursor to read the next page at the cost of the first; null on the last page."`
}

// ProviderHealthJSON is a provider's recent error rate and latency.
type ProviderHealthJSON struct {
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors" doc:"Calls that failed by the provider's fault: 5xx, 429, 408, 401, 403 (not the callers' own 4xx)."`
	ErrorRate float64 `json:"error_rate" doc:"Percent."`
	P50Ms     float64 `json:"p50_ms"`
	P95Ms     float64 `json:"p95_ms"`
}

// HealthData is GET /health.
type HealthData struct {
	Status         string                        `json:"status" enum:"healthy,warning,critical"`
	WindowSeconds  int                           `json:"window_seconds"`
	RecentRequests int64                         `json:"recent_requests"`
	RecentErrors   int64                         `json:"recent_errors" doc:"Calls that failed by their provider's fault: 5xx, 429, 408, 401, 403. A caller's own 4xx (a malformed request, an unknown model) is its user's failed call, not the system's."`
	ErrorRate      float64                       `json:"error_rate" doc:"Percent."`
	Providers      map[string]ProviderHealthJSON `json:"providers"`
	Database       string                        `json:"database"`
	Timestamp      time.Time                     `json:"timestamp"`
}
