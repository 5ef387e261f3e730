package billing

import (
	"fmt"
	"time"

	"github.com/alwrity/alwrity-billing/internal/money"
)

// Reservation is a binding admission: units held against a user's limits
// until settled, released or expired.
type Reservation struct {
	ID        string
	UserID    string
	Period    Period
	Provider  string
	Model     string
	Calls     int64
	Tokens    int64
	Cost      money.Amount
	Status    string // held | settled | released | expired
	EventID   string
	ExpiresAt time.Time
	CreatedAt time.Time
}

// Reservation statuses.
const (
	ReservationHeld     = "held"
	ReservationSettled  = "settled"
	ReservationReleased = "released"
	ReservationExpired  = "expired"
)

// Limits are the ceilings an admission checks; nil is unlimited.
type Limits struct {
	TotalCalls     *int64
	Cost           *int64 // pico-dollars
	ProviderCalls  *int64
	ProviderTokens *int64
}

// LimitsFor extracts the limits of plan that bind calls to provider.
func LimitsFor(plan Plan, provider string) Limits {
	l := Limits{TotalCalls: plan.TotalCallsLimit, ProviderCalls: plan.ProviderLimits[provider].Calls,
		ProviderTokens: plan.ProviderLimits[provider].Tokens}
	if plan.SoftLimits {
		// Calls and tokens above the limits are billed as overage.
		l.TotalCalls, l.ProviderCalls, l.ProviderTokens = nil, nil, nil
	}
	if plan.MonthlyCostLimit != nil {
		l.Cost = Ptr(int64(*plan.MonthlyCostLimit))
	}
	return l
}

// ReserveRequest asks to hold units of a user's limits before a call.
type ReserveRequest struct {
	UserID   string
	Provider string
	Model    string
	// Tokens is the most the call may use (input estimate plus max output).
	Tokens int64
	// Cost is the estimated cost; when zero it is estimated from Tokens at
	// the model's current output price.
	Cost money.Amount
	TTL  time.Duration
	// InProcess says the caller settles or releases the reservation
	// through the same meter (the gateway does): on PostgreSQL the meter
	// may then admit it from a lease, without a round trip, and it has no
	// row of its own (GetReservation does not find it).
	InProcess bool
}

// InUse is what a refusal reports as used: the settled usage plus what
// reservations hold, the holds counted up to the room the limit left. An
// admission never holds more than that room, but on PostgreSQL a call's
// units are counted twice for a moment after it is recorded — in the
// usage, and in the lease that admitted it until the lease gives them back
// (metering/lease.go) — so the raw sum can pass the limit ("Used 154 of
// 145") with no call over it. Settled usage is reported whole, also
// beyond the limit.
func (l LimitInfo) InUse() int64 {
	return l.Used + min(l.Reserved, max(0, l.Limit-l.Used))
}

// RefusalMessage says, for people, which limit refused an admission.
func (l LimitInfo) RefusalMessage() string {
	used, limit := fmt.Sprint(l.InUse()), fmt.Sprint(l.Limit)
	if l.Money {
		used, limit = money.Amount(l.InUse()).Dollars(), money.Amount(l.Limit).Dollars()
	}
	switch {
	case l.Money:
		return fmt.Sprintf("Monthly cost limit reached. Used %s of %s in period %s (including calls in progress).", used, limit, l.Period)
	case l.Key == "total_calls":
		return fmt.Sprintf("API call limit reached. Used %s of %s calls in period %s (including calls in progress).", used, limit, l.Period)
	case l.Limit == 0:
		return fmt.Sprintf("%s is not included in this plan.", l.Key)
	case l.Key == l.Provider+"_tokens":
		return fmt.Sprintf("Token limit reached for %s. Used %s of %s tokens in period %s (including calls in progress).", l.Provider, used, limit, l.Period)
	}
	return fmt.Sprintf("API call limit reached for %s. Used %s of %s in period %s (including calls in progress).", l.Provider, used, limit, l.Period)
}
