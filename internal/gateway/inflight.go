package gateway

import (
	"context"
	"fmt"
	"sync"
)

// inflight counts the calls whose usage the gateway still owes the ledger,
// from their admission until their record is written or queued as pending,
// and bounds the records written in the background, after the client was
// answered.
type inflight struct {
	slots chan struct{} // one per record written in the background

	mu     sync.Mutex
	owed   int
	idle   chan struct{} // closed while owed is 0
	closed bool          // no more background records: they are written inline
}

func newInflight(background int) *inflight {
	idle := make(chan struct{})
	close(idle)
	return &inflight{slots: make(chan struct{}, background), idle: idle}
}

// add counts one more call that owes a record.
func (f *inflight) add() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.owed == 0 {
		f.idle = make(chan struct{})
	}
	f.owed++
}

// done counts one call's record as written (or queued).
func (f *inflight) done() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.owed--
	if f.owed == 0 {
		close(f.idle)
	}
}

// background takes a slot for a record written in the background; it
// reports false when every slot is taken or the gateway is closing, and
// the caller then writes the record itself.
func (f *inflight) background() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	select {
	case f.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// backgroundDone gives back the slot of a background record once it is
// written and counts it done.
func (f *inflight) backgroundDone() {
	<-f.slots
	f.done()
}

// close makes every later record inline.
func (f *inflight) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
}

// wait returns once no call owes a record, or with an error when ctx ends
// first.
func (f *inflight) wait(ctx context.Context) error {
	f.mu.Lock()
	idle := f.idle
	f.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
	}
	f.mu.Lock()
	owed := f.owed
	f.mu.Unlock()
	if owed == 0 {
		return nil
	}
	return fmt.Errorf("%d gateway calls not yet recorded: %w", owed, ctx.Err())
}
