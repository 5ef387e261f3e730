package metering

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// Leases (PostgreSQL, for calls this process settles itself: the
// gateway's). Admitting a call on PostgreSQL is a round trip that inserts a
// reservation row, and settling it updates that row. When a user is far
// from their limits, the meter instead takes a lease: one reservation of
// many calls' units, admitted by the same atomic statement as any
// reservation, and hands its units out to calls in memory. What the lease
// holds counts against the limits for every process, so no process ever
// admits past a limit.
//
// The units of a call whose usage is recorded are given back to the
// database a moment later (leaseGiveBack), by one statement for all of a
// lease's calls, outside the transactions that record them: one lease row
// updated by every ledger commit serialised those commits on its row lock.
// Until they are given back they count twice (as usage and as held), which
// can only refuse early. Unused units go back when the lease is retired:
// after leaseIdle without use, at leaseMaxAge, or when a call does not fit.
//
// Leases only take a small part of what a limit has left (1/leaseHeadroom),
// and none when that part is under leaseMinCalls calls: near a limit every
// call is reserved exactly, so that the last units go to whoever asks
// first. A refusal is never caused by this process's own leases: their
// units go to calls before any exact reservation is tried, and a refused
// caller first gives back what its own leases hold for no call in flight
// and asks again. Another process's lease can make a call wait for its
// units until that process gives them back (leaseGiveBack after their use,
// leaseIdle after the lease's last use).

const (
	leaseMaxCalls  = 256
	leaseMinCalls  = 4
	leaseHeadroom  = 16
	leaseGiveBack  = 100 * time.Millisecond
	leaseIdle      = 250 * time.Millisecond
	leaseMaxAge    = 30 * time.Second
	noLeaseBackoff = time.Second
	// leaseTendTimeout bounds the keeper's give-back of one slot's units
	// (a database that does not answer).
	leaseTendTimeout = 2 * time.Second
)

type leaseKey struct {
	user, period string
	start        int64
	provider     string
}

// lease is one lease's state: row is what its database row holds now;
// inflight the units of calls handed out and neither settled nor
// released; settling those of calls being recorded; spent those of
// recorded calls not yet given back.
type lease struct {
	id                             string
	limits                         billing.Limits
	expires                        time.Time // its row's (the meter's clock)
	row, inflight, settling, spent units
	retired                        bool
	granted, used                  time.Time // real clock
}

// free is what the lease can still hand out.
func (l *lease) free() units {
	f := l.row
	f.add(l.inflight, -1)
	f.add(l.settling, -1)
	f.add(l.spent, -1)
	return f
}

// idle is what the row holds for no call in flight: what goes back when
// the lease is retired.
func (l *lease) idle() units {
	f := l.row
	f.add(l.inflight, -1)
	f.add(l.settling, -1)
	return f
}

func (l *lease) empty() bool { return l.inflight == units{} && l.settling == units{} }

func (u units) fits(f units) bool {
	return u.calls <= f.calls && u.tokens <= f.tokens && u.cost <= f.cost
}

func unitsOf(r billing.Reservation) units {
	return units{calls: r.Calls, tokens: r.Tokens, cost: int64(r.Cost)}
}

// leaseSlot is the leases of one (user, period, provider). mu is held
// across the round trips that grant, shrink or end its leases.
type leaseSlot struct {
	mu  sync.Mutex
	key leaseKey
	// Under leaseBook.mu: the lease calls are handed from, a count of the
	// give-backs to the database, and how many reservations are using the
	// slot.
	cur   *lease
	gen   int
	users int
	// Under mu: no lease is asked for before noLeaseUntil.
	noLeaseUntil time.Time
}

type leasedCall struct {
	slot *leaseSlot
	l    *lease
	u    units
	r    billing.Reservation
}

// leaseBook is a meter's leases.
type leaseBook struct {
	mu      sync.Mutex
	slots   map[leaseKey]*leaseSlot
	calls   map[string]*leasedCall
	leases  map[*lease]*leaseSlot // every lease whose row may still hold units
	stop    chan struct{}         // closes the keeper while it runs
	kept    chan struct{}         // closed when the keeper has returned
	closed  bool
	granted atomic.Int64
}

// LeasesGranted is how many leases the meter has taken.
func (m *Meter) LeasesGranted() int64 { return m.leases.granted.Load() }

func keyOfReservation(r billing.Reservation) leaseKey {
	return leaseKey{r.UserID, r.Period.Key, r.Period.Start.UnixNano(), r.Provider}
}

func (b *leaseBook) slot(k leaseKey) *leaseSlot {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.slots == nil {
		b.slots, b.calls, b.leases = map[leaseKey]*leaseSlot{}, map[string]*leasedCall{}, map[*lease]*leaseSlot{}
	}
	s := b.slots[k]
	if s == nil {
		s = &leaseSlot{key: k}
		b.slots[k] = s
	}
	s.users++
	return s
}

// done ends a reservation's use of s.
func (b *leaseBook) done(s *leaseSlot) {
	b.mu.Lock()
	s.users--
	b.mu.Unlock()
}

// handOut admits r from its slot's lease if the lease has room and was
// granted under the same limits.
func (b *leaseBook) handOut(s *leaseSlot, r billing.Reservation, lim billing.Limits) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := s.cur
	u := unitsOf(r)
	if l == nil || l.retired || b.closed || !sameLimits(l.limits, lim) || !u.fits(l.free()) || r.ExpiresAt.After(l.expires) {
		return false
	}
	l.inflight.add(u, 1)
	l.used = time.Now()
	b.calls[r.ID] = &leasedCall{slot: s, l: l, u: u, r: r}
	return true
}

// reserveLeased admits r, a call this process settles itself, from a lease
// when it can and by an exact reservation otherwise.
func (m *Meter) reserveLeased(ctx context.Context, r billing.Reservation, lim billing.Limits, now time.Time) error {
	b := &m.leases
	s := b.slot(keyOfReservation(r))
	defer b.done(s)
	if b.handOut(s, r, lim) {
		return nil
	}
	s.mu.Lock()
	if b.handOut(s, r, lim) {
		s.mu.Unlock()
		return nil
	}
	// The current lease (if any) cannot serve r: it retires, and what it
	// holds for no call goes back before r is admitted otherwise.
	b.retireCurrent(s)
	m.giveBack(ctx, s)
	if time.Now().After(s.noLeaseUntil) {
		if err := m.grantLease(ctx, s, r, lim, now); err != nil {
			m.logger.Warn("lease not granted; reserving calls one by one", "user_id", r.UserID, "error", err)
			s.noLeaseUntil = time.Now().Add(noLeaseBackoff)
		}
		if b.handOut(s, r, lim) {
			s.mu.Unlock()
			return nil
		}
	}
	gen := b.generation(s)
	s.mu.Unlock()
	for attempt := 1; ; attempt++ {
		err := m.reserveGrouped(ctx, r, lim, now)
		if err == nil {
			m.made.add(r)
			return nil
		}
		if billing.ErrorCode(err) != billing.CodeLimitExceeded || attempt == 3 {
			return err
		}
		// Refused. A lease granted meanwhile may serve r; units this
		// process held for no call, for r's provider or (the total and
		// cost limits are the user's) any other, may have refused it:
		// give them back (or see that they went back meanwhile) and ask
		// again.
		s.mu.Lock()
		ok := b.handOut(s, r, lim)
		gave := false
		if !ok {
			b.retireCurrent(s)
			gave = m.giveBack(ctx, s)
		}
		again := gave || b.generation(s) != gen
		gen = b.generation(s)
		s.mu.Unlock()
		if ok {
			return nil
		}
		if m.giveBackUser(ctx, s) {
			again = true
		}
		if !again {
			return err
		}
	}
}

// grantLease asks for a lease sized from what r's limits have left, under
// s.mu. Without room for leaseMinCalls calls of r's size it asks for none.
func (m *Meter) grantLease(ctx context.Context, s *leaseSlot, r billing.Reservation, lim billing.Limits, now time.Time) error {
	m.leases.mu.Lock()
	closed := m.leases.closed
	m.leases.mu.Unlock()
	if closed {
		return nil
	}
	c, err := m.db.Counters(ctx, r.UserID, r.Period, r.Provider)
	if err != nil {
		return err
	}
	n := leaseSize(c.Total.Calls+c.HeldTotal.Calls, c.Provider.Calls+c.HeldProvider.Calls,
		c.Provider.Tokens()+c.HeldProvider.Tokens(), int64(c.Total.Cost+c.HeldTotal.Cost), lim, unitsOf(r))
	if n < leaseMinCalls {
		s.noLeaseUntil = time.Now().Add(noLeaseBackoff)
		return nil
	}
	lr := r
	lr.ID = billing.NewID("lse_")
	lr.Calls, lr.Tokens, lr.Cost = n, n*r.Tokens, money.Amount(n)*r.Cost
	lr.ExpiresAt = r.ExpiresAt.Add(leaseMaxAge)
	if err := m.db.Reserve(ctx, lr, lim, now); err != nil {
		if billing.ErrorCode(err) == billing.CodeLimitExceeded {
			s.noLeaseUntil = time.Now().Add(noLeaseBackoff)
			return nil
		}
		// The row may exist (its commit's answer lost): end it rather
		// than let it hold its units until it expires.
		end, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaseTendTimeout)
		defer cancel()
		if _, ferr := m.db.FinishReservations(end, []string{lr.ID}, billing.ReservationReleased, now); ferr != nil {
			m.logger.Warn("a lease whose grant failed could not be ended; it expires", "lease", lr.ID, "error", ferr)
		}
		return err
	}
	b := &m.leases
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		// The meter closed meanwhile: give the lease back at once.
		b.mu.Unlock()
		_, err := m.db.FinishReservations(context.WithoutCancel(ctx), []string{lr.ID}, billing.ReservationReleased, now)
		b.mu.Lock()
		return err
	}
	b.granted.Add(1)
	t := time.Now()
	l := &lease{id: lr.ID, limits: lim, expires: lr.ExpiresAt, row: unitsOf(lr), granted: t, used: t}
	s.cur = l
	s.gen++
	b.leases[l] = s
	if b.stop == nil {
		b.stop, b.kept = make(chan struct{}), make(chan struct{})
		go m.keepLeases(b.stop, b.kept)
	}
	return nil
}

// leaseSize is how many calls of u's size a lease takes, given what each
// limit has used and held: at most 1/leaseHeadroom of what any limit has
// left, at most leaseMaxCalls.
func leaseSize(calls, providerCalls, providerTokens, cost int64, lim billing.Limits, u units) int64 {
	n := int64(leaseMaxCalls)
	within := func(limit *int64, used, per int64) {
		if limit == nil || per <= 0 {
			return
		}
		left := *limit - used
		if left <= 0 {
			n = 0
			return
		}
		n = min(n, left/leaseHeadroom/per)
	}
	within(lim.TotalCalls, calls, u.calls)
	within(lim.ProviderCalls, providerCalls, u.calls)
	within(lim.ProviderTokens, providerTokens, u.tokens)
	within(lim.Cost, cost, u.cost)
	if u.tokens > 0 {
		n = min(n, math.MaxInt64/u.tokens)
	}
	if u.cost > 0 {
		n = min(n, math.MaxInt64/u.cost)
	}
	return n
}

// giveBack returns to the database what s's leases hold for recorded calls
// and, for retired leases, for no call at all, ending those without calls
// in flight; under s.mu. It reports whether anything went back.
func (m *Meter) giveBack(ctx context.Context, s *leaseSlot) bool {
	// A caller that gives up does not stop a give-back half way.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaseTendTimeout)
	defer cancel()
	b := &m.leases
	type back struct {
		l     *lease
		from  units // what its row holds
		u     units // what goes back
		spent units // of which spent
		end   bool
	}
	var work []back
	b.mu.Lock()
	for l, ls := range b.leases {
		if ls != s {
			continue
		}
		switch {
		case l.retired && l.empty():
			work = append(work, back{l, l.row, l.row, l.spent, true})
		case l.retired:
			work = append(work, back{l, l.row, l.idle(), l.spent, false})
		case l.spent != units{}:
			work = append(work, back{l, l.row, l.spent, l.spent, false})
		}
	}
	b.mu.Unlock()
	gave := false
	for _, w := range work {
		if w.end {
			if _, err := m.db.FinishReservations(ctx, []string{w.l.id}, billing.ReservationReleased, m.now()); err != nil {
				m.logger.Warn("lease not ended; it is tried again", "lease", w.l.id, "error", err)
				continue
			}
			b.mu.Lock()
			delete(b.leases, w.l)
			w.l.row, w.l.spent = units{}, units{}
			s.gen++
			b.mu.Unlock()
			gave = true
			continue
		}
		if w.u == (units{}) {
			continue
		}
		to := w.from
		to.add(w.u, -1)
		cur, held, err := m.db.ShrinkLease(ctx, w.l.id, leaseUnits(w.from), leaseUnits(to))
		if err != nil {
			m.logger.Warn("lease units not given back; they are tried again", "lease", w.l.id, "error", err)
			continue
		}
		b.mu.Lock()
		// Normally the row now holds to; what went back is spent first.
		back := w.from
		back.add(unitsOfLease(cur), -1)
		w.l.row = unitsOfLease(cur)
		w.l.spent.add(units{min(w.spent.calls, back.calls), min(w.spent.tokens, back.tokens), min(w.spent.cost, back.cost)}, -1)
		s.gen++
		if !held {
			// Expired or finished elsewhere: it holds nothing, and serves
			// no call.
			delete(b.leases, w.l)
			w.l.retired = true
			if s.cur == w.l {
				s.cur = nil
			}
		}
		b.mu.Unlock()
		gave = true
	}
	return gave
}

func leaseUnits(u units) store.LeaseUnits {
	return store.LeaseUnits{Calls: u.calls, Tokens: u.tokens, Cost: money.Amount(u.cost)}
}

func unitsOfLease(u store.LeaseUnits) units {
	return units{calls: u.Calls, tokens: u.Tokens, cost: int64(u.Cost)}
}

// retireCurrent retires s's current lease, if any: it serves no more
// calls, and giveBack returns what it holds for none.
func (b *leaseBook) retireCurrent(s *leaseSlot) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.cur != nil {
		s.cur.retired = true
		s.cur = nil
	}
}

// giveBackUser retires the leases of the other slots of s's user and
// period (other providers) and gives back what they hold for no call,
// one slot at a time (never two slot locks at once). It reports whether
// anything went back.
func (m *Meter) giveBackUser(ctx context.Context, s *leaseSlot) bool {
	b := &m.leases
	var others []*leaseSlot
	b.mu.Lock()
	for _, ls := range b.leases {
		k := ls.key
		if ls != s && k.user == s.key.user && k.period == s.key.period && k.start == s.key.start && !slices.Contains(others, ls) {
			others = append(others, ls)
		}
	}
	b.mu.Unlock()
	gave := false
	for _, o := range others {
		o.mu.Lock()
		b.retireCurrent(o)
		if m.giveBack(ctx, o) {
			gave = true
		}
		o.mu.Unlock()
	}
	return gave
}

func (b *leaseBook) generation(s *leaseSlot) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return s.gen
}

// takeLeased removes a leased call for its settle; its units stay in the
// lease until settledLeased says whether they were recorded.
func (b *leaseBook) takeLeased(id string) (*leasedCall, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.calls[id]
	if !ok {
		return nil, false
	}
	delete(b.calls, id)
	c.l.inflight.add(c.u, -1)
	c.l.settling.add(c.u, 1)
	return c, true
}

// settledLeased ends a leased call's settle: spent means its usage is in
// the ledger (its units go back with the next give-back), failed that the
// call is in flight again.
func (m *Meter) settledLeased(c *leasedCall, spent, failed bool) {
	b := &m.leases
	b.mu.Lock()
	defer b.mu.Unlock()
	c.l.settling.add(c.u, -1)
	switch {
	case spent:
		c.l.spent.add(c.u, 1)
	case failed:
		c.l.inflight.add(c.u, 1)
		b.calls[c.r.ID] = c
	}
}

// releaseLeased gives a leased call's units back to its lease. It reports
// false for an id that is not a leased call in flight.
func (m *Meter) releaseLeased(id string) (billing.Reservation, bool) {
	b := &m.leases
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.calls[id]
	if !ok {
		return billing.Reservation{}, false
	}
	delete(b.calls, id)
	c.l.inflight.add(c.u, -1)
	r := c.r
	r.Status = billing.ReservationReleased
	return r, true
}

// keepLeases gives back spent units every leaseGiveBack and retires
// leases that were not used for leaseIdle or are older than leaseMaxAge,
// until no lease is left or stop closes.
func (m *Meter) keepLeases(stop <-chan struct{}, kept chan<- struct{}) {
	defer close(kept)
	t := time.NewTicker(leaseGiveBack)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if !m.tendLeases(false) {
			return
		}
	}
}

// tendLeases retires idle or old leases (every lease with all) and gives
// back what each slot's leases hold for no call. It reports whether leases
// remain; when none do, the keeper stops.
func (m *Meter) tendLeases(all bool) bool {
	b := &m.leases
	now := time.Now()
	due := map[*leaseSlot]bool{}
	b.mu.Lock()
	for l, s := range b.leases {
		if all || now.Sub(l.used) > leaseIdle || now.Sub(l.granted) > leaseMaxAge {
			l.retired = true
			if s.cur == l {
				s.cur = nil
			}
		}
		if l.retired || l.spent != (units{}) {
			due[s] = true
		}
	}
	b.mu.Unlock()
	for s := range due {
		// Bounded: calls of the slot wait for its lock meanwhile.
		ctx, cancel := context.WithTimeout(context.Background(), leaseTendTimeout)
		s.mu.Lock()
		m.giveBack(ctx, s)
		s.mu.Unlock()
		cancel()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	leased := map[*leaseSlot]bool{}
	for _, s := range b.leases {
		leased[s] = true
	}
	for k, s := range b.slots {
		if s.cur == nil && s.users == 0 && !leased[s] {
			delete(b.slots, k)
		}
	}
	if len(b.leases) > 0 && !b.closed {
		return true
	}
	b.stop = nil
	return false
}

// closeLeases gives back what every lease holds for no call and stops the
// keeper. Leases with calls in flight end when those calls' settles are
// given back by a later tend, or expire.
func (m *Meter) closeLeases() {
	b := &m.leases
	b.mu.Lock()
	b.closed = true
	stop, kept := b.stop, b.kept
	b.stop = nil
	b.mu.Unlock()
	if stop != nil {
		close(stop)
		<-kept
	}
	m.tendLeases(true)
}

func sameLimits(a, b billing.Limits) bool {
	eq := func(x, y *int64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return eq(a.TotalCalls, b.TotalCalls) && eq(a.Cost, b.Cost) && eq(a.ProviderCalls, b.ProviderCalls) &&
		eq(a.ProviderTokens, b.ProviderTokens)
}
