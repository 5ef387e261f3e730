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
	// PeriodStart is the start of the alert's period, when it is about
	// one; with BillingPeriod it names the period (see Period).
	PeriodStart time.Time
	// Limit is the value of the limit a usage or cost alert is about (0
	// for other alerts). It is part of the alert's identity, not stored.
	Limit     int64
	CreatedAt time.Time
}

// DedupeKey is the identity that makes an alert fire once. A period that
// starts where the UTC calendar month its key names starts (every period
// of a user without a subscription, and of a subscription anchored there)
// is named by its key alone; any other has its start too, so that a
// subscription's first period and the calendar month it began in, which
// share a key, alert apart — also when the subscription's period starts
// at another month's UTC start (a zone west of UTC anchored at its
// evening of the last day: "2026-04" starting May 1, 00:00 UTC). An alert
// about a limit has the limit's value too: a limit changed in the period
// (an upgrade takes effect at once) alerts again at its own thresholds.
func (a Alert) DedupeKey() string {
	k := a.UserID + "|" + a.Type + "|" + a.LimitKey + "|" + strconv.Itoa(a.ThresholdPercentage) + "|" + a.BillingPeriod
	if s := a.PeriodStart.UTC(); !s.IsZero() && !isCalendarStartOf(s, a.BillingPeriod) {
		k += "|" + strconv.FormatInt(s.Unix(), 10)
	}
	if a.Limit != 0 {
		k += "|limit=" + strconv.FormatInt(a.Limit, 10)
	}
	return k
}

// isCalendarStartOf reports whether t is the start, in UTC, of the
// calendar month that key ("2006-01") names.
func isCalendarStartOf(t time.Time, key string) bool {
	return t.Day() == 1 && t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 &&
		t.Format("2006-01") == key
}

// AlertFilter selects alerts, newest first.
type AlertFilter struct {
	UserID        string
	UnreadOnly    bool
	BillingPeriod string
	Limit         int
}
