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
}

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
