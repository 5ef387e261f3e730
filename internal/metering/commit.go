package metering

import (
	"context"
	"hash/fnv"
	"maps"
	"sync"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// Group commit: concurrent Record calls hand their prepared batches to one
// committer, which writes every batch waiting at that moment in a single
// transaction and answers each caller only after that commit. A commit
// (an fsync on PostgreSQL) and the per-period summary and alert work are
// then shared by all of them, and nothing waits on a timer: a lone batch is
// committed at once.

// maxGroupItems bounds one group transaction.
const maxGroupItems = 5000

// unhurriedItems is how many unhurried items make a group worth committing
// at once, before the first of them has waited UnhurriedDelay.
const unhurriedItems = 256

// DefaultUnhurriedDelay is Meter.UnhurriedDelay's default.
const DefaultUnhurriedDelay = 10 * time.Millisecond

type unhurriedKey struct{}

// Unhurried marks ctx as a caller whose answer does not wait on the
// record (the gateway records a call after answering its client): its
// batch may wait up to Meter.UnhurriedDelay for others to share a
// transaction with. Larger groups cost fewer page writes and commits per
// event; a recorded event is as durable as ever once Record or Settle
// returns.
func Unhurried(ctx context.Context) context.Context {
	return context.WithValue(ctx, unhurriedKey{}, true)
}

func isUnhurried(ctx context.Context) bool {
	v, _ := ctx.Value(unhurriedKey{}).(bool)
	return v
}

type commitJob struct {
	items  []store.IngestItem
	alerts store.AlertContext
	// settles are the in-memory holds the items settle, released once
	// the items commit (SQLite).
	settles []*hold
	// journal asks for every pending hold to be journaled now.
	journal bool
	// unhurried jobs may wait for more to share their group; queued is
	// when the job was queued.
	unhurried bool
	queued    time.Time
	done      chan commitResult
}

type commitResult struct {
	results []billing.EventResult
	err     error
}

// committer runs group commits in lanes: a batch goes to the lane of its
// (first) user, and each lane commits one group at a time. Groups of
// different lanes touch different users' summary rows and commit in
// parallel (PostgreSQL); groups of one user never wait for each other's
// row locks — the next group simply takes everything that queued meanwhile.
type committer struct {
	mu    sync.Mutex
	lanes []commitLane
}

type commitLane struct {
	queue   []*commitJob
	running bool
	// hurried counts the queued jobs whose callers wait on the commit,
	// items the queued items; wake interrupts a lane waiting for
	// unhurried jobs to gather.
	hurried, items int
	wake           chan struct{}
}

func (l *commitLane) push(j *commitJob) {
	l.queue = append(l.queue, j)
	l.items += len(j.items)
	if !j.unhurried {
		l.hurried++
	}
}

func (l *commitLane) pop() *commitJob {
	j := l.queue[0]
	l.queue = l.queue[1:]
	l.items -= len(j.items)
	if !j.unhurried {
		l.hurried--
	}
	return j
}

// gathering reports how much longer the lane's queue may wait for more
// jobs: while only unhurried jobs wait, too few to fill a group, and the
// oldest of them has waited less than delay.
func (l *commitLane) gathering(delay time.Duration, now time.Time) time.Duration {
	if len(l.queue) == 0 || l.hurried > 0 || l.items >= unhurriedItems {
		return 0
	}
	return max(0, delay-now.Sub(l.queue[0].queued))
}

// lane returns the index of j's lane among n.
func (j *commitJob) lane(n int) int {
	if n == 1 || len(j.items) == 0 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(j.items[0].Log.UserID))
	return int(h.Sum32() % uint32(n))
}

// commit writes b's items through the group committer. Once they are in
// the ledger, failed calls among them may raise a provider's
// system_health alert: every recorded call passes here, a gateway's settle
// as much as a batch of POST /usage.
func (m *Meter) commit(ctx context.Context, b batch) ([]billing.EventResult, error) {
	results, err := m.submit(ctx, &commitJob{items: b.items, alerts: b.alerts, settles: b.settles, done: make(chan commitResult, 1)})
	if err == nil {
		m.checkHealth(ctx, b.items)
	}
	return results, err
}

// submit hands a job to the group committer and waits for its commit.
func (m *Meter) submit(ctx context.Context, j *commitJob) ([]billing.EventResult, error) {
	if m.UnhurriedDelay > 0 && isUnhurried(ctx) {
		j.unhurried, j.queued = true, time.Now()
	}
	c := &m.committer
	c.mu.Lock()
	if c.lanes == nil {
		c.lanes = make([]commitLane, m.commitParallelism())
		for i := range c.lanes {
			c.lanes[i].wake = make(chan struct{}, 1)
		}
	}
	i := j.lane(len(c.lanes))
	l := &c.lanes[i]
	l.push(j)
	start := !l.running
	l.running = true
	if !j.unhurried || l.items >= unhurriedItems {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	c.mu.Unlock()
	if start {
		go m.commitLoop(context.WithoutCancel(ctx), i)
	}
	select {
	case r := <-j.done:
		return r.results, r.err
	case <-ctx.Done():
		// The batch may still commit; resending it is safe (idempotent).
		return nil, ctx.Err()
	}
}

// commitParallelism is how many group transactions may run at once (the
// number of lanes): one on SQLite, whose single writer serialises them
// anyway, and CommitParallelism (default 4) on PostgreSQL, which writes
// concurrent transactions in parallel.
func (m *Meter) commitParallelism() int {
	if m.db.Dialect() == store.SQLite {
		return 1
	}
	if m.CommitParallelism > 0 {
		return m.CommitParallelism
	}
	return 4
}

// commitLoop runs lane i while batches are waiting in it, then exits, so
// an idle meter holds no goroutine.
func (m *Meter) commitLoop(ctx context.Context, i int) {
	c := &m.committer
	last := 0 // jobs in the previous group
	var gather *time.Timer
	for {
		c.mu.Lock()
		l := &c.lanes[i]
		if wait := l.gathering(m.UnhurriedDelay, time.Now()); wait > 0 {
			c.mu.Unlock()
			if gather == nil {
				gather = time.NewTimer(wait)
			} else {
				gather.Reset(wait)
			}
			select {
			case <-gather.C:
			case <-l.wake:
				gather.Stop()
			}
			continue
		}
		select {
		case <-l.wake: // consumed: the group below takes what it announced
		default:
		}
		if linger := m.CommitLinger; linger > 0 && len(l.queue) > 0 && len(l.queue) < last/2 {
			// Under load most of the last group's callers come back within
			// moments; a short wait lets them share this commit.
			c.mu.Unlock()
			time.Sleep(linger)
			c.mu.Lock()
		}
		var group []*commitJob
		n := 0
		for len(l.queue) > 0 && (len(group) == 0 || n+len(l.queue[0].items) <= maxGroupItems) {
			n += len(l.queue[0].items)
			group = append(group, l.pop())
		}
		if len(group) == 0 {
			l.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		last = len(group)
		m.commitGroup(ctx, group)
	}
}

// commitGroup writes a group in one transaction. If it fails, each batch
// is retried on its own, so one batch's failure is not another's.
func (m *Meter) commitGroup(ctx context.Context, group []*commitJob) {
	if m.mem != nil {
		m.commitGroupMem(ctx, group)
		return
	}
	if len(group) == 1 {
		start := time.Now()
		r, err := m.db.Ingest(ctx, group[0].items, group[0].alerts, m.now())
		m.committed(len(group[0].items), start, err)
		if err == nil {
			m.pricesConfirmed(group[0].alerts.RatedWith)
		}
		group[0].done <- commitResult{r, err}
		return
	}
	var items []store.IngestItem
	for _, j := range group {
		items = append(items, j.items...)
	}
	ac := groupAlerts(group)
	start := time.Now()
	results, err := m.db.Ingest(ctx, items, ac, m.now())
	m.committed(len(items), start, err)
	if err == nil {
		m.pricesConfirmed(ac.RatedWith)
	} else {
		// Each batch on its own; after a price change those rated with the
		// old prices fail alone (ErrStaleCatalog) and are rated again.
		for _, j := range group {
			r, err := m.db.Ingest(ctx, j.items, j.alerts, m.now())
			j.done <- commitResult{r, err}
		}
		return
	}
	off := 0
	for _, j := range group {
		j.done <- commitResult{results: results[off : off+len(j.items)]}
		off += len(j.items)
	}
}

// groupAlerts is the alert context of a group's transaction: every
// batch's plans, schedule anchors and extra alerts. The group is checked
// against one price catalog version, so batches rated with different
// versions must not pass as rated with the newest: the group then carries
// the oldest, the transaction fails with ErrStaleCatalog, and each batch
// is written on its own, where those rated with old prices fail alone and
// are rated again.
func groupAlerts(group []*commitJob) store.AlertContext {
	ac := store.AlertContext{Plans: map[string]billing.Plan{}, Anchors: map[string]time.Time{}}
	for _, j := range group {
		maps.Copy(ac.Plans, j.alerts.Plans)
		maps.Copy(ac.Anchors, j.alerts.Anchors)
		if j.alerts.Providers != nil {
			ac.Providers = j.alerts.Providers
		}
		ac.Extra = append(ac.Extra, j.alerts.Extra...)
		if v := j.alerts.RatedWith; v != 0 && (ac.RatedWith == 0 || v < ac.RatedWith) {
			ac.RatedWith = v
		}
	}
	return ac
}

// commitGroupMem is commitGroup on SQLite, where admission counters live in
// memory: under the commit lock it journals the holds that are due, writes
// the group, and only then adds the recorded usage to the counters and
// drops the holds the group settled, in one step under the admission lock.
func (m *Meter) commitGroupMem(ctx context.Context, group []*commitJob) {
	a := m.mem
	m.commitMu.Lock()
	defer m.commitMu.Unlock()
	force := false
	var items []store.IngestItem
	var ac store.AlertContext
	if len(group) == 1 {
		// A group of one (a lone settle) is written as its batch was made.
		force, items, ac = group[0].journal, group[0].items, group[0].alerts
	} else {
		for _, j := range group {
			force = force || j.journal
			items = append(items, j.items...)
		}
		ac = groupAlerts(group)
	}
	ac.Before = a.usage
	hs, rs := a.due(time.Now(), force)

	start := time.Now()
	results, err := m.db.IngestJournal(ctx, rs, items, ac, m.now())
	m.committed(len(items), start, err)
	if err == nil {
		m.pricesConfirmed(ac.RatedWith)
	} else {
		a.unjournal(hs)
		if len(hs) > 0 {
			m.logger.Warn("group commit failed: its batches are written one by one, its reservations journaled with a later commit", "reservations", len(hs), "error", err)
		}
		for _, j := range group {
			j.alerts.Before = a.usage
			r, err := m.db.IngestJournal(ctx, nil, j.items, j.alerts, m.now())
			m.finishMem(j, r, err)
		}
		return
	}
	off := 0
	for _, j := range group {
		m.finishMem(j, results[off:off+len(j.items)], nil)
		off += len(j.items)
	}
}

// finishMem applies a committed job to the counters in memory (or puts its
// claimed holds back when it failed) and answers its caller.
func (m *Meter) finishMem(j *commitJob, results []billing.EventResult, err error) {
	a := m.mem
	if err != nil {
		a.unclaim(j.settles)
		j.done <- commitResult{err: err}
		return
	}
	var fresh []billing.UsageLog
	for i, r := range results {
		if r.Status == billing.EventRecorded {
			fresh = append(fresh, j.items[i].Log)
		}
	}
	// A hold is settled by its event only if that event was recorded now.
	// An event already in the ledger (a resend naming another reservation
	// than the one it settled) leaves the hold to its own call; the answer
	// of an exclusive settle is then a conflict, as the database answers.
	settled := j.settles
	var kept []*hold
	if len(j.settles) > 0 {
		item := make(map[string]int, len(j.items))
		for i, it := range j.items {
			item[it.Log.EventID] = i
		}
		settled = make([]*hold, 0, len(j.settles))
		for _, h := range j.settles {
			i, ok := item[h.eventID]
			if ok && results[i].Status != billing.EventRecorded {
				if j.items[i].Exclusive {
					results[i] = billing.EventResult{EventID: h.eventID, Status: billing.EventConflict}
				}
				kept = append(kept, h)
				continue
			}
			settled = append(settled, h)
		}
	}
	a.unclaim(kept)
	a.mu.Lock()
	a.applyUsage(fresh)
	a.drop(settled, billing.ReservationSettled)
	a.mu.Unlock()
	j.done <- commitResult{results: results}
}

// journalSoon makes sure pending holds are journaled once due, also when
// no batch comes to carry them.
func (m *Meter) journalSoon() {
	a := m.mem
	a.mu.Lock()
	if a.timer != nil || a.closed {
		a.mu.Unlock()
		return
	}
	a.timer = time.AfterFunc(a.journalDelay, func() {
		ctx := context.Background()
		_, err := m.submit(ctx, &commitJob{done: make(chan commitResult, 1)})
		if err != nil {
			m.logger.Warn("journaling reservations failed", "error", err)
		}
		a.mu.Lock()
		a.timer = nil
		more := len(a.pending) > 0
		a.mu.Unlock()
		if more {
			m.journalSoon()
		}
	})
	a.mu.Unlock()
}

// Flush journals every hold now (SQLite) and waits for the commit.
func (m *Meter) Flush(ctx context.Context) error {
	if m.mem == nil {
		return nil
	}
	_, err := m.submit(ctx, &commitJob{journal: true, done: make(chan commitResult, 1)})
	return err
}

// Close journals the holds still only in memory, so they outlive the
// process, and stops the journal timer (SQLite), or gives back what leases
// hold for no call (PostgreSQL).
func (m *Meter) Close(ctx context.Context) error {
	if m.mem == nil {
		m.closeLeases()
		return nil
	}
	a := m.mem
	a.mu.Lock()
	a.closed = true
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
	a.mu.Unlock()
	return m.Flush(ctx)
}
