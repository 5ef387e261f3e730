package metering

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// Admission in memory.
//
// On PostgreSQL several server processes share the database, so a
// reservation is one statement there (store.Reserve: under a per-user
// advisory lock, the settled usage plus the held reservations' units are
// compared with the limits and the reservation inserted if they leave
// room).
// On SQLite one server process owns the database file (app.Open takes a
// lock on it), so that process's memory can hold the authoritative
// counters: a reservation is then a check-and-add under a mutex, with no
// transaction, and the database learns of it afterwards:
//
//   - settled usage is written by the group committer, which adds it to the
//     counters in memory only after the commit, under the same lock that
//     releases the settled hold — so used + held never drops below the truth;
//   - a reservation still held JournalDelay after it was made is written to
//     the reservations table (the journal), in the committer's next
//     transaction; most calls
//     settle before that and never touch the disk for their hold;
//   - at start the held rows of the journal are read back into memory, and
//     a user's settled counters are read from the summaries the first time
//     the user is admitted in a period.
//
// A crash loses only the holds younger than JournalDelay: those calls'
// units are free again after the restart, and their usage, reported later
// with the lost reservation's id, is still recorded (an unknown
// reservation id releases nothing).

// DefaultJournalDelay is how long a hold lives in memory only.
const DefaultJournalDelay = time.Second

// entryIdle is how long an untouched entry without holds stays in memory.
const entryIdle = 10 * time.Minute

// entryKey names a user's period by its key and start (Unix ns): see
// billing.Period.
type entryKey struct {
	user, period string
	start        int64
}

func entryOf(user string, p billing.Period) entryKey {
	return entryKey{user, p.Key, p.Start.UnixNano()}
}

// units are amounts of one limit dimension set.
type units struct {
	calls  int64
	tokens int64
	cost   int64 // pico-dollars
}

func (u *units) add(o units, sign int64) {
	u.calls += sign * o.calls
	u.tokens += sign * o.tokens
	u.cost += sign * o.cost
}

// entry is one user's counters for one period.
type entry struct {
	period    billing.Period
	used      units // tokens unused: no limit on total tokens
	usedBy    map[string]units
	held      units
	heldBy    map[string]units
	holds     int
	touchedAt time.Time // real clock
}

type holdState int

const (
	holdHeld     holdState = iota
	holdSettling           // a settle is committing
	holdDone               // settled, released or expired
)

// hold is a reservation held in memory.
type hold struct {
	r         billing.Reservation
	madeAt    time.Time // real clock: the journal delay is real time
	state     holdState
	journaled bool   // written (or being written) to the reservations table
	eventID   string // the event settling it
}

func (h *hold) units() units {
	return units{calls: h.r.Calls, tokens: h.r.Tokens, cost: int64(h.r.Cost)}
}

// memAdmission is the in-memory admission state of a SQLite meter.
type memAdmission struct {
	journalDelay time.Duration

	initMu sync.Mutex
	ready  atomic.Bool

	mu      sync.Mutex
	timer   *time.Timer // journal timer, armed while holds are pending
	closed  bool
	entries map[entryKey]*entry
	holds   map[string]*hold
	// recent are finished reservations that never reached the journal,
	// kept a while so that they can still be looked up.
	recent  map[string]finished
	pending []*hold // not journaled yet, oldest first
}

// finished is a reservation that ended in memory, and when (real clock,
// Unix nanoseconds). It keeps what a lookup answers, compactly: tens of
// thousands of them are kept.
type finished struct {
	user, provider, model, period, status, eventID string
	calls, tokens                                  int64
	cost                                           money.Amount
	periodStart, expiresAt, createdAt, at          int64
}

func finishedOf(r billing.Reservation, at time.Time) finished {
	return finished{user: r.UserID, provider: r.Provider, model: r.Model, period: r.Period.Key,
		periodStart: r.Period.Start.UnixNano(), status: r.Status, eventID: r.EventID, calls: r.Calls, tokens: r.Tokens, cost: r.Cost,
		expiresAt: r.ExpiresAt.UnixNano(), createdAt: r.CreatedAt.UnixNano(), at: at.UnixNano()}
}

// reservation is f, finished reservation id, as a lookup answers it (the
// period by its key and start only).
func (f finished) reservation(id string) billing.Reservation {
	return billing.Reservation{ID: id, UserID: f.user, Provider: f.provider, Model: f.model,
		Period: billing.Period{Key: f.period, Start: time.Unix(0, f.periodStart).UTC()}, Calls: f.calls, Tokens: f.tokens, Cost: f.cost, Status: f.status,
		EventID: f.eventID, ExpiresAt: time.Unix(0, f.expiresAt).UTC(), CreatedAt: time.Unix(0, f.createdAt).UTC()}
}

// Finished reservations that never reached the journal are kept for
// recentTTL, up to maxRecent of them, so that a retried settle is answered
// as a duplicate and a lookup finds them.
const (
	recentTTL = 2 * time.Minute
	maxRecent = 20_000
)

func newMemAdmission(delay time.Duration) *memAdmission {
	return &memAdmission{journalDelay: delay, entries: map[entryKey]*entry{}, holds: map[string]*hold{},
		recent: map[string]finished{}}
}

// memory returns the in-memory admission state, reading the journal's held
// reservations the first time; nil on PostgreSQL.
func (m *Meter) memory(ctx context.Context) (*memAdmission, error) {
	a := m.mem
	if a == nil || a.ready.Load() {
		return a, nil
	}
	a.initMu.Lock()
	defer a.initMu.Unlock()
	if a.ready.Load() {
		return a, nil
	}
	held, err := m.db.HeldReservations(ctx)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	for _, r := range held {
		if _, ok := a.holds[r.ID]; !ok {
			a.holds[r.ID] = &hold{r: r, journaled: true}
		}
	}
	a.mu.Unlock()
	a.ready.Store(true)
	return a, nil
}

// entry returns the counters of user in period p, reading the settled ones
// from the summaries when they are not in memory yet. The read happens
// under the commit lock, so that no commit falls between it and the
// entry's first use: every later commit is added to the entry.
func (m *Meter) entry(ctx context.Context, a *memAdmission, user string, p billing.Period) error {
	k := entryOf(user, p)
	a.mu.Lock()
	_, ok := a.entries[k]
	a.mu.Unlock()
	if ok {
		return nil
	}
	m.commitMu.Lock()
	defer m.commitMu.Unlock()
	a.mu.Lock()
	_, ok = a.entries[k]
	a.mu.Unlock()
	if ok {
		return nil
	}
	u, err := m.db.PeriodCounters(ctx, user, p)
	if err != nil {
		return err
	}
	e := &entry{period: p, usedBy: map[string]units{}, heldBy: map[string]units{}, touchedAt: time.Now()}
	e.used = units{calls: u.Total.Calls, cost: int64(u.Total.Cost)}
	for prov, c := range u.ByProvider {
		e.usedBy[prov] = units{calls: c.Calls, tokens: c.Tokens(), cost: int64(c.Cost)}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, h := range a.holds {
		if h.r.UserID == user && entryOf(user, h.r.Period) == k && h.state != holdDone {
			e.hold(h, 1)
		}
	}
	a.entries[k] = e
	return nil
}

// hold adds (sign 1) or removes (-1) a hold's units.
func (e *entry) hold(h *hold, sign int64) {
	u := h.units()
	e.held.add(u, sign)
	pu := e.heldBy[h.r.Provider]
	pu.add(u, sign)
	e.heldBy[h.r.Provider] = pu
	e.holds += int(sign)
}

// reserveMem admits r against lim in memory.
func (m *Meter) reserveMem(ctx context.Context, a *memAdmission, r billing.Reservation, lim billing.Limits) error {
	for {
		a.mu.Lock()
		e, ok := a.entries[entryOf(r.UserID, r.Period)]
		if !ok {
			// Not in memory yet (or evicted just now): read it in.
			a.mu.Unlock()
			if err := m.entry(ctx, a, r.UserID, r.Period); err != nil {
				return err
			}
			continue
		}
		if _, dup := a.holds[r.ID]; dup {
			a.mu.Unlock()
			return billing.Errorf(billing.CodeConflict, "reservation %s already exists", r.ID)
		}
		if l := e.refuses(r, lim); l != nil {
			a.mu.Unlock()
			return &billing.Error{Code: billing.CodeLimitExceeded, Message: l.RefusalMessage(), Limit: l}
		}
		h := &hold{r: r, madeAt: time.Now()}
		e.hold(h, 1)
		e.touchedAt = h.madeAt
		a.holds[r.ID] = h
		a.pending = append(a.pending, h)
		a.mu.Unlock()
		m.journalSoon()
		return nil
	}
}

// refuses returns the first limit that r's units would pass, counting what
// is settled and what other reservations hold, in the order
// store.Counters.Exceeded checks them (total calls, the provider's calls,
// the provider's tokens, monthly cost), so both databases name the same
// limit.
func (e *entry) refuses(r billing.Reservation, lim billing.Limits) *billing.LimitInfo {
	pu, ph := e.usedBy[r.Provider], e.heldBy[r.Provider]
	checks := []struct {
		limit *int64
		info  billing.LimitInfo
	}{
		{lim.TotalCalls, billing.LimitInfo{Key: "total_calls", Used: e.used.calls, Reserved: e.held.calls, Requested: r.Calls}},
		{lim.ProviderCalls, billing.LimitInfo{Key: r.Provider + "_calls", Provider: r.Provider, Used: pu.calls, Reserved: ph.calls, Requested: r.Calls}},
		{lim.ProviderTokens, billing.LimitInfo{Key: r.Provider + "_tokens", Provider: r.Provider, Used: pu.tokens, Reserved: ph.tokens, Requested: r.Tokens}},
		{lim.Cost, billing.LimitInfo{Key: "monthly_cost", Used: e.used.cost, Reserved: e.held.cost, Requested: int64(r.Cost), Money: true}},
	}
	for _, c := range checks {
		if c.limit == nil {
			continue
		}
		if c.info.Used+c.info.Reserved+c.info.Requested > *c.limit {
			l := c.info
			l.Limit, l.Period = *c.limit, r.Period.Key
			return &l
		}
	}
	return nil
}

// claim marks a held reservation as being settled by eventID. It returns
// the hold (nil when the reservation is not held in memory, or is being
// settled by this same event already) and whether its row is in the
// journal, so that the settling item must finish it there too. Errors:
// conflict when another event is settling it.
func (a *memAdmission) claim(id, eventID string) (*hold, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	h, ok := a.holds[id]
	if !ok || h.state == holdDone {
		return nil, false, nil
	}
	if h.state == holdSettling {
		if h.eventID == eventID {
			// The same settle again (a retry): it commits as a duplicate.
			return nil, false, nil
		}
		return nil, false, billing.Errorf(billing.CodeConflict, "reservation %s is being settled by event %s", id, h.eventID)
	}
	h.state, h.eventID = holdSettling, eventID
	return h, h.journaled, nil
}

// unclaim puts back holds whose settle did not commit.
func (a *memAdmission) unclaim(hs []*hold) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, h := range hs {
		if h.state == holdSettling {
			h.state, h.eventID = holdHeld, ""
			if !h.journaled {
				a.pending = append(a.pending, h)
			}
		}
	}
}

// due takes the holds that have waited JournalDelay and are still held,
// marking them journaled; force takes every pending hold.
func (a *memAdmission) due(now time.Time, force bool) ([]*hold, []billing.Reservation) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var hs []*hold
	var rs []billing.Reservation
	i := 0
	for ; i < len(a.pending); i++ {
		h := a.pending[i]
		if h.state != holdHeld || h.journaled {
			continue // finished (or journaled) while pending
		}
		if !force && now.Sub(h.madeAt) < a.journalDelay {
			break
		}
		h.journaled = true
		hs = append(hs, h)
		rs = append(rs, h.r)
	}
	// Holds settled or released while pending are dropped as they reach
	// the front; later ones stay in order. Re-slicing keeps this cheap
	// under the lock; the array is compacted once mostly consumed.
	a.pending = a.pending[i:]
	if cap(a.pending) > 1024 && len(a.pending) < cap(a.pending)/4 {
		a.pending = append(make([]*hold, 0, 2*len(a.pending)), a.pending...)
	}
	return hs, rs
}

// unjournal puts back holds whose journal transaction failed.
func (a *memAdmission) unjournal(hs []*hold) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, h := range hs {
		if h.journaled && h.state == holdHeld {
			h.journaled = false
			a.pending = append([]*hold{h}, a.pending...)
		}
	}
}

// applyUsage adds committed, newly recorded usage to the counters of the
// entries in memory (an entry read later finds it in the summaries).
func (a *memAdmission) applyUsage(logs []billing.UsageLog) {
	for _, l := range logs {
		e, ok := a.entries[entryKey{l.UserID, l.BillingPeriod, l.PeriodStart.UnixNano()}]
		if !ok {
			continue
		}
		u := units{calls: 1, tokens: l.TokensInput + l.TokensOutput, cost: int64(l.CostTotal)}
		e.used.calls += u.calls
		e.used.cost += u.cost
		pu := e.usedBy[l.Provider]
		pu.add(u, 1)
		e.usedBy[l.Provider] = pu
		e.touchedAt = time.Now()
	}
}

// drop ends holds with status and removes their units. The ones the
// journal never saw are kept a while for lookups.
func (a *memAdmission) drop(hs []*hold, status string) {
	now := time.Now()
	for _, h := range hs {
		if h.state == holdDone {
			continue
		}
		h.state = holdDone
		delete(a.holds, h.r.ID)
		if e, ok := a.entries[entryOf(h.r.UserID, h.r.Period)]; ok {
			e.hold(h, -1)
		}
		if !h.journaled {
			if len(a.recent) >= maxRecent {
				a.pruneRecent(now.Add(-recentTTL))
			}
			r := h.r
			r.Status = status
			if status == billing.ReservationSettled {
				r.EventID = h.eventID
			}
			a.recent[r.ID] = finishedOf(r, now)
		}
	}
}

// pruneRecent forgets finished reservations older than before, and the
// oldest half when that is not enough.
func (a *memAdmission) pruneRecent(before time.Time) {
	for id, f := range a.recent {
		if f.at < before.UnixNano() {
			delete(a.recent, id)
		}
	}
	if len(a.recent) >= maxRecent {
		n := 0
		for id := range a.recent {
			if n >= maxRecent/2 {
				break
			}
			delete(a.recent, id)
			n++
		}
	}
}

// finishHeld ends holds that are held (not settling), for a release or an
// expiry, and returns those whose journal row must be finished too.
func (a *memAdmission) finishHeld(status string, pick func(*hold) bool) (all []*hold, journaled []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, h := range a.holds {
		if h.state == holdHeld && pick(h) {
			all = append(all, h)
			if h.journaled {
				journaled = append(journaled, h.r.ID)
			}
		}
	}
	a.drop(all, status)
	return all, journaled
}

// evict forgets entries without holds that nobody touched for a while.
func (a *memAdmission) evict(before time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, e := range a.entries {
		if e.holds == 0 && e.touchedAt.Before(before) {
			delete(a.entries, k)
		}
	}
	a.pruneRecent(time.Now().Add(-recentTTL))
}

// get returns a reservation held in memory.
func (a *memAdmission) get(id string) (billing.Reservation, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	h, ok := a.holds[id]
	if !ok || h.state == holdDone {
		return billing.Reservation{}, false
	}
	return h.r, true
}

// lookup returns a reservation held in memory or finished there recently.
func (a *memAdmission) lookup(id string) (billing.Reservation, bool) {
	if r, ok := a.get(id); ok {
		return r, true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	f, ok := a.recent[id]
	if !ok {
		return billing.Reservation{}, false
	}
	return f.reservation(id), true
}

// counters returns the settled and held units of a user's period and
// provider, for preflight checks, reading the entry in if needed.
func (m *Meter) memCounters(ctx context.Context, a *memAdmission, user string, p billing.Period, provider string) (total, heldTotal, prov, heldProv billing.Counters, err error) {
	if err = m.entry(ctx, a, user, p); err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.entries[entryOf(user, p)]
	if !ok {
		err = fmt.Errorf("counters of %s in %s vanished", user, p.Key)
		return
	}
	pu, ph := e.usedBy[provider], e.heldBy[provider]
	total = billing.Counters{Calls: e.used.calls, Cost: money.Amount(e.used.cost)}
	heldTotal = billing.Counters{Calls: e.held.calls, Cost: money.Amount(e.held.cost)}
	prov = billing.Counters{Calls: pu.calls, TokensInput: pu.tokens, Cost: money.Amount(pu.cost)}
	heldProv = billing.Counters{Calls: ph.calls, TokensInput: ph.tokens, Cost: money.Amount(ph.cost)}
	return
}

// claimRecent lets eventID settle a reservation that finished in memory
// (released or expired before its call ended): the call is recorded, once.
// It reports whether id is such a reservation. Errors: conflict when
// another event settled it.
func (a *memAdmission) claimRecent(id, eventID string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f, ok := a.recent[id]
	if !ok {
		return false, nil
	}
	if f.eventID != "" && f.eventID != eventID {
		return true, billing.Errorf(billing.CodeConflict, "reservation %s was settled by event %s", id, f.eventID)
	}
	f.eventID = eventID
	a.recent[id] = f
	return true, nil
}

// usage is a user's committed usage of a period as the counters in memory
// hold it (calls, tokens and cost), for alert checks inside a commit; the
// caller holds the commit lock, so no commit is missing from it.
func (a *memAdmission) usage(user string, p billing.Period) (billing.PeriodUsage, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.entries[entryOf(user, p)]
	if !ok {
		return billing.PeriodUsage{}, false
	}
	u := billing.PeriodUsage{UserID: user, Period: p, ByProvider: make(map[string]billing.Counters, len(e.usedBy)),
		Total: billing.Counters{Calls: e.used.calls, Cost: money.Amount(e.used.cost)}}
	for prov, pu := range e.usedBy {
		u.ByProvider[prov] = billing.Counters{Calls: pu.calls, TokensInput: pu.tokens, Cost: money.Amount(pu.cost)}
	}
	return u, true
}

// auditBatch is how many entries one sweep compares with the database.
const auditBatch = 64

// audit compares up to auditBatch entries' settled counters with the
// summaries, under the commit lock (so both hold the same commits), and
// puts right any that differ, with an error in the log: they never should,
// but the database is the record and admission must follow it. Entries
// are taken in map order, which differs between calls, so every entry is
// compared now and then. It returns how many were put right.
func (m *Meter) audit(ctx context.Context, a *memAdmission) (int, error) {
	m.commitMu.Lock()
	defer m.commitMu.Unlock()
	a.mu.Lock()
	keys := make([]entryKey, 0, auditBatch)
	periods := make([]billing.Period, 0, auditBatch)
	for k, e := range a.entries {
		if len(keys) == auditBatch {
			break
		}
		keys, periods = append(keys, k), append(periods, e.period)
	}
	a.mu.Unlock()
	fixed := 0
	for i, k := range keys {
		u, err := m.db.PeriodCounters(ctx, k.user, periods[i])
		if err != nil {
			return fixed, err
		}
		used := units{calls: u.Total.Calls, cost: int64(u.Total.Cost)}
		usedBy := map[string]units{}
		for prov, c := range u.ByProvider {
			usedBy[prov] = units{calls: c.Calls, tokens: c.Tokens(), cost: int64(c.Cost)}
		}
		a.mu.Lock()
		e, ok := a.entries[k]
		if ok && (e.used != used || !sameUnits(e.usedBy, usedBy)) {
			m.logger.Error("admission counters differed from the usage summaries; corrected from the database",
				"user_id", k.user, "period", k.period, "memory_calls", e.used.calls, "database_calls", used.calls,
				"memory_cost", money.Amount(e.used.cost).String(), "database_cost", money.Amount(used.cost).String())
			e.used, e.usedBy = used, usedBy
			fixed++
		}
		a.mu.Unlock()
	}
	return fixed, nil
}

// sameUnits compares per-provider counters, a missing provider counting
// as zero.
func sameUnits(a, b map[string]units) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}
