package metering

import (
	"context"
	"sync"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// Group reservation (PostgreSQL): concurrent Reserve calls queue their
// reservations, and one goroutine sends everything waiting at that moment
// to the database as one statement in one transaction
// (store.DB.ReserveBatch), which decides them in arrival order exactly as
// one reservation at a time would be decided. A round trip, a transaction
// and each (user, period)'s advisory lock are then shared by the group
// instead of paid per call, which is what admission on PostgreSQL waited
// on. As with group commit, nothing waits on a timer: a lone reservation is
// sent at once, and the next group takes everything that queued while it
// ran.

// maxReserveGroup bounds one group: its statement's arrays, and how long
// the (user, period) locks it takes are held.
const maxReserveGroup = 256

type reserveJob struct {
	ctx  context.Context
	item store.ReserveItem
	// done receives the answer; buffered, so that the reserver never
	// waits for a caller that gave up.
	done chan error
}

// reserver is the queue of reservations waiting for the next group, and
// whether a goroutine is sending groups.
type reserver struct {
	mu      sync.Mutex
	queue   []*reserveJob
	running bool
}

// reserveGrouped holds r through the group reserver and returns what
// store.DB.Reserve would: nil once r is held, or why it is not.
//
// A caller whose ctx ends first returns ctx.Err(), but its reservation may
// still be made by a group already on its way to the database. Nobody then
// knows its id, so it is never settled or released: it holds its units
// until it expires (ReservationTTL) and the sweep releases it, the same as
// the reservation of a client that crashed. That keeps limits exact (a
// hold is never lost, only kept too long), and is why a caller's
// cancellation does not cancel the group it shares with others.
func (m *Meter) reserveGrouped(ctx context.Context, r billing.Reservation, lim billing.Limits, now time.Time) error {
	j := &reserveJob{ctx: ctx, item: store.ReserveItem{Reservation: r, Limits: lim, Now: now}, done: make(chan error, 1)}
	q := &m.reserver
	q.mu.Lock()
	q.queue = append(q.queue, j)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		go m.reserveLoop(context.WithoutCancel(ctx))
	}
	select {
	case err := <-j.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reserveLoop sends groups while reservations are waiting, then exits, so
// an idle meter holds no goroutine.
func (m *Meter) reserveLoop(ctx context.Context) {
	q := &m.reserver
	for {
		q.mu.Lock()
		n := min(len(q.queue), maxReserveGroup)
		if n == 0 {
			q.running = false
			q.queue = nil
			q.mu.Unlock()
			return
		}
		group := make([]*reserveJob, n)
		copy(group, q.queue)
		clear(q.queue[:n]) // the backing array outlives this group
		q.queue = q.queue[n:]
		q.mu.Unlock()
		m.reserveGroup(ctx, group)
	}
}

// reserveGroup sends one group and answers each of its callers. If the
// group fails as a whole (one reused id fails its transaction, for
// instance), each reservation is retried on its own, so that one
// reservation's failure is not another's. (Had the group committed and
// only its answer been lost with the connection, the retries find their
// ids taken and answer conflict; those holds expire like any unsettled
// one.)
func (m *Meter) reserveGroup(ctx context.Context, group []*reserveJob) {
	live := make([]*reserveJob, 0, len(group))
	for _, j := range group {
		// Whoever gave up before the group left is not held for nothing.
		if err := j.ctx.Err(); err != nil {
			j.done <- err
			continue
		}
		live = append(live, j)
	}
	switch len(live) {
	case 0:
		return
	case 1:
		// alwrity_reserve decides a lone reservation the same way, with
		// less to send.
		j := live[0]
		j.done <- m.db.Reserve(ctx, j.item.Reservation, j.item.Limits, j.item.Now)
		return
	}
	items := make([]store.ReserveItem, len(live))
	for i, j := range live {
		items[i] = j.item
	}
	answers, err := m.db.ReserveBatch(ctx, items)
	if err != nil {
		m.logger.Warn("group reservation failed; reserving one at a time", "count", len(live), "error", err)
		for _, j := range live {
			j.done <- m.db.Reserve(j.ctx, j.item.Reservation, j.item.Limits, j.item.Now)
		}
		return
	}
	for i, j := range live {
		j.done <- answers[i]
	}
}
