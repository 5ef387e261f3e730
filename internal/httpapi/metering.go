package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// Meter is what the recording and admission routes need.
type Meter interface {
	Record(ctx context.Context, events []billing.UsageEvent) ([]billing.EventResult, error)
	Reserve(ctx context.Context, req billing.ReserveRequest) (billing.Reservation, error)
	Settle(ctx context.Context, id string, e billing.UsageEvent) (billing.EventResult, error)
	Release(ctx context.Context, id string) (billing.Reservation, error)
	GetReservation(ctx context.Context, id string) (billing.Reservation, error)
}

// EventResultJSON says what recording one event did.
type EventResultJSON struct {
	EventID       string       `json:"event_id"`
	Status        string       `json:"status" enum:"recorded,duplicate"`
	Cost          money.Amount `json:"cost"`
	BillingPeriod string       `json:"billing_period"`
	Unpriced      bool         `json:"unpriced" doc:"No price matched the model: recorded at no cost and an admin alert raised."`
}

// RecordData is POST /usage's answer, one result per event in order.
type RecordData struct {
	Results    []EventResultJSON `json:"results"`
	Recorded   int               `json:"recorded"`
	Duplicates int               `json:"duplicates"`
}

func resultJSON(r billing.EventResult) EventResultJSON {
	return EventResultJSON{EventID: r.EventID, Status: r.Status, Cost: r.Cost, BillingPeriod: r.BillingPeriod, Unpriced: r.Unpriced}
}

type recordInput struct {
	RawBody []byte `contentType:"application/json"`
}

func (s *Server) registerMetering() {
	sec := func(id, method, path, summary string, status int) huma.Operation {
		return huma.Operation{OperationID: id, Method: method, Path: Prefix + path, Summary: summary,
			Tags: []string{"metering"}, Security: bearer, DefaultStatus: status,
			Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden}}
	}
	op := sec("record-usage", http.MethodPost, "/usage", "Record usage events (one, or a batch of up to 1,000)", http.StatusOK)
	op.Description = "Idempotent on event_id: a resend returns the first result and changes nothing, " +
		"also when the event would no longer pass validation (e.g. it is now more than 35 days old). " +
		"An event_id is unique across users: one that another user's event holds is a bad event. " +
		"A batch is validated whole: one bad event refuses the batch with every problem listed, and nothing is stored. " +
		"A 2xx means the events are committed."
	op.RequestBody = &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
		"application/json": {Schema: s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[UsageBatchJSON](), true, "UsageBatch")},
	}}
	op.SkipValidateBody = true // DecodeEvents validates strictly and names each bad field
	huma.Register(s.api, op, s.recordUsage)
	op = sec("reserve", http.MethodPost, "/reserve", "Reserve one call against the user's limits before making it", http.StatusCreated)
	op.Errors = append(op.Errors, http.StatusTooManyRequests)
	huma.Register(s.api, op, s.reserve)
	op = sec("settle-reservation", http.MethodPost, "/reservations/{reservation_id}/settle",
		"Record a reserved call's real usage and release the rest", http.StatusOK)
	op.Description = "The body is one usage event. Its user, provider and model default to the reservation's, " +
		"and its event_id to the reservation's id, so a retried settle is answered as a duplicate."
	op.RequestBody = &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
		"application/json": {Schema: s.settleSchema()},
	}}
	op.SkipValidateBody = true // decoded strictly like POST /usage, naming each bad field
	huma.Register(s.api, op, s.settle)
	huma.Register(s.api, sec("release-reservation", http.MethodDelete, "/reservations/{reservation_id}",
		"Release a reservation without recording usage", http.StatusOK), s.release)
}

func (s *Server) recordUsage(ctx context.Context, in *recordInput) (*struct{ Body Envelope[RecordData] }, error) {
	p, err := s.auth.Principal(ctx)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	// A refused batch is the 400 this route documents, listing every bad
	// event's fields, whatever is wrong with its events.
	decoded, err := DecodeEvents(in.RawBody)
	if err != nil {
		return nil, s.problem(ctx, keepBadRequest(err))
	}
	now := s.now()
	events := make([]billing.UsageEvent, len(decoded))
	for i, d := range decoded {
		e := d.toEvent(now)
		switch {
		case p.IsAdmin():
		case e.UserID == "":
			e.UserID = p.UserID
		case e.UserID != p.UserID:
			return nil, s.problem(ctx, billing.Errorf(billing.CodeForbidden, "events[%d]: this key may record only user %q's usage", i, p.UserID))
		}
		if e.EventID == "" {
			e.EventID = mintID("evt_")
		}
		events[i] = e
	}
	results, err := s.meter.Record(ctx, events)
	if err != nil {
		return nil, s.problem(ctx, keepBadRequest(err))
	}
	data := RecordData{Results: make([]EventResultJSON, len(results))}
	for i, r := range results {
		data.Results[i] = resultJSON(r)
		if r.Status == billing.EventRecorded {
			data.Recorded++
		} else {
			data.Duplicates++
		}
	}
	return ok(data), nil
}

// ReserveJSON asks to hold one call of a user's limits.
type ReserveJSON struct {
	UserID          string        `json:"user_id,omitempty" maxLength:"128" doc:"Defaults to the key's user; admins must give it."`
	Provider        string        `json:"provider" maxLength:"64"`
	Model           string        `json:"model,omitempty" maxLength:"128"`
	TokensRequested int64         `json:"tokens_requested,omitempty" minimum:"0" doc:"The most tokens the call may use (prompt estimate plus max output)."`
	EstimatedCost   *money.Amount `json:"estimated_cost,omitempty" doc:"USD; estimated from the model's price when omitted."`
	TTLSeconds      int           `json:"ttl_seconds,omitempty" minimum:"0" maximum:"86400" doc:"How long the hold lasts unless settled or released (default 600)."`
}

// ReservationJSON is a held reservation.
type ReservationJSON struct {
	ReservationID string       `json:"reservation_id"`
	UserID        string       `json:"user_id"`
	Provider      string       `json:"provider"`
	Model         string       `json:"model"`
	BillingPeriod string       `json:"billing_period"`
	Calls         int64        `json:"calls"`
	Tokens        int64        `json:"tokens"`
	Cost          money.Amount `json:"cost"`
	Status        string       `json:"status" enum:"held,settled,released,expired"`
	ExpiresAt     time.Time    `json:"expires_at"`
}

func reservationJSON(r billing.Reservation) ReservationJSON {
	return ReservationJSON{ReservationID: r.ID, UserID: r.UserID, Provider: r.Provider, Model: r.Model,
		BillingPeriod: r.Period.Key, Calls: r.Calls, Tokens: r.Tokens, Cost: r.Cost, Status: r.Status, ExpiresAt: r.ExpiresAt}
}

func (s *Server) reserve(ctx context.Context, in *struct{ Body ReserveJSON }) (*struct{ Body Envelope[ReservationJSON] }, error) {
	p, err := s.auth.Principal(ctx)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	userID := in.Body.UserID
	switch {
	case p.IsAdmin():
	case userID == "":
		userID = p.UserID
	case userID != p.UserID:
		return nil, s.problem(ctx, billing.Errorf(billing.CodeForbidden, "this key may reserve only for user %q", p.UserID))
	}
	req := billing.ReserveRequest{UserID: userID, Provider: in.Body.Provider, Model: in.Body.Model,
		Tokens: in.Body.TokensRequested, TTL: time.Duration(in.Body.TTLSeconds) * time.Second}
	if in.Body.EstimatedCost != nil {
		req.Cost = *in.Body.EstimatedCost
	}
	r, err := s.meter.Reserve(ctx, req)
	if err != nil {
		return nil, s.problem(ctx, withCallProvider(err, req.Provider))
	}
	return ok(reservationJSON(r)), nil
}

// withCallProvider makes a limit refusal name the provider of the refused
// call even when the limit that refused is not a provider's own (total
// calls, monthly cost): ALwrity's clients read "provider" from every 429
// as the provider they were about to call.
func withCallProvider(err error, provider string) error {
	var e *billing.Error
	if !errors.As(err, &e) || e.Limit == nil || e.Limit.Provider != "" || provider == "" {
		return err
	}
	l := *e.Limit
	l.Provider = provider
	c := *e
	c.Limit = &l
	return &c
}

type ReservationPath struct {
	ReservationID string `path:"reservation_id" maxLength:"64"`
}

// authorizeReservation returns the reservation when the caller may act on
// it.
func (s *Server) authorizeReservation(ctx context.Context, id string) (billing.Reservation, error) {
	p, err := s.auth.Principal(ctx)
	if err != nil {
		return billing.Reservation{}, err
	}
	r, err := s.meter.GetReservation(ctx, id)
	if err != nil {
		return r, err
	}
	if !p.CanAccess(r.UserID) {
		return r, billing.Errorf(billing.CodeForbidden, "reservation %s belongs to another user", id)
	}
	return r, nil
}

// settleSchema is the schema of a settle body: an event whose every field
// is optional, because the reservation supplies the user, provider and
// model.
func (s *Server) settleSchema() *huma.Schema {
	reg := s.api.OpenAPI().Components.Schemas
	event := reg.Schema(reflect.TypeFor[EventJSON](), false, "UsageEvent")
	if event.Ref != "" {
		event = reg.SchemaFromRef(event.Ref)
	}
	settle := *event
	settle.Required = nil
	settle.Description = "A usage event; every field is optional, the reservation supplies user, provider and model."
	return &settle
}

type settleInput struct {
	ReservationPath
	RawBody []byte `contentType:"application/json"`
}

func (s *Server) settle(ctx context.Context, in *settleInput) (*struct{ Body Envelope[EventResultJSON] }, error) {
	body := bytes.TrimSpace(in.RawBody)
	if len(body) == 0 || body[0] != '{' {
		return nil, s.problem(ctx, billing.InvalidField("body", "must be a JSON object: the call's usage event", nil))
	}
	var event EventJSON
	if err := strictDecode(body, "body", &event); err != nil {
		return nil, s.problem(ctx, err)
	}
	ev := event.toEvent(s.now())
	if _, err := s.authorizeReservation(ctx, in.ReservationID); err != nil {
		// A reservation the service does not know (lost in a restart)
		// still settles an event that names its user, for a key that may
		// record that user's usage: the meter records the call.
		if billing.ErrorCode(err) != billing.CodeNotFound || ev.UserID == "" {
			return nil, s.problem(ctx, err)
		}
		if _, err := s.auth.Authorize(ctx, ev.UserID); err != nil {
			return nil, s.problem(ctx, err)
		}
	}
	res, err := s.meter.Settle(ctx, in.ReservationID, ev)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	return ok(resultJSON(res)), nil
}

func (s *Server) release(ctx context.Context, in *ReservationPath) (*struct{ Body Envelope[ReservationJSON] }, error) {
	if _, err := s.authorizeReservation(ctx, in.ReservationID); err != nil {
		return nil, s.problem(ctx, err)
	}
	r, err := s.meter.Release(ctx, in.ReservationID)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	return ok(reservationJSON(r)), nil
}

func mintID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
