package gateway

import (
	"log/slog"
	"time"
)

// Upstream is one provider's API as the gateway reaches it.
type Upstream struct {
	// BaseURL is where the provider's routes hang, e.g.
	// https://api.openai.com/v1 or https://api.anthropic.com.
	BaseURL string
	// Key is the server-held provider key; it never reaches a client or a
	// log.
	Key string
}

// Config configures the gateway. Zero values take the defaults below.
type Config struct {
	// Upstreams maps a provider (openai, anthropic, gemini, mistral) to its
	// upstream; a provider missing here uses DefaultBaseURLs and no key.
	Upstreams map[string]Upstream
	// ConnectTimeout bounds connecting to an upstream (default 10 s).
	ConnectTimeout time.Duration
	// ReadTimeout bounds the wait for the upstream's response headers and
	// then for each read of its body (default 10 min: reasoning models can
	// think a long time before their first byte).
	ReadTimeout time.Duration
	// MaxBodyBytes bounds a client's request body (default 32 MiB).
	MaxBodyBytes int64
	// DefaultMaxTokens is the output estimate reserved for a request that
	// names no maximum (default 4096).
	DefaultMaxTokens int64
	// FailOpen forwards calls while the database is unreachable and
	// records them once it returns; by default such calls are refused with
	// 503 and Retry-After.
	FailOpen bool
	// AdmissionTimeout bounds a reservation, and the database lookup of a
	// key the cache does not hold (default 5 s each), so an unreachable
	// database answers 503 instead of hanging the client.
	AdmissionTimeout time.Duration
	// DrainTimeout and DrainBytes bound how long and how much the gateway
	// keeps reading an upstream stream after its client went away, to
	// learn the usage the provider bills (defaults 2 min, 64 MiB).
	DrainTimeout time.Duration
	DrainBytes   int64
	// MaxBufferedResponse bounds a non-streaming response held to read its
	// usage and put its cost in a header (default 32 MiB); a larger one is
	// relayed as it arrives.
	MaxBufferedResponse int64
	// MaxPending bounds usage records waiting for the database to return
	// (fail-open and failed settles); past it, fail-open calls are refused
	// rather than records dropped (default 100,000).
	MaxPending int
	// KeyCacheTTL is how long a key that resolved is trusted without a
	// database lookup (default 2 s; negative turns the cache off): a
	// revoked key stops working on the gateway within it.
	KeyCacheTTL time.Duration
	// StaleKeyMaxAge is how long after the database last confirmed a key
	// the gateway still accepts it while the database cannot be reached,
	// under FailOpen only (default 24 h). Without FailOpen, or for a key
	// this process never verified (or verified longer ago), a call whose
	// key cannot be looked up is refused with 503 and Retry-After. A key
	// revoked during an outage keeps working until the database returns,
	// then stops within KeyCacheTTL. With the key cache off no key is
	// remembered, so none is accepted during an outage.
	StaleKeyMaxAge time.Duration
	// MaxBackgroundSettles bounds the calls being recorded after their
	// client was answered (default 256). Past it a call is recorded
	// before its response completes: back-pressure, never an unbounded
	// number of goroutines. It is what keeps the gateway from answering
	// faster than the ledger commits when admission costs nothing (SQLite,
	// PostgreSQL leases): at 1,024 the backlog's goroutines and records
	// kept the collector busy under the soft memory limit, and the
	// PostgreSQL gateway served half as many calls (docs/BENCHMARKS.md).
	// On SQLite, whose commits keep up, the server sets 1024.
	MaxBackgroundSettles int
	// RetryEvery is how often pending records are retried (default 2 s).
	RetryEvery time.Duration
	Logger     *slog.Logger
	Now        func() time.Time
}

// DefaultBaseURLs are the providers' public APIs.
var DefaultBaseURLs = map[string]string{
	"openai":    "https://api.openai.com/v1",
	"anthropic": "https://api.anthropic.com",
	"gemini":    "https://generativelanguage.googleapis.com",
	"mistral":   "https://api.mistral.ai/v1",
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ConnectTimeout, 10*time.Second)
	def(&c.ReadTimeout, 10*time.Minute)
	def(&c.AdmissionTimeout, 5*time.Second)
	def(&c.DrainTimeout, 2*time.Minute)
	def(&c.RetryEvery, 2*time.Second)
	def(&c.StaleKeyMaxAge, 24*time.Hour)
	if c.KeyCacheTTL == 0 {
		c.KeyCacheTTL = 2 * time.Second
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 32 << 20
	}
	if c.DefaultMaxTokens <= 0 {
		c.DefaultMaxTokens = 4096
	}
	if c.DrainBytes <= 0 {
		c.DrainBytes = 64 << 20
	}
	if c.MaxBufferedResponse <= 0 {
		c.MaxBufferedResponse = 32 << 20
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 100_000
	}
	if c.MaxBackgroundSettles <= 0 {
		c.MaxBackgroundSettles = 256
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	ups := make(map[string]Upstream, len(DefaultBaseURLs))
	for p, u := range DefaultBaseURLs {
		ups[p] = Upstream{BaseURL: u}
	}
	for p, u := range c.Upstreams {
		if u.BaseURL == "" {
			u.BaseURL = DefaultBaseURLs[p]
		}
		ups[p] = u
	}
	c.Upstreams = ups
	return c
}
