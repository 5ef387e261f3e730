package metering

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// lookups caches the reads every batch and admission repeats but that
// rarely change: the provider list, and that a user is known (a user who
// has a key or a subscription stays known). Expiry uses the real clock, not
// the meter's, so an injected test clock cannot freeze an entry forever.
type lookups struct {
	// reads shares one database read among the callers that miss the
	// same entry at once: when an entry expires under load, every
	// concurrent call would otherwise read it, and the reads queue for
	// the few connections of the read pool (in-memory admissions waited
	// up to 16 ms for one).
	reads singleflight.Group

	mu          sync.Mutex
	providers   []billing.Provider
	providersAt time.Time
	known       map[string]time.Time
	accounts    map[string]cachedAccount
}

// cachedAccount is a user's plan as read at a time and accounts version.
type cachedAccount struct {
	acct    account
	version int64
	at      time.Time
}

// accountTTL bounds how long a cached plan is used without reading it
// again; writes by this process invalidate it at once (AccountsVersion),
// so only another process's change (a CLI command) waits for the TTL.
const accountTTL = time.Second

// accountGrace is how long past accountTTL a plan is still used while it
// is read again in the background, so that another process's plan change
// reaches this one within accountTTL plus one read, and the calls of a
// busy user never wait for that read.
const accountGrace = time.Second

const lookupTTL = 10 * time.Second

// providers returns the known providers, read at most every TTL.
func (m *Meter) providers(ctx context.Context) ([]billing.Provider, error) {
	c := &m.cache
	c.mu.Lock()
	p, age := c.providers, time.Since(c.providersAt)
	c.mu.Unlock()
	if p != nil && age < lookupTTL {
		return p, nil // before the read below is built: this is every call
	}
	read := func(ctx context.Context) ([]billing.Provider, error) {
		p, err := m.db.ListProviders(ctx)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.providers, c.providersAt = p, time.Now()
		c.mu.Unlock()
		return p, nil
	}
	if p != nil && age < staleFor*lookupTTL {
		refresh(ctx, c, "providers", read)
		return p, nil
	}
	return shared(ctx, c, "providers", read)
}

// staleFor is how many TTLs past its expiry an entry is still answered
// while a read refreshes it in the background: a hot entry never makes a
// caller wait for the database, and one unused for that long is read
// again first.
const staleFor = 10

// refresh reads key in the background unless a read of it is under way;
// the read updates the cache. A read that fails changes nothing: the
// entry ages past its grace and the next caller reads it itself, and gets
// the error.
func refresh[T any](ctx context.Context, c *lookups, key string, read func(context.Context) (T, error)) {
	c.reads.DoChan(key, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedReadTimeout)
		defer cancel()
		return read(rctx)
	})
}

// sharedReadTimeout bounds a read that several callers share: it runs
// without any one caller's cancellation, each of whom stops waiting when
// its own context ends.
const sharedReadTimeout = 30 * time.Second

// shared runs read once for all the callers asking for key at the same
// time.
func shared[T any](ctx context.Context, c *lookups, key string, read func(context.Context) (T, error)) (T, error) {
	ch := c.reads.DoChan(key, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedReadTimeout)
		defer cancel()
		return read(rctx)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			var zero T
			return zero, r.Err
		}
		return r.Val.(T), nil
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// userKnown reports whether a user has a key or a subscription; only
// positive answers are cached, so a new user is known at once.
func (m *Meter) userKnown(ctx context.Context, userID string) (bool, error) {
	c := &m.cache
	c.mu.Lock()
	at, ok := c.known[userID]
	c.mu.Unlock()
	age := time.Since(at)
	if ok && age < lookupTTL {
		return true, nil
	}
	read := func(ctx context.Context) (bool, error) {
		known, err := m.db.UserKnown(ctx, userID)
		if err != nil || !known {
			return known, err
		}
		c.mu.Lock()
		if c.known == nil || len(c.known) > 100_000 {
			c.known = map[string]time.Time{}
		}
		c.known[userID] = time.Now()
		c.mu.Unlock()
		return true, nil
	}
	key := "known\x00" + userID
	if ok && age < staleFor*lookupTTL {
		refresh(ctx, c, key, read)
		return true, nil
	}
	return shared(ctx, c, key, read)
}

// account returns a user's plan and period schedule, cached.
func (m *Meter) account(ctx context.Context, userID string) (account, error) {
	c := &m.cache
	v := m.db.AccountsVersion()
	c.mu.Lock()
	ca, ok := c.accounts[userID]
	c.mu.Unlock()
	ok = ok && ca.version == v
	age := time.Since(ca.at)
	if ok && age < accountTTL {
		return ca.acct, nil
	}
	read := func(ctx context.Context) (account, error) {
		a, err := m.readAccount(ctx, userID)
		if err != nil {
			return a, err
		}
		c.mu.Lock()
		if c.accounts == nil || len(c.accounts) > 100_000 {
			c.accounts = map[string]cachedAccount{}
		}
		c.accounts[userID] = cachedAccount{acct: a, version: v, at: time.Now()}
		c.mu.Unlock()
		return a, nil
	}
	// The key carries the version: a caller who saw a newer one (a write
	// of this process since) does not take a read begun before it.
	key := fmt.Sprintf("account\x00%d\x00%s", v, userID)
	if ok && age < accountTTL+accountGrace {
		refresh(ctx, c, key, read)
		return ca.acct, nil
	}
	return shared(ctx, c, key, read)
}
