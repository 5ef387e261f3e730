package gateway

import (
	"crypto/sha256"
	"net/http"
	"sync"
	"time"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
)

// keyCache remembers keys that resolved, for KeyCacheTTL, so that a call
// does not pay a database lookup for its key. Only successes are kept (a
// wrong key is looked up every time), keyed by the key's hash, so a revoked
// key stops working on the gateway within the TTL.
type keyCache struct {
	mu  sync.Mutex
	ttl time.Duration
	m   map[[sha256.Size]byte]cachedKey
}

type cachedKey struct {
	p       billing.Principal
	expires time.Time
}

// maxCachedKeys bounds the cache; past it the cache starts over.
const maxCachedKeys = 10_000

// principal resolves the request's key through the cache.
func (g *Gateway) principal(r *http.Request) (billing.Principal, error) {
	c := &g.keys
	key := auth.GatewayKey(r)
	if key == "" || c.ttl <= 0 {
		return g.auth.GatewayPrincipal(r)
	}
	sum := sha256.Sum256([]byte(key))
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[sum]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.p, nil
	}
	p, err := g.auth.GatewayPrincipal(r)
	if err != nil {
		return p, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedKeys {
		c.m = map[[sha256.Size]byte]cachedKey{}
	}
	c.m[sum] = cachedKey{p: p, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return p, nil
}
