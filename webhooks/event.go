package webhooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Event types an endpoint can subscribe to.
const (
	// EventAlertCreated is sent for every new usage alert (data: Alert).
	EventAlertCreated = "alert.created"
	// EventUsageLimitReached is sent, beside alert.created, when a user
	// reaches 100 % of a limit: an alert of type limit_reached or
	// cost_overrun (data: Alert).
	EventUsageLimitReached = "usage.limit_reached"
	// EventSubscriptionChanged is sent when a subscription starts, changes
	// plan or cycle, or ends.
	EventSubscriptionChanged = "subscription.changed"
	// EventInvoiceIssued is sent when a billing-history invoice is issued.
	EventInvoiceIssued = "invoice.issued"
	// EventPing is sent to one endpoint on an administrator's request, to
	// test it; endpoints receive it whatever they subscribe to.
	EventPing = "ping"
)

// EventTypes returns the event types an endpoint can subscribe to.
func EventTypes() []string {
	return []string{EventAlertCreated, EventSubscriptionChanged, EventInvoiceIssued, EventUsageLimitReached}
}

// Event is the body of a delivery.
type Event struct {
	// ID is unique per event and the same on every retry of it: the key
	// to de-duplicate by.
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// Alert is the data of alert.created and usage.limit_reached.
type Alert struct {
	AlertID             int64     `json:"alert_id"`
	UserID              string    `json:"user_id"`
	Type                string    `json:"type"` // usage_warning, limit_reached, cost_warning, cost_overrun, …
	LimitKey            string    `json:"limit_key"`
	ThresholdPercentage int       `json:"threshold_percentage"`
	Provider            *string   `json:"provider"`
	Title               string    `json:"title"`
	Message             string    `json:"message"`
	Severity            string    `json:"severity"`
	BillingPeriod       string    `json:"billing_period"`
	CreatedAt           time.Time `json:"created_at"`
}

// MaxBodyBytes bounds the body ReadEvent reads.
const MaxBodyBytes = 1 << 20

// ReadEvent reads a delivery from r, verifies its signature with secret
// (see Verify) and decodes its event. A receiver answers 2xx once it has
// stored the event (or seen its id before), and 4xx to an error from here.
func ReadEvent(r *http.Request, secret string, tolerance time.Duration, now time.Time) (Event, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return Event{}, fmt.Errorf("webhooks: read body: %w", err)
	}
	if len(body) > MaxBodyBytes {
		return Event{}, errors.New("webhooks: body too large")
	}
	return ParseEvent(secret, r.Header.Get(SignatureHeader), body, tolerance, now)
}

// ParseEvent verifies body against the signature header (see Verify) and
// decodes its event.
func ParseEvent(secret, header string, body []byte, tolerance time.Duration, now time.Time) (Event, error) {
	if err := Verify(secret, header, body, tolerance, now); err != nil {
		return Event{}, err
	}
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return Event{}, fmt.Errorf("webhooks: decode event: %w", err)
	}
	if ev.ID == "" || ev.Type == "" {
		return Event{}, errors.New("webhooks: event without id or type")
	}
	return ev, nil
}
