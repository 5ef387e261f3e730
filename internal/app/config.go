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

// LoadDotEnv reads .env from the working directory when present; variables
// already set in the environment win.
func LoadDotEnv() error {
	if _, err := os.Stat(".env"); err != nil {
		return nil
	}
	if err := godotenv.Load(".env"); err != nil {
		return fmt.Errorf("read .env: %w", err)
	}
	return nil
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
		p, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("PORT must be a number, got %q", v))
		}
		c.Port = p
	}
	if v := getenv("DEBUG"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("DEBUG must be true or false, got %q", v))
		}
		c.Debug = b
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
	var errs []error
	if !strings.HasPrefix(c.DatabaseURL, "sqlite://") && !strings.HasPrefix(c.DatabaseURL, "postgres://") &&
		!strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		errs = append(errs, errors.New("DATABASE_URL must start with sqlite:// or postgres://"))
	}
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

// Addr is the listen address.
func (c Config) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }
