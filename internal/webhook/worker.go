package webhook

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Store is what the worker needs of storage.
type Store interface {
	// ClaimWebhookDeliveries leases up to limit pending deliveries that are
	// due at now and not leased by another worker, until leaseUntil, and
	// counts an attempt for each. No delivery is held by two claims at
	// once, across processes sharing the database.
	ClaimWebhookDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]Job, error)
	// FinishWebhookAttempt records an attempt and its outcome, and ends the
	// lease. It returns ErrLeaseLost (having recorded the attempt) when the
	// lease was no longer the caller's.
	FinishWebhookAttempt(ctx context.Context, r Result) error
	// PruneWebhooks deletes deliveries that ended before before, their
	// attempts and the events left without deliveries.
	PruneWebhooks(ctx context.Context, before time.Time) (int64, error)
}

// ErrLeaseLost means a delivery's lease ran out before its attempt was
// recorded, so another worker may have claimed it.
var ErrLeaseLost = errors.New("webhook delivery lease lost")

// Config configures a Worker. Zero values take the defaults.
type Config struct {
	Store Store
	// Client sends deliveries; by default one that never follows
	// redirects (a 3xx is a failed attempt).
	Client *http.Client
	// Now is the clock; every time the worker stores comes from it.
	Now func() time.Time
	// Interval is how often Run looks for due deliveries (default 2 s).
	Interval time.Duration
	// Timeout bounds one attempt (default 10 s).
	Timeout time.Duration
	// Lease is how long a claim holds its deliveries (default 2 min). It
	// must cover sending the whole batch, Parallel at a time, each up to
	// Timeout, with room to record the outcomes, or another worker could
	// send an attempt while this one still waits for it; New raises it to
	// that.
	Lease time.Duration
	// Batch is how many deliveries one claim takes (default 20) and
	// Parallel how many are sent at once (default 4).
	Batch    int
	Parallel int
	Backoff  Backoff
	Logger   *slog.Logger
	// Jitter returns a uniform value in [0, 1) (default math/rand/v2).
	Jitter func() float64
	// Retention is how long ended deliveries and their attempts are kept
	// (default 30 days); Run prunes older ones hourly.
	Retention time.Duration
}

// Worker sends due deliveries.
type Worker struct {
	cfg   Config
	nudge chan struct{}
}

// New returns a worker for cfg.
func New(cfg Config) *Worker {
	if cfg.Client == nil {
		cfg.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 20
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 4
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 2 * time.Minute
	}
	rounds := time.Duration((cfg.Batch + cfg.Parallel - 1) / cfg.Parallel)
	if least := rounds*cfg.Timeout + 30*time.Second; cfg.Lease < least {
		cfg.Lease = least
	}
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 30 * 24 * time.Hour
	}
	return &Worker{cfg: cfg, nudge: make(chan struct{}, 1)}
}

// Nudge makes a running worker look for due deliveries now rather than at
// its next tick (after an event was enqueued, for example).
func (w *Worker) Nudge() {
	select {
	case w.nudge <- struct{}{}:
	default:
	}
}

// Run sends due deliveries until ctx ends, looking every Interval and
// when nudged. An attempt in flight when ctx ends is recorded as
// interrupted and retried at once (by this or another process).
func (w *Worker) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	var pruned time.Time
	for {
		if now := w.cfg.Now(); now.Sub(pruned) >= time.Hour {
			pruned = now
			if _, err := w.Prune(ctx); err != nil && ctx.Err() == nil {
				w.cfg.Logger.WarnContext(ctx, "prune webhook deliveries", "error", err)
			}
		}
		for ctx.Err() == nil {
			n, err := w.RunOnce(ctx)
			if err != nil {
				if ctx.Err() == nil {
					w.cfg.Logger.WarnContext(ctx, "webhook deliveries", "error", err)
				}
				break
			}
			if n < w.cfg.Batch {
				break // nothing more is due now
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.nudge:
		}
	}
}

// Prune deletes the deliveries that ended more than Retention ago.
func (w *Worker) Prune(ctx context.Context) (int64, error) {
	return w.cfg.Store.PruneWebhooks(ctx, w.cfg.Now().Add(-w.cfg.Retention))
}

// RunOnce claims one batch of due deliveries, sends them and records the
// outcomes. It returns how many it claimed.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	now := w.cfg.Now()
	jobs, err := w.cfg.Store.ClaimWebhookDeliveries(ctx, now, now.Add(w.cfg.Lease), w.cfg.Batch)
	if err != nil || len(jobs) == 0 {
		return 0, err
	}
	sem := make(chan struct{}, w.cfg.Parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := w.attempt(ctx, j); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return len(jobs), errors.Join(errs...)
}

// attempt sends one claimed delivery and records the outcome.
func (w *Worker) attempt(ctx context.Context, j Job) error {
	started := w.cfg.Now()
	status, sendErr := w.send(ctx, j, started)
	finished := w.cfg.Now()
	r := Result{DeliveryID: j.DeliveryID, Token: j.Token, Attempt: Attempt{Number: j.Attempt, AttemptedAt: started,
		StatusCode: status, Duration: finished.Sub(started)}}
	switch {
	case sendErr == nil && status >= 200 && status < 300:
		r.Delivered = true
	case ctx.Err() != nil:
		// Stopping is not the endpoint's failure: retry without backoff.
		r.Attempt.Error = "interrupted: the delivery worker stopped"
		r.NextAttemptAt = &finished
	default:
		r.Attempt.Error = describe(status, sendErr)
		if next, ok := w.cfg.Backoff.Next(j.Attempt, j.EventCreatedAt, finished, w.cfg.Jitter()); ok {
			r.NextAttemptAt = &next
		}
	}
	// The outcome is recorded even while stopping, so that the lease does
	// not have to run out before the delivery is retried.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := w.cfg.Store.FinishWebhookAttempt(rctx, r)
	log := w.cfg.Logger.With("event_id", j.EventID, "event_type", j.EventType, "endpoint_id", j.EndpointID, "attempt", j.Attempt)
	switch {
	case errors.Is(err, ErrLeaseLost):
		log.WarnContext(ctx, "webhook delivery outlived its lease; another worker may retry it")
		return nil
	case err != nil:
		return err
	case r.Delivered:
		log.DebugContext(ctx, "webhook delivered", "status", status)
	case r.NextAttemptAt == nil:
		log.WarnContext(ctx, "webhook delivery failed for good", "status", status, "error", r.Attempt.Error)
	default:
		log.InfoContext(ctx, "webhook delivery failed; will retry", "status", status, "error", r.Attempt.Error,
			"next_attempt_at", r.NextAttemptAt.UTC().Format(time.RFC3339))
	}
	return nil
}
