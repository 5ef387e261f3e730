package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// pendingItem is a usage record the database could not take: a settle of a
// reservation, or (rsvID "") a call that went through fail-open.
type pendingItem struct {
	rsvID string
	ev    billing.UsageEvent
}

// pendingQueue keeps records until the database returns and retries them in
// the background. It never drops a record: when it is full, fail-open calls
// are refused instead (back-pressure).
type pendingQueue struct {
	g       *Gateway
	mu      sync.Mutex
	items   []pendingItem
	running bool
	closed  bool
	stop    chan struct{}
	done    chan struct{}
	// writing serialises passes over the queue, so that a record is
	// never written by two passes at once.
	writing sync.Mutex
}

func (p *pendingQueue) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.items)
}

func (p *pendingQueue) full() bool { return p.len() >= p.g.cfg.MaxPending }

// add queues an item and starts the retry loop if it is not running. After
// close nothing retries it: the gateway is stopping, and says so.
func (p *pendingQueue) add(it pendingItem) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.items = append(p.items, it)
	if p.closed {
		p.g.cfg.Logger.Error("gateway stopped; a usage record the database did not take is lost", "event_id", it.ev.EventID)
		return
	}
	if !p.running {
		p.running = true
		p.done = make(chan struct{})
		go p.loop(p.done)
	}
}

// loop retries every RetryEvery until the queue is empty or closed.
func (p *pendingQueue) loop(done chan struct{}) {
	defer close(done)
	t := time.NewTimer(p.g.cfg.RetryEvery)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.flush(context.Background())
		p.mu.Lock()
		if len(p.items) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		t.Reset(p.g.cfg.RetryEvery)
	}
}

// flush tries every queued item once, in order; the items the database
// still cannot take stay queued, ahead of those added meanwhile.
func (p *pendingQueue) flush(ctx context.Context) {
	p.writing.Lock()
	defer p.writing.Unlock()
	p.mu.Lock()
	items := p.items
	p.items = nil
	p.mu.Unlock()
	var failed []pendingItem
	for i, it := range items {
		if err := p.write(ctx, it); err != nil {
			code := billing.ErrorCode(err)
			if code == billing.CodeInternal || code == billing.CodeUnavailable {
				// Still down: keep this and the rest for the next round.
				failed = append(failed, items[i:]...)
				break
			}
			p.g.cfg.Logger.Error("gateway pending record refused", "event_id", it.ev.EventID, "error", err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.items = append(failed, p.items...)
}

// write records one item. A reservation that can no longer be settled (it
// expired or was released while the database was away) has its event
// recorded directly, still under its own event id, so it counts once.
func (p *pendingQueue) write(ctx context.Context, it pendingItem) error {
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	if it.rsvID != "" {
		_, err := p.g.meter.Settle(ctx, it.rsvID, it.ev)
		switch billing.ErrorCode(err) {
		case "":
			return nil
		case billing.CodeNotFound, billing.CodeConflict:
		default:
			return err
		}
	}
	_, err := p.g.meter.Record(ctx, []billing.UsageEvent{it.ev})
	return err
}

// close stops the loop and makes one last attempt to write what waits.
func (p *pendingQueue) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.stop)
	done := p.done
	running := p.running
	p.mu.Unlock()
	if running {
		<-done
	}
	p.flush(context.Background())
	if n := p.len(); n > 0 {
		p.g.cfg.Logger.Error("gateway stopped with usage records the database never took", "count", n)
	}
}
