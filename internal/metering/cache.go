package metering

import (
	"context"
	"sync"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// lookups caches the reads every batch and admission repeats but that
// rarely change: the provider list, and that a user is known (a user who
// has a key or a subscription stays known). Expiry uses the real clock, not
// the meter's, so an injected test clock cannot freeze an entry forever.
type lookups struct {
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

const lookupTTL = 10 * time.Second

// providers returns the known providers, read at most every TTL.
func (m *Meter) providers(ctx context.Context) ([]billing.Provider, error) {
	c := &m.cache
	c.mu.Lock()
	if c.providers != nil && time.Since(c.providersAt) < lookupTTL {
		p := c.providers
		c.mu.Unlock()
		return p, nil
	}
	c.mu.Unlock()
	p, err := m.db.ListProviders(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.providers, c.providersAt = p, time.Now()
	c.mu.Unlock()
	return p, nil
}

// userKnown reports whether a user has a key or a subscription; only
// positive answers are cached, so a new user is known at once.
func (m *Meter) userKnown(ctx context.Context, userID string) (bool, error) {
	c := &m.cache
	c.mu.Lock()
	at, ok := c.known[userID]
	c.mu.Unlock()
	if ok && time.Since(at) < lookupTTL {
		return true, nil
	}
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

// account returns a user's plan and period schedule, cached.
func (m *Meter) account(ctx context.Context, userID string) (account, error) {
	c := &m.cache
	v := m.db.AccountsVersion()
	c.mu.Lock()
	ca, ok := c.accounts[userID]
	c.mu.Unlock()
	if ok && ca.version == v && time.Since(ca.at) < accountTTL {
		return ca.acct, nil
	}
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
