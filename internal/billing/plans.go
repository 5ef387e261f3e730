package billing

import (
	"time"

	"github.com/alwrity/alwrity-billing/internal/money"
)

// Provider is a metered external service. Providers are data (the
// api_providers table), so adding one needs no code change.
type Provider struct {
	Name         string // "openai", the key used everywhere
	DisplayName  string // "OpenAI"
	Kind         string // "llm", "search", "scrape" or "image"
	MetersTokens bool   // whether plans may limit its tokens
	SortOrder    int
}

// Plan is a subscription tier. A nil limit means unlimited; a zero limit
// means the thing is not allowed at all.
type Plan struct {
	ID               int64
	Name             string
	Tier             string // ALwrity's vocabulary: free | basic | pro | enterprise
	PriceMonthly     money.Amount
	PriceYearly      money.Amount
	Description      string
	Features         []string
	IsActive         bool
	TotalCallsLimit  *int64
	MonthlyCostLimit *money.Amount
	ProviderLimits   map[string]ProviderLimit
	// Version counts edits: an edit makes a new version (a new plan row)
	// and points the old one at it with ReplacedBy.
	Version    int
	ReplacedBy *int64
	// SoftLimits plans admit calls above the call and token limits and
	// bill them as overage instead (the monthly cost limit stays hard).
	SoftLimits         bool
	OveragePerCall     *money.Amount
	OveragePer1KTokens *money.Amount
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// ProviderLimit holds a plan's per-provider ceilings; nil is unlimited.
type ProviderLimit struct {
	Calls  *int64
	Tokens *int64
}

// IsFree reports whether the plan costs nothing in either cycle.
func (p Plan) IsFree() bool { return p.PriceMonthly == 0 && p.PriceYearly == 0 }

// Subscription assigns a plan to a user. Its usage periods follow Schedule.
type Subscription struct {
	ID                 int64
	UserID             string
	PlanID             int64
	BillingCycle       string // monthly | yearly
	Status             string // active | past_due | cancelled | expired
	AutoRenew          bool
	Anchor             time.Time
	TimeZone           string
	CurrentPeriodStart time.Time // the billing cycle
	CurrentPeriodEnd   time.Time
	// PendingPlanID and PendingCycle take effect at the next renewal (a
	// downgrade or a change of cycle).
	PendingPlanID     *int64
	PendingCycle      string
	CancelAtPeriodEnd bool
	CancelledAt       *time.Time
	// InvoicedThrough is the end of the last usage period invoiced.
	InvoicedThrough time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Schedule returns the subscription's monthly usage-period schedule. An
// unknown time zone falls back to UTC; time zones are validated on write.
func (s Subscription) Schedule() Schedule {
	loc := time.UTC
	if s.TimeZone != "" {
		if l, err := time.LoadLocation(s.TimeZone); err == nil {
			loc = l
		}
	}
	return Schedule{Anchor: s.Anchor, Location: loc}
}

// Subscription statuses.
const (
	StatusActive    = "active"
	StatusPastDue   = "past_due"
	StatusCancelled = "cancelled"
	StatusExpired   = "expired"
)

// Ptr returns a pointer to v, for writing limits.
func Ptr[T any](v T) *T { return &v }
