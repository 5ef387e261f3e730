package gateway

import (
	"context"
	"sync"
	"time"
)

// lazyDeadline is context.WithTimeout for calls that usually finish
// without waiting on anything: the meter's reservation and quote, answered
// from memory unless the database must be asked. It has the deadline and
// ends like a context made by context.WithDeadline, but it starts that
// context, and its timer, only once something needs it (Done, a context
// derived from it, or Err once it has ended): a call that never waits
// costs no timer.
//
// A timer costs more than its allocation on a lightly loaded gateway: one
// that is due before every timer already set wakes the thread sleeping in
// the network poller (a write to its wake-up descriptor, a context switch)
// so that it sleeps less, on the path of the response.
type lazyDeadline struct {
	parent   context.Context
	deadline time.Time

	mu       sync.Mutex
	ctx      context.Context // context.WithDeadline(parent, deadline), once needed
	cancel   context.CancelFunc
	released bool
}

// withLazyTimeout returns a context that ends d from now or when parent
// ends, and the function that releases it, to call once the call is over
// (as with context.WithTimeout).
func withLazyTimeout(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	c := &lazyDeadline{parent: parent, deadline: time.Now().Add(d)}
	return c, c.release
}

// timed returns the context that does the work, starting it on first use.
// After release it is started cancelled, as a released context is.
func (c *lazyDeadline) timed() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		c.ctx, c.cancel = context.WithDeadline(c.parent, c.deadline)
		if c.released {
			c.cancel()
		}
	}
	return c.ctx
}

// started returns the context if it was started, else nil.
func (c *lazyDeadline) started() (ctx context.Context, released bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ctx, c.released
}

func (c *lazyDeadline) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.released = true
	if c.cancel != nil {
		c.cancel()
	}
}

func (c *lazyDeadline) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *lazyDeadline) Done() <-chan struct{} { return c.timed().Done() }

// Err answers nil without starting anything while the context is live;
// once it has ended (its parent did, its deadline passed, or it was
// released), the started context answers, so that Err keeps its first
// answer and agrees with Done.
func (c *lazyDeadline) Err() error {
	ctx, released := c.started()
	if ctx == nil && !released && c.parent.Err() == nil && time.Now().Before(c.deadline) {
		return nil
	}
	return c.timed().Err()
}

// Value is the parent's, or once started the started context's, whose
// cancellation its own derived contexts then join directly (as
// context.Cause and context.WithCancel find it through Value).
func (c *lazyDeadline) Value(key any) any {
	if ctx, _ := c.started(); ctx != nil {
		return ctx.Value(key)
	}
	return c.parent.Value(key)
}
