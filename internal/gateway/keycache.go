package gateway

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
)

// keyCache remembers keys that resolved, for KeyCacheTTL, so that a call
// does not pay a database lookup for its key. Only successes are kept (a
// wrong key is looked up every time), keyed by the key's hash, so a revoked
// key stops working on the gateway within the TTL while the database
// answers.
//
// While the database cannot be reached, and only under FailOpen, an entry
// past its TTL is still served for up to StaleKeyMaxAge after the database
// last confirmed it ("stale on error"): fail-open exists to keep users'
// calls going through an outage, and a key this process verified minutes
// ago is far likelier valid than not. A key never verified here is never
// let through: it is refused with 503, as it cannot be checked.
type keyCache struct {
	mu  sync.Mutex
	ttl time.Duration
	m   map[[sha256.Size]byte]cachedKey
}

type cachedKey struct {
	p billing.Principal
	// expires is when the key must next be looked up.
	expires time.Time
	// verified is when the database last confirmed the key, which bounds
	// how long it is served stale.
	verified time.Time
}

// maxCachedKeys bounds the cache; past it the entries no longer of use are
// dropped, and if that frees nothing the cache starts over.
const maxCachedKeys = 10_000

// errKeyUnverifiable is returned by principal when the key could not be
// looked up (the database did not answer, or failed) and no verified copy
// may stand in for it. The caller refuses with 503 and Retry-After, the
// answer to any other database outage.
var errKeyUnverifiable = errors.New("the API key could not be looked up")

// principal resolves the request's key through the cache. Errors:
// unauthorized (the key is missing, malformed, unknown or revoked), or one
// wrapping errKeyUnverifiable.
func (g *Gateway) principal(r *http.Request) (billing.Principal, error) {
	c := &g.keys
	key := auth.GatewayKey(r)
	if key == "" {
		// No key: nothing to look up (an error, or loopback admin in dev).
		return g.auth.GatewayPrincipal(r)
	}
	if c.ttl <= 0 {
		return g.lookup(r)
	}
	sum := sha256.Sum256([]byte(key))
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[sum]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.p, nil
	}
	p, err := g.lookup(r)
	switch {
	case err == nil:
		c.put(sum, cachedKey{p: p, expires: now.Add(c.ttl), verified: now})
		return p, nil
	case !errors.Is(err, errKeyUnverifiable):
		// The database answered that the key is not (or no longer) valid.
		if ok {
			c.mu.Lock()
			delete(c.m, sum)
			c.mu.Unlock()
		}
		return p, err
	case ok && g.cfg.FailOpen && now.Sub(e.verified) < g.cfg.StaleKeyMaxAge:
		// Stale on error. The next lookup waits for another TTL, so that
		// an outage does not add a lookup (up to AdmissionTimeout against
		// a database that hangs) to every call of the key; once the
		// database answers again the key is checked within the TTL, as
		// always.
		g.cfg.Logger.Warn("gateway key lookup failed; accepting the key as verified earlier (fail-open)",
			"user", e.p.UserID, "verified_ago", now.Sub(e.verified).Round(time.Second), "error", err)
		e.expires = now.Add(c.ttl)
		c.put(sum, e)
		return e.p, nil
	default:
		return p, err
	}
}

// lookup resolves the request's key in the database, bounded by the
// admission timeout: an unreachable database must be answered with 503, not
// hang the client. Errors: unauthorized, or one wrapping errKeyUnverifiable.
func (g *Gateway) lookup(r *http.Request) (billing.Principal, error) {
	ctx, cancel := withLazyTimeout(r.Context(), g.cfg.AdmissionTimeout)
	defer cancel()
	p, err := g.auth.GatewayPrincipal(r.WithContext(ctx))
	switch billing.ErrorCode(err) {
	case "", billing.CodeUnauthorized, billing.CodeForbidden, billing.CodeInvalid:
		return p, err
	default:
		// Anything else is the database failing to answer, not an answer
		// about the key. The error never carries the key: the store's
		// errors name neither it nor its prefix.
		return billing.Principal{}, fmt.Errorf("%w: %w", errKeyUnverifiable, err)
	}
}

// put stores an entry, making room first when the cache is full.
func (c *keyCache) put(sum [sha256.Size]byte, e cachedKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[[sha256.Size]byte]cachedKey{}
	}
	if _, ok := c.m[sum]; !ok && len(c.m) >= maxCachedKeys {
		// Entries past their TTL stay only for stale-on-error: drop
		// those not verified within the last TTL (a key in use is
		// verified again every TTL), and start over if that frees
		// nothing.
		cutoff := e.verified.Add(-c.ttl)
		for k, old := range c.m {
			if old.verified.Before(cutoff) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCachedKeys {
			c.m = map[[sha256.Size]byte]cachedKey{}
		}
	}
	c.m[sum] = e
}
