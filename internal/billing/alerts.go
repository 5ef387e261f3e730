package billing

import (
	"strconv"
	"time"
)

// Alert types.
const (
	AlertUsageWarning  = "usage_warning"
	AlertLimitReached  = "limit_reached"
	AlertCostWarning   = "cost_warning"
	AlertCostOverrun   = "cost_overrun"
	AlertSystemHealth  = "system_health"
	AlertUnpricedModel = "unpriced_model"
)

// Alert is a notice about a user's usage or the system's health. At most one
// alert exists per (user, type, limit, threshold, period): DedupeKey is
// unique in storage.
type Alert struct {
	ID                  int64
	UserID              string
	Type                string
	LimitKey            string
	ThresholdPercentage int
	Provider            string // "" when not about one provider
	Title               string
	Message             string
	Severity            string // info | warning | error
	IsSent              bool
	SentAt              *time.Time
	IsRead              bool
	ReadAt              *time.Time
	BillingPeriod       string
	CreatedAt           time.Time
}

// DedupeKey is the identity that makes an alert fire once.
func (a Alert) DedupeKey() string {
	return a.UserID + "|" + a.Type + "|" + a.LimitKey + "|" + strconv.Itoa(a.ThresholdPercentage) + "|" + a.BillingPeriod
}

// AlertFilter selects alerts, newest first.
type AlertFilter struct {
	UserID        string
	UnreadOnly    bool
	BillingPeriod string
	Limit         int
}
