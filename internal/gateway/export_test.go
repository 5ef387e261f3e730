package gateway

import "context"

// RetryPending makes the pending queue's retry pass now, as its loop does
// every RetryEvery, and returns once the pass is over.
func RetryPending(g *Gateway) { g.pending.flush(context.Background()) }
