// Package app wires alwrity-billing together: configuration, the store, the
// HTTP server and start-up, once, so the binary and end-to-end tests start
// the very same thing.
package app

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"
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
	// ProviderKeys maps a provider to the server-held key for its API
	// (OPENAI_API_KEY, …), used by the gateway.
	ProviderKeys    map[string]string
	ShutdownTimeout time.Duration
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

// FromEnv fills c from environment variables looked up with getenv. A
// secret may instead come from a file named by NAME_FILE. Every problem is
// reported at once.
func (c *Config) FromEnv(getenv func(string) string) error {
	var errs []error
	secret := func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		if path := getenv(name + "_FILE"); path != "" {
			b, err := os.ReadFile(path)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s_FILE: %w", name, err))
				return ""
			}
			return strings.TrimSpace(string(b))
		}
		return ""
	}
	if v := getenv("DATABASE_URL"); v != "" {
		c.DatabaseURL = v
	}
	if v := getenv("HOST"); v != "" {
		c.Host = v
	}
	if v := getenv("PORT"); v != "" {
		// A value that does not parse is reported and the default kept, so
		// Validate does not report a second, confusing problem for it.
		if p, err := strconv.Atoi(strings.TrimSpace(v)); err != nil {
			errs = append(errs, fmt.Errorf("PORT must be a number, got %q", v))
		} else {
			c.Port = p
		}
	}
	if v := getenv("DEBUG"); v != "" {
		if b, err := strconv.ParseBool(strings.TrimSpace(v)); err != nil {
			errs = append(errs, fmt.Errorf("DEBUG must be true or false, got %q", v))
		} else {
			c.Debug = b
		}
	}
	c.AdminKey = secret("ALWRITY_ADMIN_KEY")
	for provider, name := range providerKeyVars {
		if v := secret(name); v != "" {
			c.ProviderKeys[provider] = v
		}
	}
	return errors.Join(errs...)
}

// ServerFlags registers the flags that override server settings.
func (c *Config) ServerFlags(fs *flag.FlagSet) {
	c.DatabaseFlag(fs)
	fs.StringVar(&c.Host, "host", c.Host, "address to listen on (HOST)")
	fs.IntVar(&c.Port, "port", c.Port, "port to listen on; 0 picks a free one (PORT)")
	fs.BoolVar(&c.Debug, "debug", c.Debug, "debug logging (DEBUG)")
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
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("shutdown timeout must be positive"))
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
