// Package webhook delivers alwrity-billing's events to the HTTP endpoints
// administrators register. Events are written to an outbox in the same
// transaction as the change they report (see store.EnqueueEvent), one
// delivery per subscribed endpoint; a Worker claims due deliveries under a
// lease, POSTs them signed (see the public package webhooks), records every
// attempt and retries failures with exponential backoff for a day.
// Delivery is at least once: receivers de-duplicate by event id.
package webhook

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/webhooks"
)

// Delivery statuses.
const (
	StatusPending   = "pending"   // waiting for its next attempt
	StatusDelivered = "delivered" // the endpoint answered 2xx
	StatusFailed    = "failed"    // given up: retries ran out, or the endpoint was deactivated
)

// Endpoint is a registered receiver of events.
type Endpoint struct {
	ID          int64
	URL         string
	Events      []string // event types it receives
	Description string
	Active      bool
	// Secret signs deliveries. Stores return it only where it must be
	// shown or used: once in the answer to a creation or a rotation, and to
	// the worker; listings leave it empty.
	Secret          string
	CreatedAt       time.Time
	DeactivatedAt   *time.Time
	SecretRotatedAt *time.Time
}

// Delivery is one event on its way to one endpoint.
type Delivery struct {
	ID             int64
	EventID        string
	EventType      string
	EventCreatedAt time.Time
	EndpointID     int64
	Status         string
	Attempts       int
	NextAttemptAt  time.Time
	LastStatus     *int
	LastError      string
	DeliveredAt    *time.Time
	CreatedAt      time.Time
	// AttemptLog lists the recorded attempts, first first.
	AttemptLog []Attempt
}

// Attempt is one HTTP request made for a delivery.
type Attempt struct {
	Number      int // 1 for the first attempt
	AttemptedAt time.Time
	StatusCode  int    // 0 when no response came
	Error       string // why it did not succeed; "" on 2xx
	Duration    time.Duration
}

// DeliveryFilter selects deliveries, newest first.
type DeliveryFilter struct {
	EndpointID int64
	Status     string // "" for any
	Limit      int
	Offset     int
}

// Job is a claimed delivery: everything an attempt needs. Token proves the
// claim when the attempt is recorded.
type Job struct {
	DeliveryID     int64
	Attempt        int // the number of this attempt, 1 for the first
	Token          string
	EventID        string
	EventType      string
	EventCreatedAt time.Time
	Data           json.RawMessage
	EndpointID     int64
	URL            string
	// Secrets sign the delivery: the current secret, then a rotated-out one
	// still in its grace period.
	Secrets []string
}

// Result is the outcome of one attempt.
type Result struct {
	DeliveryID int64
	Token      string
	Attempt    Attempt
	// Delivered, or else NextAttemptAt says when to try again; nil means
	// give up (the delivery fails).
	Delivered     bool
	NextAttemptAt *time.Time
}

// IsEventType reports whether t is an event type endpoints subscribe to.
func IsEventType(t string) bool { return slices.Contains(webhooks.EventTypes(), t) }

// maxURLLen bounds an endpoint URL.
const maxURLLen = 2048

// ValidateEndpoint checks an endpoint's URL and event types and returns
// the event types de-duplicated in their canonical order. Errors: invalid,
// naming each bad field.
func ValidateEndpoint(rawURL string, events []string) ([]string, error) {
	var fields []billing.FieldError
	if msg := checkURL(rawURL); msg != "" {
		fields = append(fields, billing.FieldError{Location: "body.url", Message: msg, Value: clip(rawURL)})
	}
	var out []string
	if len(events) == 0 {
		fields = append(fields, billing.FieldError{Location: "body.events",
			Message: "name at least one event type: " + strings.Join(webhooks.EventTypes(), ", ")})
	}
	for i, e := range events {
		if !IsEventType(e) {
			fields = append(fields, billing.FieldError{Location: fmt.Sprintf("body.events[%d]", i),
				Message: "unknown event type; use " + strings.Join(webhooks.EventTypes(), ", "), Value: clip(e)})
		}
	}
	for _, t := range webhooks.EventTypes() {
		if slices.Contains(events, t) {
			out = append(out, t)
		}
	}
	if len(fields) > 0 {
		parts := make([]string, len(fields))
		for i, f := range fields {
			parts[i] = f.Location + ": " + f.Message
		}
		return nil, &billing.Error{Code: billing.CodeInvalid, Message: "invalid webhook endpoint: " + strings.Join(parts, "; "), Fields: fields}
	}
	return out, nil
}

// checkURL returns why raw is not a URL events can be posted to, or "".
func checkURL(raw string) string {
	if raw == "" {
		return "required"
	}
	if len(raw) > maxURLLen {
		return fmt.Sprintf("longer than %d characters", maxURLLen)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "not a URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "must be an http:// or https:// URL"
	case u.Host == "" || u.Hostname() == "":
		return "names no host"
	case u.User != nil:
		// Listings show URLs; credentials belong in the signature check.
		return "must not carry a user name or password"
	case u.Fragment != "":
		return "must not have a #fragment"
	}
	return ""
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// SecretPrefix starts every endpoint secret.
const SecretPrefix = "whsec_"

// NewSecret returns a new random endpoint secret (256 bits).
func NewSecret() string { return SecretPrefix + randomHex(32) }

// NewEventID returns a new random event id.
func NewEventID() string { return "evt_" + randomHex(16) }

// NewToken returns a new random lease token.
func NewToken() string { return randomHex(16) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
