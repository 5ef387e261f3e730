// Package metering is the heart of alwrity-billing: it records usage
// events in the ledger, rates them with the price version in effect at each
// event's time, admits or refuses calls against the user's plan limits with
// reservations, and raises the alerts that usage calls for.
package metering

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// Meter records, rates and admits usage.
type Meter struct {
	db     *store.DB
	now    func() time.Time
	logger *slog.Logger
	// ReservationTTL is how long an unsettled reservation holds its units.
	ReservationTTL time.Duration
	// Health decides when provider failures raise system_health alerts.
	Health HealthPolicy

	// CommitParallelism bounds concurrent group commits on PostgreSQL.
	CommitParallelism int
	// CommitLinger is how long a group commit waits for more batches when
	// fewer than half as many wait as the previous group took (default
	// DefaultCommitLinger; 0 never waits). Under load it makes groups
	// larger, so each event costs fewer page writes; a lone batch never
	// waits.
	CommitLinger time.Duration
	// UnhurriedDelay is how long the batch of an Unhurried caller may wait
	// for more to share its transaction (default DefaultUnhurriedDelay; 0
	// commits them like any other).
	UnhurriedDelay time.Duration

	cache     lookups
	committer committer

	// raised records the system_health alerts of raisedHour that exist.
	healthMu   sync.Mutex
	raised     map[string]bool
	raisedHour string
	// healthCounted is when each provider's recent calls were last
	// counted, so that a provider failing now and then under load is
	// counted at most once per healthRecount, not after every failed call.
	healthCounted map[string]time.Time

	// mem is the in-memory admission state on SQLite (nil on PostgreSQL);
	// commitMu orders its reads of the summaries against commits.
	mem      *memAdmission
	commitMu sync.Mutex
	// made are the reservations this process holds on PostgreSQL.
	made madeHere
	// reserver queues concurrent reservations into groups (PostgreSQL).
	reserver reserver
	// Leases lets in-process reservations on PostgreSQL be admitted from
	// leases (see lease.go); New turns it on.
	Leases bool
	leases leaseBook

	// pricing is the current catalog snapshot, pricedAt when its version was last
	// checked (real clock); mu serialises reloads.
	mu       sync.Mutex
	pricing  atomic.Pointer[pricer]
	pricedAt atomic.Int64

	metrics atomic.Pointer[commitMetrics]
}

// DefaultCommitLinger is Meter.CommitLinger's default.
const DefaultCommitLinger = 100 * time.Microsecond

// New returns a Meter over db with clock now.
func New(db *store.DB, now func() time.Time, logger *slog.Logger) *Meter {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Meter{db: db, now: now, logger: logger, ReservationTTL: 10 * time.Minute, CommitLinger: DefaultCommitLinger,
		UnhurriedDelay: DefaultUnhurriedDelay, Leases: true}
	if db.Dialect() == store.SQLite {
		m.mem = newMemAdmission(DefaultJournalDelay)
	}
	return m
}

// SetJournalDelay sets how long a hold lives in memory only before it is
// journaled (SQLite); call it before the meter is used.
func (m *Meter) SetJournalDelay(d time.Duration) {
	if m.mem != nil {
		m.mem.journalDelay = d
	}
}

// Now returns the meter's clock reading.
func (m *Meter) Now() time.Time { return m.now() }

// prices returns the catalog, reloading it when its version changed.
func (m *Meter) prices(ctx context.Context) (*pricer, error) {
	v, err := m.db.CatalogVersion(ctx)
	if err != nil {
		return nil, err
	}
	if p := m.pricing.Load(); p != nil && p.catalog.Version == v {
		m.pricedAt.Store(time.Now().UnixNano())
		return p, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.pricing.Load(); p != nil && p.catalog.Version == v {
		return p, nil
	}
	c, err := m.db.LoadCatalog(ctx)
	if err != nil {
		return nil, err
	}
	p := newPricer(c)
	m.pricing.Store(p)
	m.pricedAt.Store(time.Now().UnixNano())
	return p, nil
}

// ratingPrices returns the catalog to rate events with: the cached one,
// which each commit checks is still current (store.AlertContext.RatedWith:
// one read per group transaction, not one per batch), so every replica's
// prices stay exact.
func (m *Meter) ratingPrices(ctx context.Context) (*pricer, error) {
	if p := m.pricing.Load(); p != nil {
		return p, nil
	}
	return m.prices(ctx)
}

// pricesConfirmed notes that the commit of items rated with catalog
// version v succeeded: v was current then.
func (m *Meter) pricesConfirmed(v int64) {
	if p := m.pricing.Load(); p != nil && p.catalog.Version == v {
		m.pricedAt.Store(time.Now().UnixNano())
	}
}

// maxRatings bounds how often a batch is rated again because prices
// changed before it committed.
const maxRatings = 5

// retryRating reports whether err asks for the batch to be rated again
// (after attempt ratings) and, if so, reloads the prices.
func (m *Meter) retryRating(ctx context.Context, err error, attempt int) (bool, error) {
	if !errors.Is(err, store.ErrStaleCatalog) || attempt >= maxRatings {
		return false, err
	}
	if _, err := m.prices(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// estimatePrices returns the catalog for estimates, which need not be
// exact: one checked within the last second is used as it is.
func (m *Meter) estimatePrices(ctx context.Context) (*pricer, error) {
	if p := m.pricing.Load(); p != nil && time.Since(time.Unix(0, m.pricedAt.Load())) < time.Second {
		return p, nil
	}
	return m.prices(ctx)
}

// pricer resolves prices from one catalog snapshot.
type pricer struct {
	catalog store.Catalog
	// versions of each model, oldest first; models of each provider.
	versions map[modelKey][]billing.Price
	models   map[string][]modelKey
}

type modelKey struct{ provider, model string }

func newPricer(c store.Catalog) *pricer {
	p := &pricer{catalog: c, versions: map[modelKey][]billing.Price{}, models: map[string][]modelKey{}}
	for _, pr := range c.Prices {
		k := modelKey{pr.Provider, pr.ModelName}
		if p.versions[k] == nil {
			p.models[pr.Provider] = append(p.models[pr.Provider], k)
		}
		p.versions[k] = append(p.versions[k], pr)
	}
	return p
}

// versionAt returns the version of model k in effect at t: the last one
// (they are oldest first) whose validity holds t.
func (p *pricer) versionAt(k modelKey, t time.Time) (billing.Price, bool) {
	versions := p.versions[k]
	for i := len(versions) - 1; i >= 0; i-- {
		v := versions[i]
		if !v.EffectiveFrom.After(t) && (v.EffectiveTo == nil || v.EffectiveTo.After(t)) {
			return v, true
		}
	}
	return billing.Price{}, false
}

// resolve returns the price of a provider's model in effect at t, by
// billing.ResolvePrice's rules, walking the provider's models in place
// instead of listing the versions in effect first (a model resolved by
// prefix, e.g. a dated snapshot name, was 6 % of the gateway's
// allocations): exact name, alias, longest prefix, the provider's default.
// A call naming no model takes ResolvePrice itself, for its
// one-price-only rule. TestPricerResolvesAsResolvePrice holds the two
// equal.
func (p *pricer) resolve(provider, model string, t time.Time) (billing.Price, bool) {
	if v, ok := p.versionAt(modelKey{provider, model}, t); ok {
		return v, true
	}
	if model == "" {
		var in []billing.Price
		for _, k := range p.models[provider] {
			if v, ok := p.versionAt(k, t); ok {
				in = append(in, v)
			}
		}
		return billing.ResolvePrice(in, p.catalog.Aliases[provider], provider, model)
	}
	if target, ok := p.catalog.Aliases[provider][model]; ok {
		if v, ok := p.versionAt(modelKey{provider, target}, t); ok {
			return v, true
		}
	}
	var best billing.Price
	bestLen := -1
	for _, k := range p.models[provider] {
		if k.model == billing.DefaultModel || len(k.model) <= bestLen || !strings.HasPrefix(model, k.model) {
			continue
		}
		if v, ok := p.versionAt(k, t); ok {
			best, bestLen = v, len(k.model)
		}
	}
	if bestLen >= 0 {
		return best, true
	}
	return p.versionAt(modelKey{provider, billing.DefaultModel}, t)
}

// rate prices one event with the version in effect at its timestamp.
func (p *pricer) rate(e billing.UsageEvent) (billing.Charge, bool, error) {
	price, ok := p.resolve(e.Provider, e.Model, e.Timestamp)
	if !ok {
		// Unpriced: recorded and flagged, never silently priced at zero.
		return billing.Charge{}, false, e.Quantities.Validate()
	}
	c, err := billing.Rate(price, e.Quantities)
	return c, true, err
}

// account is a user's plan and period schedule.
type account struct {
	plan     billing.Plan
	schedule billing.Schedule
}

// readAccount reads a user's plan: the current subscription's, else the
// default free plan on calendar months.
func (m *Meter) readAccount(ctx context.Context, userID string) (account, error) {
	sub, err := m.db.CurrentSubscription(ctx, userID)
	if err != nil {
		return account{}, err
	}
	if sub == nil {
		plan, err := m.db.DefaultPlan(ctx)
		return account{plan: plan, schedule: billing.CalendarMonths()}, err
	}
	plan, err := m.db.GetPlan(ctx, sub.PlanID)
	return account{plan: plan, schedule: sub.Schedule()}, err
}

// Record validates, rates and records a batch of events in one
// transaction: a bad event refuses the whole batch (with every problem
// named) and stores nothing. A resent event returns its first result, also
// when it would not pass validation now (it has grown too old, its
// provider was removed, its user's last key deleted). An event whose id
// another user's event holds is a bad event: the id is named, nothing of
// that event. Errors: invalid, too_large.
func (m *Meter) Record(ctx context.Context, events []billing.UsageEvent) ([]billing.EventResult, error) {
	now := m.now()
	if len(events) == 0 {
		return nil, billing.InvalidField("body.events", "must hold at least one event", 0)
	}
	if len(events) > billing.MaxBatchEvents {
		return nil, &billing.Error{Code: billing.CodeInvalid,
			Message: fmt.Sprintf("a batch holds at most %d events, got %d", billing.MaxBatchEvents, len(events)),
			Fields:  []billing.FieldError{{Location: "body.events", Message: "too many events", Value: len(events)}}}
	}
	var b batch
	var results []billing.EventResult
	for attempt := 1; ; attempt++ {
		var err error
		if b, err = m.prepare(ctx, events, now); err != nil {
			return nil, err
		}
		if len(b.items) == 0 {
			break // every event is a resend answered from the ledger
		}
		results, err = m.commit(ctx, b)
		var taken *store.EventIDsTaken
		if retry, err := m.retryRating(ctx, err, attempt); retry {
			continue
		} else if errors.As(err, &taken) {
			return nil, refuseBatch(takenIDs(events, taken.IDs))
		} else if err != nil {
			return nil, fmt.Errorf("record %d events: %w", len(b.items), err)
		}
		break
	}
	out := make([]billing.EventResult, len(events))
	for i := range events {
		if r, ok := b.answered[i]; ok {
			out[i] = r
			continue
		}
		out[i] = results[b.itemOf[i]]
		if b.repeat[i] {
			// A repeat inside the batch answers like a resend.
			out[i].Status = billing.EventDuplicate
		}
	}
	return out, nil
}

// batch is a validated, rated batch ready for the ledger.
type batch struct {
	items   []store.IngestItem
	alerts  store.AlertContext
	settles []*hold // holds in memory the items settle (SQLite)
	itemOf  []int   // event index → item index (repeats share their first's item)
	repeat  []bool  // event index → an exact repeat of an earlier event
	// answered are the resends that validation refused, by event index:
	// their first results, read from the ledger; they have no item.
	answered map[int]billing.EventResult
}

// takenIDs names the events whose ids are among taken (held by another
// user's events) as bad fields.
func takenIDs(events []billing.UsageEvent, taken []string) []billing.FieldError {
	var fields []billing.FieldError
	for i, e := range events {
		if slices.Contains(taken, e.EventID) {
			fields = append(fields, billing.FieldError{Location: fmt.Sprintf("body.events[%d].event_id", i),
				Message: "already used by another event", Value: e.EventID})
		}
	}
	return fields
}

// prepare validates and rates events; an exact repeat of an earlier event
// of the batch is stored once. The events that validation refuses are
// looked up in the ledger: when each of them is a resend (its id is
// recorded for its user), they are answered with their first results
// (batch.answered) and the others go on; otherwise the batch is refused,
// every problem named.
func (m *Meter) prepare(ctx context.Context, events []billing.UsageEvent, now time.Time) (batch, error) {
	var fields []billing.FieldError
	// refused marks the events with a problem; contradicts those that
	// repeat an earlier event's id with other contents, which no ledger
	// entry answers.
	var refused, contradicts map[int]bool
	refuse := func(i int, fs ...billing.FieldError) {
		if len(fs) == 0 {
			return
		}
		if refused == nil {
			refused = map[int]bool{}
		}
		refused[i] = true
		fields = append(fields, fs...)
	}
	var first map[string]int // event id → its first event; a batch of one needs none
	if len(events) > 1 {
		first = make(map[string]int, len(events))
	}
	b := batch{itemOf: make([]int, len(events)), repeat: make([]bool, len(events))}
	providers, err := m.providers(ctx)
	if err != nil {
		return batch{}, err
	}
	known := func(name string) bool {
		for _, p := range providers {
			if p.Name == name {
				return true
			}
		}
		return false
	}
	users := map[string]bool{}
	for i, e := range events {
		// Field locations are written only for events with a problem:
		// the settle of every gateway call comes this way.
		prefix := func() string { return "body.events[" + strconv.Itoa(i) + "]" }
		fs := e.Validate("", now)
		for k := range fs {
			fs[k].Location = prefix() + fs[k].Location
		}
		if e.Provider != "" && !known(e.Provider) {
			fs = append(fs, billing.FieldError{Location: prefix() + ".provider", Message: "unknown provider", Value: e.Provider})
		}
		if j, seen := first[e.EventID]; seen && e.EventID != "" {
			if !e.SameContent(events[j]) {
				fs = append(fs, billing.FieldError{Location: prefix() + ".event_id",
					Message: fmt.Sprintf("repeats the id of event %d with different contents", j), Value: e.EventID})
				if contradicts == nil {
					contradicts = map[int]bool{}
				}
				contradicts[i] = true
			} else {
				b.repeat[i] = true
			}
		} else if first != nil {
			first[e.EventID] = i
		}
		if e.ReservationID != "" && len(fs) == 0 {
			rfs, err := m.checkReservation(ctx, prefix(), e)
			if err != nil {
				return batch{}, err
			}
			fs = append(fs, rfs...)
		}
		refuse(i, fs...)
		if e.UserID != "" {
			users[e.UserID] = true
		}
	}
	accounts := map[string]account{}
	for u := range users {
		ok, err := m.userKnown(ctx, u)
		if err != nil {
			return batch{}, err
		}
		if !ok {
			for i, e := range events {
				if e.UserID == u {
					refuse(i, billing.FieldError{Location: fmt.Sprintf("body.events[%d].user_id", i),
						Message: "unknown user (a user needs an API key or a subscription)", Value: u})
				}
			}
			continue
		}
		if accounts[u], err = m.account(ctx, u); err != nil {
			return batch{}, err
		}
	}
	if len(fields) > 0 {
		if b.answered, err = m.answerResends(ctx, events, refused, contradicts); err != nil {
			return batch{}, err
		}
		if b.answered == nil {
			return batch{}, refuseBatch(fields)
		}
	}
	pr, err := m.ratingPrices(ctx)
	if err != nil {
		return batch{}, err
	}
	b.alerts = store.AlertContext{Plans: map[string]billing.Plan{}, Anchors: map[string]time.Time{}, Providers: providers,
		RatedWith: pr.catalog.Version}
	var unpriced map[string]bool // provider/model of the unpriced events, one alert each
	for i, e := range events {
		if _, ok := b.answered[i]; ok {
			b.itemOf[i] = -1
			continue
		}
		if b.repeat[i] {
			b.itemOf[i] = b.itemOf[first[e.EventID]]
			continue
		}
		b.itemOf[i] = len(b.items)
		acct := accounts[e.UserID]
		charge, priced, err := pr.rate(e)
		if err != nil {
			if m.mem != nil {
				m.mem.unclaim(b.settles)
			}
			return batch{}, refuseBatch(prefixed(err, fmt.Sprintf("body.events[%d]", i)))
		}
		p := acct.schedule.At(e.Timestamp)
		rid := e.ReservationID
		if rid != "" && m.mem != nil {
			h, journaled, err := m.mem.claim(rid, e.EventID)
			if err != nil {
				m.mem.unclaim(b.settles)
				return batch{}, refuseBatch([]billing.FieldError{{Location: fmt.Sprintf("body.events[%d].reservation_id", i),
					Message: billing.ErrorMessage(err), Value: rid}})
			}
			if h != nil {
				b.settles = append(b.settles, h)
				if !journaled {
					rid = "" // its hold never reached the database
				}
			}
		}
		b.items = append(b.items, store.IngestItem{Log: e.Log(p, charge, !priced), PeriodEnd: p.End, ReservationID: rid})
		b.alerts.Plans[e.UserID] = acct.plan
		b.alerts.Anchors[e.UserID] = acct.schedule.Anchor
		if !priced && !unpriced[e.Provider+"/"+e.Model] {
			if unpriced == nil {
				unpriced = map[string]bool{}
			}
			unpriced[e.Provider+"/"+e.Model] = true
			b.alerts.Extra = append(b.alerts.Extra, billing.UnpricedAlert(e.Provider, e.Model))
		}
	}
	return b, nil
}

// answerResends returns the first results of the refused events when
// every one of them is a resend: its id is recorded for its user in the
// ledger, so it was valid when first sent, and a resend returns the first
// result and changes nothing, however long ago (within retention) that
// was. It returns nil when any refused event is not such a resend (an
// event that contradicts another of the batch never is): the batch is
// then refused as validation found it. Only the refused events' own
// user's events are read, so another user's event with the same id
// answers nothing.
func (m *Meter) answerResends(ctx context.Context, events []billing.UsageEvent, refused, contradicts map[int]bool) (map[int]billing.EventResult, error) {
	ask := make(map[string]string, len(refused))
	for i := range refused {
		e := events[i]
		if contradicts[i] || e.EventID == "" || e.UserID == "" {
			return nil, nil
		}
		if u, ok := ask[e.EventID]; ok && u != e.UserID {
			return nil, nil
		}
		ask[e.EventID] = e.UserID
	}
	recorded, err := m.db.RecordedEvents(ctx, ask)
	if err != nil {
		return nil, err
	}
	answered := make(map[int]billing.EventResult, len(refused))
	for i := range refused {
		r, ok := recorded[events[i].EventID]
		if !ok {
			return nil, nil
		}
		answered[i] = r
	}
	return answered, nil
}

// checkReservation checks that the reservation an event settles is for the
// event's user and provider. An unknown reservation is no error: the
// event's usage is recorded and nothing is released (on SQLite a hold
// younger than the journal delay does not survive a crash, and the call's
// usage must still count).
func (m *Meter) checkReservation(ctx context.Context, prefix string, e billing.UsageEvent) ([]billing.FieldError, error) {
	var r billing.Reservation
	found := false
	if m.mem != nil {
		if _, err := m.memory(ctx); err != nil {
			return nil, err
		}
		r, found = m.mem.get(e.ReservationID)
	}
	if !found {
		var err error
		r, err = m.db.GetReservation(ctx, e.ReservationID)
		switch {
		case billing.ErrorCode(err) == billing.CodeNotFound:
			m.logger.Info("usage names an unknown reservation; recorded, nothing released", "reservation_id", e.ReservationID, "event_id", e.EventID)
			return nil, nil
		case err != nil:
			return nil, err
		}
	}
	if r.UserID != e.UserID || r.Provider != e.Provider {
		return []billing.FieldError{{Location: prefix + ".reservation_id",
			Message: fmt.Sprintf("the reservation is for user %q / provider %q", r.UserID, r.Provider), Value: e.ReservationID}}, nil
	}
	return nil, nil
}

func refuseBatch(fields []billing.FieldError) error {
	sort.SliceStable(fields, func(i, j int) bool { return fields[i].Location < fields[j].Location })
	msgs := make([]string, 0, min(len(fields), 5))
	for _, f := range fields[:min(len(fields), 5)] {
		msgs = append(msgs, f.Location+": "+f.Message)
	}
	more := ""
	if len(fields) > 5 {
		more = fmt.Sprintf(" (and %d more)", len(fields)-5)
	}
	return &billing.Error{Code: billing.CodeInvalid,
		Message: "the batch was refused and nothing was stored: " + strings.Join(msgs, "; ") + more, Fields: fields}
}

// prefixed returns the field errors of err with their locations under
// prefix.
func prefixed(err error, prefix string) []billing.FieldError {
	be, ok := err.(*billing.Error)
	if !ok || len(be.Fields) == 0 {
		return []billing.FieldError{{Location: prefix, Message: billing.ErrorMessage(err)}}
	}
	out := make([]billing.FieldError, len(be.Fields))
	for i, f := range be.Fields {
		f.Location = prefix + "." + f.Location
		out[i] = f
	}
	return out
}

// The least a reservation holds: a call to a provider uses at least a token
// and costs at least something, so a token or cost limit that is exactly
// reached refuses the next call even when its request names no tokens.
const (
	MinHeldTokens int64        = 1
	MinHeldCost   money.Amount = money.Pico
)

// Reserve admits a call: it holds one call, the tokens and the estimated
// cost (at least MinHeldTokens and MinHeldCost) against every applicable
// limit, atomically. Errors: invalid, limit_exceeded.
func (m *Meter) Reserve(ctx context.Context, req billing.ReserveRequest) (billing.Reservation, error) {
	now := m.now()
	var fields []billing.FieldError
	if msg := billing.IdentProblem(req.UserID, true); msg != "" {
		fields = append(fields, billing.FieldError{Location: "body.user_id", Message: msg, Value: req.UserID})
	}
	if msg := billing.IdentProblem(req.Model, false); msg != "" {
		fields = append(fields, billing.FieldError{Location: "body.model", Message: msg, Value: req.Model})
	}
	if req.Tokens < 0 || req.Tokens > billing.MaxTokensPerEvent {
		fields = append(fields, billing.FieldError{Location: "body.tokens", Message: fmt.Sprintf("must be between 0 and %d", billing.MaxTokensPerEvent), Value: req.Tokens})
	}
	if req.Cost < 0 {
		fields = append(fields, billing.FieldError{Location: "body.estimated_cost", Message: "must not be negative", Value: req.Cost})
	}
	if req.TTL < 0 || req.TTL > 24*time.Hour {
		fields = append(fields, billing.FieldError{Location: "body.ttl_seconds", Message: "must be between 1 and 86400", Value: req.TTL.Seconds()})
	}
	if err := m.checkProvider(ctx, req.Provider); err != nil {
		fields = append(fields, billing.FieldError{Location: "body.provider", Message: billing.ErrorMessage(err), Value: req.Provider})
	}
	if len(fields) > 0 {
		return billing.Reservation{}, &billing.Error{Code: billing.CodeInvalid, Message: "invalid reservation: " + fields[0].Location + ": " + fields[0].Message, Fields: fields}
	}
	known, err := m.userKnown(ctx, req.UserID)
	if err != nil {
		return billing.Reservation{}, err
	}
	if !known {
		return billing.Reservation{}, billing.InvalidField("body.user_id", "unknown user (a user needs an API key or a subscription)", req.UserID)
	}
	acct, err := m.account(ctx, req.UserID)
	if err != nil {
		return billing.Reservation{}, err
	}
	if req.Cost == 0 && req.Tokens > 0 {
		if req.Cost, err = m.estimate(ctx, req.Provider, req.Model, req.Tokens, now); err != nil {
			return billing.Reservation{}, err
		}
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = m.ReservationTTL
	}
	// A call holds at least one token and the smallest amount of money:
	// every limit compares used + held + requested with the limit, so a
	// request of nothing would pass a token or cost limit that is already
	// used up, and a call always uses something.
	r := billing.Reservation{
		ID: billing.NewID("rsv_"), UserID: req.UserID, Period: acct.schedule.At(now), Provider: req.Provider, Model: req.Model,
		Calls: 1, Tokens: max(req.Tokens, MinHeldTokens), Cost: max(req.Cost, MinHeldCost),
		Status: billing.ReservationHeld, ExpiresAt: now.Add(ttl), CreatedAt: now,
	}
	lim := billing.LimitsFor(acct.plan, req.Provider)
	a, err := m.memory(ctx)
	if err != nil {
		return billing.Reservation{}, err
	}
	switch {
	case a != nil:
		err = m.reserveMem(ctx, a, r, lim)
	case req.InProcess && m.Leases:
		err = m.reserveLeased(ctx, r, lim, now)
	default:
		if err = m.reserveGrouped(ctx, r, lim, now); err == nil {
			m.made.add(r)
		}
	}
	if err != nil {
		return billing.Reservation{}, err
	}
	return r, nil
}

// estimate prices tokens at the higher of the model's input and output
// prices, an upper bound for admission.
func (m *Meter) estimate(ctx context.Context, provider, model string, tokens int64, now time.Time) (money.Amount, error) {
	pr, err := m.estimatePrices(ctx)
	if err != nil {
		return 0, err
	}
	p, ok := pr.resolve(provider, model, now)
	if !ok {
		return 0, nil
	}
	unit := max(p.Tier.Input, p.Tier.Output)
	if p.LongContext != nil {
		unit = max(unit, p.LongContext.Input, p.LongContext.Output)
	}
	c, err := unit.MulInt(tokens)
	if err != nil {
		return 0, billing.Errorf(billing.CodeInvalid, "estimated cost out of range")
	}
	return money.Sum(c, p.PerRequest)
}

func (m *Meter) checkProvider(ctx context.Context, name string) error {
	providers, err := m.providers(ctx)
	if err != nil {
		return err
	}
	for _, p := range providers {
		if p.Name == name {
			return nil
		}
	}
	return billing.Errorf(billing.CodeInvalid, "unknown provider %q", name)
}

// Settle records the real usage of a reservation and releases what it
// held. The event's user and provider must be the reservation's. Errors:
// invalid, not_found, conflict.
func (m *Meter) Settle(ctx context.Context, id string, e billing.UsageEvent) (billing.EventResult, error) {
	for attempt := 1; ; attempt++ {
		res, err := m.settle(ctx, id, e)
		if retry, err := m.retryRating(ctx, err, attempt); !retry {
			return res, err
		}
	}
}

func (m *Meter) settle(ctx context.Context, id string, e billing.UsageEvent) (billing.EventResult, error) {
	a, err := m.memory(ctx)
	if err != nil {
		return billing.EventResult{}, err
	}
	var r billing.Reservation
	var leased *leasedCall
	known := false
	if a != nil {
		r, known = a.lookup(id)
	} else if leased, known = m.leases.takeLeased(id); known {
		r = leased.r
	} else {
		r, known = m.made.take(id)
	}
	if !known {
		if r, err = m.db.GetReservation(ctx, id); err != nil {
			if billing.ErrorCode(err) == billing.CodeNotFound {
				return m.settleUnknown(ctx, id, e)
			}
			return billing.EventResult{}, err
		}
	}
	if e.UserID == "" {
		e.UserID = r.UserID
	}
	if e.Provider == "" {
		e.Provider = r.Provider
	}
	if e.Model == "" {
		e.Model = r.Model
	}
	if e.EventID == "" {
		e.EventID = id // settling twice is then idempotent by construction
	}
	e.ReservationID = "" // settled below
	if leased != nil {
		return m.settleLeased(ctx, leased, e)
	}
	if err := usageOf(e, r); err != nil {
		return billing.EventResult{}, err
	}
	b, err := m.prepare(ctx, []billing.UsageEvent{e}, m.now())
	if err != nil {
		return billing.EventResult{}, err
	}
	if r, ok := b.answered[0]; ok {
		return r, nil // a resend
	}
	if a == nil {
		if r.Status != billing.ReservationHeld {
			// Settled, released or expired already: the late-settle rules.
			return m.settleLate(ctx, id, b)
		}
		// Held: through the group committer, like recorded batches, so
		// that concurrent settles share a commit. Should another event
		// settle it first, this one is refused, as by the late-settle rules.
		b.items[0].ReservationID, b.items[0].Exclusive = id, true
		results, err := m.commit(ctx, b)
		if err != nil {
			return billing.EventResult{}, err
		}
		if results[0].Status == billing.EventConflict {
			return billing.EventResult{}, settleConflict(id, e.EventID)
		}
		return results[0], nil
	}
	h, journaled, err := a.claim(id, e.EventID)
	if err != nil {
		return billing.EventResult{}, err
	}
	if _, held := a.get(id); h == nil && !held {
		recent, err := a.claimRecent(id, e.EventID)
		if err != nil {
			return billing.EventResult{}, err
		}
		if !recent {
			// Finished in the journal: the database decides (a late settle
			// still records the call; another event conflicts).
			return m.settleStored(ctx, id, b)
		}
	}
	if h != nil {
		b.settles = []*hold{h}
		b.items[0].Exclusive = true
		if journaled {
			b.items[0].ReservationID = id
		}
	}
	results, err := m.commit(ctx, b)
	if err != nil {
		return billing.EventResult{}, err
	}
	if results[0].Status == billing.EventConflict {
		return billing.EventResult{}, settleConflict(id, e.EventID)
	}
	return results[0], nil
}

// settleUnknown settles a reservation the service does not know: one made
// on SQLite less than a second before a crash (holds are journaled a
// second after they are made) or purged after its retention. Its call
// happened, so an event that names its user and provider is recorded, as
// POST /usage records an event naming an unknown reservation; without
// them there is nothing to record it for, and the answer says what to send.
func (m *Meter) settleUnknown(ctx context.Context, id string, e billing.UsageEvent) (billing.EventResult, error) {
	if e.UserID == "" || e.Provider == "" {
		return billing.EventResult{}, billing.Errorf(billing.CodeNotFound,
			"reservation %s not found (it may have been lost in a restart): to record its call, "+
				"settle it with the event's user_id and provider", id)
	}
	if e.EventID == "" {
		e.EventID = id
	}
	e.ReservationID = id
	res, err := m.Record(ctx, []billing.UsageEvent{e})
	if err != nil {
		return billing.EventResult{}, err
	}
	return res[0], nil
}

// settleConflict is the error of a settle the ledger refused: the
// reservation was settled by another event, or the event is already
// recorded (for another reservation, or without one).
func settleConflict(id, eventID string) error {
	return billing.Errorf(billing.CodeConflict,
		"reservation %s was not settled by event %s: another event settled it, or %s is already recorded "+
			"(settle a call with an event id of its own)", id, eventID, eventID)
}

// usageOf refuses usage e as the settle of reservation r unless it names
// r's user and provider.
func usageOf(e billing.UsageEvent, r billing.Reservation) error {
	if e.UserID != r.UserID || e.Provider != r.Provider {
		return billing.Errorf(billing.CodeInvalid, "the usage names user %q / provider %q but reservation %s is for %q / %q",
			e.UserID, e.Provider, r.ID, r.UserID, r.Provider)
	}
	return nil
}

// settleLeased records the usage of a call admitted from a lease; its
// units are given back to the database a moment later (see lease.go).
// After a settle that fails the call is still in flight (to be settled
// again or released); one whose event was recorded before gives its units
// back to the lease.
func (m *Meter) settleLeased(ctx context.Context, c *leasedCall, e billing.UsageEvent) (res billing.EventResult, err error) {
	// Every settle that succeeds spends the call's units, a duplicate too:
	// the retry of a settle whose commit landed after its caller gave up
	// answers "duplicate", and the call is in the ledger all the same.
	// Handed back to the lease instead, its unit would admit a call the
	// limit has no room for. Spent units go back to the database, where
	// the ledger says what is used.
	defer func() { m.settledLeased(c, err == nil, err != nil) }()
	if err := usageOf(e, c.r); err != nil {
		return res, err
	}
	b, err := m.prepare(ctx, []billing.UsageEvent{e}, m.now())
	if err != nil {
		return res, err
	}
	if r, ok := b.answered[0]; ok {
		return r, nil // a resend
	}
	results, err := m.commit(ctx, b)
	if err != nil {
		return res, err
	}
	return results[0], nil
}

// settleStored settles a reservation that is no longer held in memory
// through the database, under the commit lock, and counts the usage.
func (m *Meter) settleStored(ctx context.Context, id string, b batch) (billing.EventResult, error) {
	m.commitMu.Lock()
	defer m.commitMu.Unlock()
	res, err := m.settleLate(ctx, id, b)
	if err == nil && res.Status == billing.EventRecorded {
		m.mem.mu.Lock()
		m.mem.applyUsage([]billing.UsageLog{b.items[0].Log})
		m.mem.mu.Unlock()
	}
	return res, err
}

// settleLate settles a reservation that is no longer held, in the
// database's own transaction (store.DB.Settle), and checks the provider's
// health after a failed call as commit does.
func (m *Meter) settleLate(ctx context.Context, id string, b batch) (billing.EventResult, error) {
	res, err := m.db.Settle(ctx, id, b.items[0], b.alerts, m.now())
	if err == nil {
		m.checkHealth(ctx, b.items)
	}
	return res, err
}

// GetReservation returns a reservation. Errors: not_found.
func (m *Meter) GetReservation(ctx context.Context, id string) (billing.Reservation, error) {
	a, err := m.memory(ctx)
	if err != nil {
		return billing.Reservation{}, err
	}
	if a != nil {
		if r, ok := a.lookup(id); ok {
			return r, nil
		}
	}
	return m.db.GetReservation(ctx, id)
}

// Release gives back a reservation's units without recording usage.
// Releasing one that is no longer held changes nothing. Errors: not_found.
func (m *Meter) Release(ctx context.Context, id string) (billing.Reservation, error) {
	a, err := m.memory(ctx)
	if err != nil {
		return billing.Reservation{}, err
	}
	if a != nil {
		if r, ok := a.get(id); ok {
			done, journaled := a.finishHeld(billing.ReservationReleased, func(h *hold) bool { return h.r.ID == id })
			if len(done) == 0 {
				return r, nil // being settled
			}
			if len(journaled) > 0 {
				m.commitMu.Lock()
				_, err := m.db.FinishReservations(ctx, journaled, billing.ReservationReleased, m.now())
				m.commitMu.Unlock()
				if err != nil {
					return billing.Reservation{}, err
				}
			}
			r.Status = billing.ReservationReleased
			return r, nil
		}
		if r, ok := a.lookup(id); ok {
			return r, nil // finished already
		}
	}
	if r, ok := m.releaseLeased(id); ok {
		return r, nil
	}
	m.made.take(id)
	return m.db.Release(ctx, id, m.now())
}

// Sweep releases reservations whose expiry has passed.
func (m *Meter) Sweep(ctx context.Context) (int, error) {
	a, err := m.memory(ctx)
	if err != nil {
		return 0, err
	}
	if a != nil {
		now := m.now()
		done, journaled := a.finishHeld(billing.ReservationExpired, func(h *hold) bool { return !h.r.ExpiresAt.After(now) })
		a.evict(time.Now().Add(-entryIdle))
		if _, err := m.audit(ctx, a); err != nil {
			return 0, err
		}
		if len(journaled) > 0 {
			m.commitMu.Lock()
			_, err := m.db.FinishReservations(ctx, journaled, billing.ReservationExpired, now)
			m.commitMu.Unlock()
			if err != nil {
				return 0, err
			}
		}
		return len(done), nil
	}
	m.made.prune(m.now())
	total := 0
	for {
		n, err := m.db.ExpireReservations(ctx, m.now(), 500)
		total += n
		if err != nil || n < 500 {
			return total, err
		}
	}
}

// RunSweeper sweeps every interval until ctx ends.
func (m *Meter) RunSweeper(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := m.Sweep(ctx); err != nil {
				if ctx.Err() == nil {
					m.logger.Warn("reservation sweep failed", "error", err)
				}
			} else if n > 0 {
				m.logger.Info("expired reservations released", "count", n)
			}
		}
	}
}
