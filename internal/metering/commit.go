package metering

import (
	"context"
	"maps"
	"sync"

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

type commitJob struct {
	items  []store.IngestItem
	alerts store.AlertContext
	done   chan commitResult
}

type commitResult struct {
	results []billing.EventResult
	err     error
}

type committer struct {
	mu      sync.Mutex
	queue   []*commitJob
	running int
}

// commit writes b's items through the group committer.
func (m *Meter) commit(ctx context.Context, b batch) ([]billing.EventResult, error) {
	j := &commitJob{items: b.items, alerts: b.alerts, done: make(chan commitResult, 1)}
	c := &m.committer
	c.mu.Lock()
	c.queue = append(c.queue, j)
	start := c.running < m.commitParallelism()
	if start {
		c.running++
	}
	c.mu.Unlock()
	if start {
		go m.commitLoop(context.WithoutCancel(ctx))
	}
	select {
	case r := <-j.done:
		return r.results, r.err
	case <-ctx.Done():
		// The batch may still commit; resending it is safe (idempotent).
		return nil, ctx.Err()
	}
}

// commitParallelism is how many group transactions may run at once: one on
// SQLite, whose single writer serialises them anyway, and CommitParallelism
// (default 4) on PostgreSQL, which writes concurrent transactions in
// parallel.
func (m *Meter) commitParallelism() int {
	if m.db.Dialect() == store.SQLite {
		return 1
	}
	if m.CommitParallelism > 0 {
		return m.CommitParallelism
	}
	return 4
}

// commitLoop runs while batches are waiting, then exits, so an idle meter
// holds no goroutine.
func (m *Meter) commitLoop(ctx context.Context) {
	c := &m.committer
	for {
		c.mu.Lock()
		var group []*commitJob
		n := 0
		for len(c.queue) > 0 && (len(group) == 0 || n+len(c.queue[0].items) <= maxGroupItems) {
			n += len(c.queue[0].items)
			group = append(group, c.queue[0])
			c.queue = c.queue[1:]
		}
		if len(group) == 0 {
			c.running--
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		m.commitGroup(ctx, group)
	}
}

// commitGroup writes a group in one transaction. If it fails, each batch
// is retried on its own, so one batch's failure is not another's.
func (m *Meter) commitGroup(ctx context.Context, group []*commitJob) {
	if len(group) == 1 {
		r, err := m.db.Ingest(ctx, group[0].items, group[0].alerts, m.now())
		group[0].done <- commitResult{r, err}
		return
	}
	var items []store.IngestItem
	ac := store.AlertContext{Plans: map[string]billing.Plan{}}
	for _, j := range group {
		items = append(items, j.items...)
		maps.Copy(ac.Plans, j.alerts.Plans)
		ac.Providers = j.alerts.Providers
		ac.Extra = append(ac.Extra, j.alerts.Extra...)
	}
	results, err := m.db.Ingest(ctx, items, ac, m.now())
	if err != nil {
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
