// Package app wires alwrity-billing together: configuration, the store, the
// HTTP server and start-up, once, so the binary and end-to-end tests start
// the very same thing.
package app

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"

	"github.com/alwrity/alwrity-billing/internal/gateway"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// Config is the service configuration: defaults, then the environment
// (and .env), then flags.
type Config struct {
	DatabaseURL string
	Host        string
	Port        int
	Debug       bool
	// Dev gives readable debug logs and lets key-less requests from loopback
	// act as admin.
	Dev bool
	// AdminKey is ALWRITY_ADMIN_KEY; when empty outside Dev, a key is
	// generated at first start and only its hash is stored.
	AdminKey string
	// SessionSecret signs the dashboard's session cookies
	// (ALWRITY_SESSION_SECRET, at least 32 characters). When empty, each
	// process draws a random one: sessions end on restart and replicas do
	// not share them.
	SessionSecret string
	// ProviderKeys maps a provider to the server-held key for its API
	// (OPENAI_API_KEY, …), used by the gateway.
	ProviderKeys    map[string]string
	ShutdownTimeout time.Duration

	// GatewayBaseURLs maps a provider to the upstream base URL the LLM
	// gateway forwards to (ALWRITY_OPENAI_BASE_URL, …); unset providers use
	// the provider's public API.
	GatewayBaseURLs map[string]string
	// GatewayConnectTimeout bounds connecting to a provider
	// (ALWRITY_GATEWAY_CONNECT_TIMEOUT).
	GatewayConnectTimeout time.Duration
	// GatewayReadTimeout bounds the wait for a provider's response headers
	// and then for each read of its body (ALWRITY_GATEWAY_READ_TIMEOUT).
	GatewayReadTimeout time.Duration
	// GatewayMaxBodyBytes bounds a gateway request body
	// (ALWRITY_GATEWAY_MAX_BODY_BYTES).
	GatewayMaxBodyBytes int64
	// GatewayDefaultMaxTokens is the output reserved for a request that
	// names no maximum (ALWRITY_GATEWAY_DEFAULT_MAX_TOKENS).
	GatewayDefaultMaxTokens int64
	// FailOpen lets gateway calls through while the database is
	// unreachable, recording them when it returns (ALWRITY_FAIL_OPEN);
	// by default they are refused with 503 and Retry-After.
	FailOpen bool
	// FailOpenKeyMaxAge is how long after the database last confirmed a
	// key the gateway keeps accepting it while the database cannot be
	// reached, under FailOpen (ALWRITY_FAIL_OPEN_KEY_MAX_AGE).
	FailOpenKeyMaxAge time.Duration

	// HealthErrorRate is the percentage of a provider's calls over the last
	// HealthWindow that failed which raises a system_health alert, once at
	// least HealthMinCalls calls were made in the window
	// (ALWRITY_HEALTH_ERROR_RATE, ALWRITY_HEALTH_WINDOW,
	// ALWRITY_HEALTH_MIN_CALLS; 20 %, 5 minutes and 20 calls by default).
	HealthErrorRate int64
	HealthWindow    time.Duration
	HealthMinCalls  int64

	// WebhookInterval is how often the webhook worker looks for due
	// deliveries (ALWRITY_WEBHOOK_INTERVAL); WebhookTimeout bounds one
	// delivery attempt (ALWRITY_WEBHOOK_TIMEOUT). Zero takes the worker's
	// defaults, 2 s and 10 s.
	WebhookInterval time.Duration
	WebhookTimeout  time.Duration

	// InvoiceReview keeps the invoices a period close writes as drafts for
	// this long before they are issued (ALWRITY_INVOICE_REVIEW); zero
	// issues them at once.
	InvoiceReview time.Duration

	// ReservationRetention is how long finished reservations are kept
	// before the server deletes them (ALWRITY_RESERVATION_RETENTION); at
	// least store.ReservationRetention (35 days), so that a resent settle
	// still finds its reservation for as long as events are idempotent.
	// Zero takes that minimum.
	ReservationRetention time.Duration

	// CORSOrigins are the web origins (scheme://host[:port]) whose pages
	// may call the API and the gateway from a browser, as ALwrity's
	// frontend does from its own origin (ALWRITY_CORS_ORIGINS,
	// comma-separated; "*" for any origin; one "*" inside an origin
	// matches any characters, as in https://*.example.com). Empty, the
	// default: no cross-origin reads. Keys travel in headers, never in
	// cookies, so no credentials are allowed cross-origin: the dashboard's
	// session cookie stays same-origin.
	CORSOrigins []string

	// MemoryLimit is the soft limit, in bytes, on the memory of the Go
	// runtime that serve sets when GOMEMLIMIT is not set
	// (ALWRITY_MEMORY_LIMIT, --memory-limit); zero sets none. The garbage
	// collector works harder as the heap nears it, instead of letting the
	// heap double between collections.
	MemoryLimit int64
}

// DefaultMemoryLimit is MemoryLimit's default: room for the gateway's
// working set at thousands of calls a second, with the process's peak
// resident memory (SQLite's page caches included) under 64 MB. At 40 MiB
// the peak reached 64.2 MB at 8,000 calls a second (ledger commits of 55
// events); at 32 MiB it was 56.7–57.3 MB with the same throughput and CPU
// per call (docs/BENCHMARKS.md).
const DefaultMemoryLimit = 32 << 20

// minMemoryLimit is the smallest soft memory limit accepted: below it the
// collector would run nearly all the time.
const minMemoryLimit = 16 << 20

// gatewayBaseURLVars name the gateway's upstream base URL variables.
var gatewayBaseURLVars = map[string]string{
	"openai":    "ALWRITY_OPENAI_BASE_URL",
	"anthropic": "ALWRITY_ANTHROPIC_BASE_URL",
	"gemini":    "ALWRITY_GEMINI_BASE_URL",
	"mistral":   "ALWRITY_MISTRAL_BASE_URL",
}

// providerKeyVars are the seed's provider key variables.
var providerKeyVars = map[string]string{
	"openai":    "OPENAI_API_KEY",
	"gemini":    "GEMINI_API_KEY",
	"anthropic": "ANTHROPIC_API_KEY",
	"mistral":   "MISTRAL_API_KEY",
}

// DefaultConfig returns the defaults of every setting.
func DefaultConfig() Config {
	return Config{
		DatabaseURL:     "sqlite:///./alwrity.db",
		Host:            "0.0.0.0",
		Port:            8000,
		ProviderKeys:    map[string]string{},
		ShutdownTimeout: 15 * time.Second,

		GatewayBaseURLs:         map[string]string{},
		GatewayConnectTimeout:   10 * time.Second,
		GatewayReadTimeout:      10 * time.Minute,
		FailOpenKeyMaxAge:       24 * time.Hour,
		GatewayMaxBodyBytes:     32 << 20,
		GatewayDefaultMaxTokens: 4096,

		HealthErrorRate: 20,
		HealthWindow:    5 * time.Minute,
		HealthMinCalls:  20,

		MemoryLimit: DefaultMemoryLimit,
	}
}

// ReadDotEnv returns the variables set in .env in the working directory,
// or none when there is no .env. It does not touch the process environment,
// so a caller's getenv stays the single source it layers the file under
// (see WithDotEnv).
func ReadDotEnv() (map[string]string, error) {
	if _, err := os.Stat(".env"); err != nil {
		return nil, nil
	}
	vars, err := godotenv.Read(".env")
	if err != nil {
		return nil, fmt.Errorf("read .env: %w", err)
	}
	return vars, nil
}

// WithDotEnv returns a getenv that answers from getenv first and falls back
// to dotenv, so variables set in the environment win over .env.
func WithDotEnv(getenv func(string) string, dotenv map[string]string) func(string) string {
	return func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return dotenv[name]
	}
}

// settingError is a problem with the value of one setting, named by its
// variable (a problem with NAME_FILE is NAME's), so that a command can leave
// out those of settings it does not use or its flags override (EnvProblems).
type settingError struct {
	name string
	err  error
}

func (e settingError) Error() string { return e.err.Error() }
func (e settingError) Unwrap() error { return e.err }

// settingErrorf returns a problem with the setting name.
func settingErrorf(name, format string, args ...any) error {
	return settingError{name: name, err: fmt.Errorf(format, args...)}
}

// flagSettings names the setting each flag of ServerFlags overrides.
var flagSettings = map[string]string{
	"database-url": "DATABASE_URL", "host": "HOST", "port": "PORT", "debug": "DEBUG", "memory-limit": "ALWRITY_MEMORY_LIMIT",
}

// EnvProblems returns the problems in err, as FromEnv reports them, that
// matter to a command: those of the settings named in uses (of every
// setting when uses is empty), less those of settings a flag parsed by fs
// overrides. Problems of no one setting, such as a .env that cannot be
// read, are kept.
func EnvProblems(err error, fs *flag.FlagSet, uses ...string) error {
	overridden := map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		if name, ok := flagSettings[f.Name]; ok {
			overridden[name] = true
		}
	})
	var keep []error
	var walk func(error)
	walk = func(err error) {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range joined.Unwrap() {
				walk(e)
			}
			return
		}
		var s settingError
		if err == nil || errors.As(err, &s) && (overridden[s.name] || len(uses) > 0 && !slices.Contains(uses, s.name)) {
			return
		}
		keep = append(keep, err)
	}
	walk(err)
	return errors.Join(keep...)
}

// FromEnv fills c from environment variables looked up with getenv. A
// secret (DATABASE_URL, which may hold a password, among them) may instead
// come from a file named by NAME_FILE. Every problem is reported at once.
func (c *Config) FromEnv(getenv func(string) string) error {
	var errs []error
	secret := func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		if path := getenv(name + "_FILE"); path != "" {
			b, err := os.ReadFile(path)
			if err != nil {
				errs = append(errs, settingErrorf(name, "%s_FILE: %w", name, err))
				return ""
			}
			return strings.TrimSpace(string(b))
		}
		return ""
	}
	if v := secret("DATABASE_URL"); v != "" {
		c.DatabaseURL = v
	}
	if v := getenv("HOST"); v != "" {
		c.Host = v
	}
	if v := getenv("PORT"); v != "" {
		// A value that does not parse is reported and the default kept, so
		// Validate does not report a second, confusing problem for it.
		if p, err := strconv.Atoi(strings.TrimSpace(v)); err != nil {
			errs = append(errs, settingErrorf("PORT", "PORT must be a number, got %q", v))
		} else {
			c.Port = p
		}
	}
	if v := getenv("DEBUG"); v != "" {
		if b, err := strconv.ParseBool(strings.TrimSpace(v)); err != nil {
			errs = append(errs, settingErrorf("DEBUG", "DEBUG must be true or false, got %q", v))
		} else {
			c.Debug = b
		}
	}
	c.AdminKey = secret("ALWRITY_ADMIN_KEY")
	c.SessionSecret = secret("ALWRITY_SESSION_SECRET")
	for provider, name := range providerKeyVars {
		if v := secret(name); v != "" {
			c.ProviderKeys[provider] = v
		}
	}
	if c.ProviderKeys["gemini"] == "" {
		// Google's own SDKs read GOOGLE_API_KEY too.
		if v := secret("GOOGLE_API_KEY"); v != "" {
			c.ProviderKeys["gemini"] = v
		}
	}
	errs = append(errs, c.gatewayFromEnv(getenv))
	errs = append(errs, c.webhooksFromEnv(getenv))
	if v := strings.TrimSpace(getenv("ALWRITY_CORS_ORIGINS")); v != "" {
		c.CORSOrigins = nil
		for o := range strings.SplitSeq(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				c.CORSOrigins = append(c.CORSOrigins, o)
			}
		}
	}
	if v := strings.TrimSpace(getenv("ALWRITY_MEMORY_LIMIT")); v != "" {
		if n, err := parseByteSize(v); err != nil {
			errs = append(errs, settingErrorf("ALWRITY_MEMORY_LIMIT", "ALWRITY_MEMORY_LIMIT %w", err))
		} else {
			c.MemoryLimit = n
		}
	}
	return errors.Join(errs...)
}

// SoftMemoryLimit returns the soft memory limit serve should set: the
// configured one, unless it is zero or GOMEMLIMIT (which the Go runtime
// reads itself) is set.
func (c Config) SoftMemoryLimit(getenv func(string) string) (int64, bool) {
	if c.MemoryLimit <= 0 || strings.TrimSpace(getenv("GOMEMLIMIT")) != "" {
		return 0, false
	}
	return c.MemoryLimit, true
}

// byteUnits are the size suffixes parseByteSize accepts: GOMEMLIMIT's
// binary units and their decimal cousins.
var byteUnits = []struct {
	suffix string
	size   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// parseByteSize reads a size such as 48MiB, 64MB, 1GiB or 50000000 (bytes),
// the unit in any case; "0" and "off" are zero.
func parseByteSize(s string) (int64, error) {
	if strings.EqualFold(s, "off") {
		return 0, nil
	}
	num, size := s, int64(1)
	for _, u := range byteUnits {
		if len(s) > len(u.suffix) && strings.EqualFold(s[len(s)-len(u.suffix):], u.suffix) {
			num, size = strings.TrimSpace(s[:len(s)-len(u.suffix)]), u.size
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/size {
		return 0, fmt.Errorf("must be a size such as 48MiB, 64MB or a number of bytes (0 or off for none), got %q", s)
	}
	return n * size, nil
}

// formatByteSize writes n the way parseByteSize reads it back.
func formatByteSize(n int64) string {
	for _, u := range byteUnits[:4] {
		if n >= u.size && n%u.size == 0 && (u.suffix == "TiB" || n%(u.size<<10) != 0) {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// byteSizeFlag is a flag holding a byte size.
type byteSizeFlag struct{ n *int64 }

func (f byteSizeFlag) String() string {
	if f.n == nil {
		return "0"
	}
	return formatByteSize(*f.n)
}

func (f byteSizeFlag) Set(s string) error {
	n, err := parseByteSize(strings.TrimSpace(s))
	if err != nil {
		return err
	}
	*f.n = n
	return nil
}

// webhooksFromEnv reads the webhook worker's settings.
func (c *Config) webhooksFromEnv(getenv func(string) string) error {
	var errs []error
	for _, s := range []struct {
		name string
		dst  *time.Duration
	}{{"ALWRITY_WEBHOOK_INTERVAL", &c.WebhookInterval}, {"ALWRITY_WEBHOOK_TIMEOUT", &c.WebhookTimeout},
		{"ALWRITY_INVOICE_REVIEW", &c.InvoiceReview}, {"ALWRITY_RESERVATION_RETENTION", &c.ReservationRetention}} {
		if v := strings.TrimSpace(getenv(s.name)); v != "" {
			errs = append(errs, parseDuration(s.name, v, s.dst))
		}
	}
	return errors.Join(errs...)
}

// parseDuration reads v, the value of the setting name, into dst: a
// duration such as 30s, or a number of seconds.
func parseDuration(name, v string, dst *time.Duration) error {
	if d, err := time.ParseDuration(v); err == nil {
		*dst = d
		return nil
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(n) {
		return settingErrorf(name, "%s must be a duration such as 30s or a number of seconds, got %q", name, v)
	}
	// Converting a number of nanoseconds beyond int64 would wrap around.
	ns := n * float64(time.Second)
	if math.Abs(ns) >= math.MaxInt64 {
		return settingErrorf(name, "%s must be a duration under 2562047h (292 years), got %q", name, v)
	}
	*dst = time.Duration(ns)
	return nil
}

// gatewayFromEnv reads the LLM gateway's settings and those of the
// providers' health alerts.
func (c *Config) gatewayFromEnv(getenv func(string) string) error {
	var errs []error
	if c.GatewayBaseURLs == nil {
		c.GatewayBaseURLs = map[string]string{}
	}
	for provider, name := range gatewayBaseURLVars {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			c.GatewayBaseURLs[provider] = v
		}
	}
	duration := func(name string, dst *time.Duration) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			errs = append(errs, parseDuration(name, v, dst))
		}
	}
	integer := func(name string, dst *int64) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			*dst = n
		} else {
			errs = append(errs, settingErrorf(name, "%s must be a whole number, got %q", name, v))
		}
	}
	duration("ALWRITY_GATEWAY_CONNECT_TIMEOUT", &c.GatewayConnectTimeout)
	duration("ALWRITY_GATEWAY_READ_TIMEOUT", &c.GatewayReadTimeout)
	integer("ALWRITY_GATEWAY_MAX_BODY_BYTES", &c.GatewayMaxBodyBytes)
	integer("ALWRITY_GATEWAY_DEFAULT_MAX_TOKENS", &c.GatewayDefaultMaxTokens)
	duration("ALWRITY_FAIL_OPEN_KEY_MAX_AGE", &c.FailOpenKeyMaxAge)
	// The health of the providers the gateway (and any client) calls.
	integer("ALWRITY_HEALTH_ERROR_RATE", &c.HealthErrorRate)
	duration("ALWRITY_HEALTH_WINDOW", &c.HealthWindow)
	integer("ALWRITY_HEALTH_MIN_CALLS", &c.HealthMinCalls)
	if v := strings.TrimSpace(getenv("ALWRITY_FAIL_OPEN")); v != "" {
		if b, err := strconv.ParseBool(v); err != nil {
			errs = append(errs, settingErrorf("ALWRITY_FAIL_OPEN", "ALWRITY_FAIL_OPEN must be true or false, got %q", v))
		} else {
			c.FailOpen = b
		}
	}
	return errors.Join(errs...)
}

// GatewayConfig returns the LLM gateway's configuration.
func (c Config) GatewayConfig(logger *slog.Logger, now func() time.Time) gateway.Config {
	ups := map[string]gateway.Upstream{}
	for provider := range gatewayBaseURLVars {
		ups[provider] = gateway.Upstream{BaseURL: c.GatewayBaseURLs[provider], Key: c.ProviderKeys[provider]}
	}
	return gateway.Config{Upstreams: ups, ConnectTimeout: c.GatewayConnectTimeout, ReadTimeout: c.GatewayReadTimeout,
		MaxBodyBytes: c.GatewayMaxBodyBytes, DefaultMaxTokens: c.GatewayDefaultMaxTokens, FailOpen: c.FailOpen,
		StaleKeyMaxAge: c.FailOpenKeyMaxAge, Logger: logger, Now: now}
}

// validateGateway reports invalid LLM gateway settings.
func (c Config) validateGateway() []error {
	var errs []error
	for provider, raw := range c.GatewayBaseURLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			// The value is not echoed: a URL may carry credentials.
			errs = append(errs, fmt.Errorf("%s must be an http:// or https:// URL without credentials", gatewayBaseURLVars[provider]))
		}
	}
	if c.GatewayConnectTimeout <= 0 {
		errs = append(errs, errors.New("ALWRITY_GATEWAY_CONNECT_TIMEOUT must be positive"))
	}
	if c.GatewayReadTimeout <= 0 {
		errs = append(errs, errors.New("ALWRITY_GATEWAY_READ_TIMEOUT must be positive"))
	}
	if c.GatewayMaxBodyBytes <= 0 {
		errs = append(errs, errors.New("ALWRITY_GATEWAY_MAX_BODY_BYTES must be positive"))
	}
	if c.FailOpenKeyMaxAge <= 0 {
		errs = append(errs, errors.New("ALWRITY_FAIL_OPEN_KEY_MAX_AGE must be positive"))
	}
	if c.GatewayDefaultMaxTokens <= 0 || c.GatewayDefaultMaxTokens > 100_000_000 {
		errs = append(errs, errors.New("ALWRITY_GATEWAY_DEFAULT_MAX_TOKENS must be between 1 and 100000000"))
	}
	if c.HealthErrorRate < 1 || c.HealthErrorRate > 100 {
		errs = append(errs, errors.New("ALWRITY_HEALTH_ERROR_RATE must be a percentage between 1 and 100"))
	}
	if c.HealthWindow < time.Minute || c.HealthWindow > 24*time.Hour {
		errs = append(errs, errors.New("ALWRITY_HEALTH_WINDOW must be between 1m and 24h"))
	}
	if c.HealthMinCalls < 1 {
		errs = append(errs, errors.New("ALWRITY_HEALTH_MIN_CALLS must be at least 1"))
	}
	return errs
}

// ServerFlags registers the flags that override server settings.
func (c *Config) ServerFlags(fs *flag.FlagSet) {
	c.DatabaseFlag(fs)
	fs.StringVar(&c.Host, "host", c.Host, "address to listen on (HOST)")
	fs.IntVar(&c.Port, "port", c.Port, "port to listen on; 0 picks a free one (PORT)")
	fs.BoolVar(&c.Debug, "debug", c.Debug, "debug logging (DEBUG)")
	fs.Var(byteSizeFlag{&c.MemoryLimit}, "memory-limit",
		"soft limit on the Go runtime's memory, e.g. 32MiB; 0 or off for none; GOMEMLIMIT, when set, wins (ALWRITY_MEMORY_LIMIT)")
}

// DatabaseFlag registers --database-url.
func (c *Config) DatabaseFlag(fs *flag.FlagSet) {
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "sqlite:///path.db or postgres://… (DATABASE_URL)")
}

// Validate reports every invalid setting together.
func (c Config) Validate() error {
	errs := []error{c.ValidateDatabase()}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("PORT must be between 0 and 65535, got %d", c.Port))
	}
	if c.Host != "" && c.Host != "localhost" && net.ParseIP(c.Host) == nil {
		if _, err := net.LookupHost(c.Host); err != nil {
			errs = append(errs, fmt.Errorf("HOST %q is neither an IP address nor a known host name", c.Host))
		}
	}
	if c.AdminKey != "" && len(c.AdminKey) < 16 {
		errs = append(errs, errors.New("ALWRITY_ADMIN_KEY must be at least 16 characters"))
	}
	if c.SessionSecret != "" && len(c.SessionSecret) < 32 {
		errs = append(errs, errors.New("ALWRITY_SESSION_SECRET must be at least 32 characters"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("shutdown timeout must be positive"))
	}
	errs = append(errs, c.validateGateway()...)
	if c.InvoiceReview < 0 || c.InvoiceReview > 31*24*time.Hour {
		errs = append(errs, errors.New("ALWRITY_INVOICE_REVIEW must be between 0 and 31 days (744h)"))
	}
	if c.ReservationRetention != 0 && c.ReservationRetention < store.ReservationRetention {
		errs = append(errs, fmt.Errorf("ALWRITY_RESERVATION_RETENTION must be at least %s (35 days: resent settles must find their reservation), got %s",
			store.ReservationRetention, c.ReservationRetention))
	}
	if c.WebhookInterval != 0 && (c.WebhookInterval < 100*time.Millisecond || c.WebhookInterval > time.Hour) {
		errs = append(errs, errors.New("ALWRITY_WEBHOOK_INTERVAL must be between 100ms and 1h"))
	}
	if c.WebhookTimeout < 0 || c.WebhookTimeout > 5*time.Minute {
		errs = append(errs, errors.New("ALWRITY_WEBHOOK_TIMEOUT must be at most 5m (0 takes the default, 10s)"))
	}
	for _, o := range c.CORSOrigins {
		if err := validOrigin(o); err != nil {
			errs = append(errs, fmt.Errorf("ALWRITY_CORS_ORIGINS: %w", err))
		}
	}
	if c.MemoryLimit < 0 || (c.MemoryLimit > 0 && c.MemoryLimit < minMemoryLimit) {
		errs = append(errs, fmt.Errorf("ALWRITY_MEMORY_LIMIT must be 0 (none) or at least %s, got %s",
			formatByteSize(minMemoryLimit), formatByteSize(c.MemoryLimit)))
	}
	return errors.Join(errs...)
}

// ValidateDatabase reports a DATABASE_URL that names no database the
// store can open; commands that only use the database check just this.
func (c Config) ValidateDatabase() error {
	switch {
	case strings.HasPrefix(c.DatabaseURL, "sqlite://"):
		if path, _, _ := strings.Cut(strings.TrimPrefix(c.DatabaseURL, "sqlite://"), "?"); strings.TrimPrefix(path, "/") == "" {
			return errors.New("DATABASE_URL sqlite:// must name a file, e.g. sqlite:///./alwrity.db")
		}
	case strings.HasPrefix(c.DatabaseURL, "postgres://"), strings.HasPrefix(c.DatabaseURL, "postgresql://"):
	default:
		// Only the scheme is echoed: the rest may hold a password.
		scheme, _, found := strings.Cut(c.DatabaseURL, "://")
		if !found || scheme == "" || strings.ContainsFunc(scheme, func(r rune) bool {
			return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '+' || r == '-' || r == '.')
		}) {
			return errors.New("DATABASE_URL must start with sqlite:// or postgres://")
		}
		return fmt.Errorf("DATABASE_URL must start with sqlite:// or postgres://, got %s://…", scheme)
	}
	return nil
}

// Addr is the listen address.
func (c Config) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// validOrigin accepts "*" or an origin as a browser sends it: http or
// https, a host and an optional port, nothing after them (a trailing "/"
// would never match), with at most one "*" in the host.
func validOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(strings.Replace(o, "*", "wildcard", 1))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") ||
		strings.Count(o, "*") > 1 {
		return fmt.Errorf("%q is not an origin: want \"*\" or scheme://host[:port], such as https://app.example.com", o)
	}
	return nil
}
