package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// envMap turns a map into a getenv.
func envMap(m map[string]string) func(string) string {
	return func(name string) string { return m[name] }
}

func TestConfigDefaults(t *testing.T) {
	c := DefaultConfig()
	if err := c.FromEnv(envMap(nil)); err != nil {
		t.Fatalf("FromEnv with an empty environment: %v", err)
	}
	want := Config{
		DatabaseURL:     "sqlite:///./alwrity.db",
		Host:            "0.0.0.0",
		Port:            8000,
		ProviderKeys:    map[string]string{},
		ShutdownTimeout: 15 * time.Second,

		GatewayBaseURLs:         map[string]string{},
		GatewayConnectTimeout:   10 * time.Second,
		GatewayReadTimeout:      10 * time.Minute,
		GatewayMaxBodyBytes:     32 << 20,
		GatewayDefaultMaxTokens: 4096,
		FailOpenKeyMaxAge:       24 * time.Hour,

		HealthErrorRate: 20,
		HealthWindow:    5 * time.Minute,
		HealthMinCalls:  20,

		MemoryLimit: 32 << 20,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults = %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
	if got := c.Addr(); got != "0.0.0.0:8000" {
		t.Errorf("Addr() = %q, want 0.0.0.0:8000", got)
	}
}

func TestConfigEnvOverrides(t *testing.T) {
	c := DefaultConfig()
	err := c.FromEnv(envMap(map[string]string{
		"DATABASE_URL":      "postgres://billing@db:5432/billing?sslmode=disable",
		"HOST":              "127.0.0.1",
		"PORT":              "9100",
		"DEBUG":             "true",
		"ALWRITY_ADMIN_KEY": "admin-key-0123456789",
		"OPENAI_API_KEY":    "sk-openai",
		"GEMINI_API_KEY":    "gemini-key",
		"ANTHROPIC_API_KEY": "sk-ant",
		"MISTRAL_API_KEY":   "mistral-key",
	}))
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	if c.DatabaseURL != "postgres://billing@db:5432/billing?sslmode=disable" || c.Host != "127.0.0.1" || c.Port != 9100 || !c.Debug {
		t.Errorf("server settings not taken from the environment: %+v", c)
	}
	if c.AdminKey != "admin-key-0123456789" {
		t.Errorf("AdminKey = %q", c.AdminKey)
	}
	wantKeys := map[string]string{"openai": "sk-openai", "gemini": "gemini-key", "anthropic": "sk-ant", "mistral": "mistral-key"}
	if !reflect.DeepEqual(c.ProviderKeys, wantKeys) {
		t.Errorf("ProviderKeys = %v, want %v", c.ProviderKeys, wantKeys)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestConfigSecretFiles(t *testing.T) {
	dir := t.TempDir()
	adminFile := filepath.Join(dir, "admin")
	if err := os.WriteFile(adminFile, []byte("  admin-key-from-a-file-0123\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	openaiFile := filepath.Join(dir, "openai")
	if err := os.WriteFile(openaiFile, []byte("sk-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("read and trimmed", func(t *testing.T) {
		c := DefaultConfig()
		if err := c.FromEnv(envMap(map[string]string{"ALWRITY_ADMIN_KEY_FILE": adminFile, "OPENAI_API_KEY_FILE": openaiFile})); err != nil {
			t.Fatalf("FromEnv: %v", err)
		}
		if c.AdminKey != "admin-key-from-a-file-0123" {
			t.Errorf("AdminKey = %q, want the file's content without surrounding space", c.AdminKey)
		}
		if c.ProviderKeys["openai"] != "sk-from-file" {
			t.Errorf("openai key = %q", c.ProviderKeys["openai"])
		}
	})
	t.Run("the variable wins over its file", func(t *testing.T) {
		c := DefaultConfig()
		if err := c.FromEnv(envMap(map[string]string{"ALWRITY_ADMIN_KEY": "admin-key-from-env-0123", "ALWRITY_ADMIN_KEY_FILE": adminFile})); err != nil {
			t.Fatalf("FromEnv: %v", err)
		}
		if c.AdminKey != "admin-key-from-env-0123" {
			t.Errorf("AdminKey = %q", c.AdminKey)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		c := DefaultConfig()
		err := c.FromEnv(envMap(map[string]string{"ALWRITY_ADMIN_KEY_FILE": filepath.Join(dir, "nope")}))
		if err == nil || !strings.Contains(err.Error(), "ALWRITY_ADMIN_KEY_FILE") {
			t.Errorf("FromEnv error = %v, want one naming ALWRITY_ADMIN_KEY_FILE", err)
		}
	})
}

// configProblems returns every problem FromEnv and Validate find in env.
func configProblems(env map[string]string) error {
	c := DefaultConfig()
	return errors.Join(c.FromEnv(envMap(env)), c.Validate())
}

func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	bad := map[string]string{
		"DATABASE_URL":      "mysql://user:hunter2@db/billing",
		"DEBUG":             "maybe",
		"ALWRITY_ADMIN_KEY": "short",
	}
	tests := []struct {
		name string
		port string
		want []string
	}{
		{"port not a number", "abc", []string{`PORT must be a number, got "abc"`}},
		{"port out of range", "70000", []string{"PORT must be between 0 and 65535, got 70000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"PORT": tt.port}
			for k, v := range bad {
				env[k] = v
			}
			err := configProblems(env)
			if err == nil {
				t.Fatal("no error for an invalid configuration")
			}
			msg := err.Error()
			want := append(tt.want,
				"DATABASE_URL must start with sqlite:// or postgres://",
				`DEBUG must be true or false, got "maybe"`,
				"ALWRITY_ADMIN_KEY must be at least 16 characters",
			)
			for _, w := range want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
			if got := strings.Count(msg, "PORT"); got != 1 {
				t.Errorf("PORT reported %d times, want once:\n%s", got, msg)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("the error shows the database password:\n%s", msg)
			}
		})
	}
}

func TestConfigValidateDatabase(t *testing.T) {
	tests := []struct {
		url  string
		want string // "" means valid
	}{
		{"sqlite:///./alwrity.db", ""},
		{"sqlite:////tmp/x.db?mode=rwc", ""},
		{"postgres://u@h/db", ""},
		{"postgresql://u@h/db", ""},
		{"sqlite://", "must name a file"},
		{"sqlite:///?x=1", "must name a file"},
		{"mysql://x", "got mysql://…"},
		{"", "must start with sqlite:// or postgres://"},
		{"./alwrity.db", "must start with sqlite:// or postgres://"},
	}
	for _, tt := range tests {
		err := Config{DatabaseURL: tt.url}.ValidateDatabase()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("ValidateDatabase(%q) = %v, want nil", tt.url, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("ValidateDatabase(%q) = %v, want an error containing %q", tt.url, err, tt.want)
		}
	}
}

func TestConfigFlagsOverrideEnv(t *testing.T) {
	c := DefaultConfig()
	if err := c.FromEnv(envMap(map[string]string{
		"DATABASE_URL": "sqlite:///env.db", "HOST": "10.0.0.1", "PORT": "9000", "DEBUG": "true",
	})); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.ServerFlags(fs)

	// The flag defaults are the environment's values, so --help shows them.
	if got := fs.Lookup("port").DefValue; got != "9000" {
		t.Errorf("--port default = %q, want the environment's 9000", got)
	}
	if err := fs.Parse([]string{"--database-url", "sqlite:///flag.db", "--host", "127.0.0.1", "--port", "0", "--debug=false"}); err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != "sqlite:///flag.db" || c.Host != "127.0.0.1" || c.Port != 0 || c.Debug {
		t.Errorf("flags did not override the environment: %+v", c)
	}

	// Settings without a flag keep the environment's value.
	c = DefaultConfig()
	if err := c.FromEnv(envMap(map[string]string{"PORT": "9000", "HOST": "127.0.0.1"})); err != nil {
		t.Fatal(err)
	}
	fs = flag.NewFlagSet("serve", flag.ContinueOnError)
	c.ServerFlags(fs)
	if err := fs.Parse([]string{"--debug"}); err != nil {
		t.Fatal(err)
	}
	if c.Port != 9000 || c.Host != "127.0.0.1" || !c.Debug {
		t.Errorf("unflagged settings lost their environment values: %+v", c)
	}
}

func TestConfigDotEnv(t *testing.T) {
	t.Chdir(t.TempDir())
	vars, err := ReadDotEnv()
	if err != nil || vars != nil {
		t.Fatalf("ReadDotEnv without a .env = %v, %v; want nil, nil", vars, err)
	}
	if err := os.WriteFile(".env", []byte("# local settings\nPORT=9200\nHOST=127.0.0.1\nDEBUG=true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars, err = ReadDotEnv()
	if err != nil {
		t.Fatalf("ReadDotEnv: %v", err)
	}
	c := DefaultConfig()
	// The environment wins over .env; .env fills what the environment lacks.
	if err := c.FromEnv(WithDotEnv(envMap(map[string]string{"PORT": "9300"}), vars)); err != nil {
		t.Fatal(err)
	}
	if c.Port != 9300 || c.Host != "127.0.0.1" || !c.Debug {
		t.Errorf("config from environment and .env = %+v; want port 9300 (environment), host and debug from .env", c)
	}
	if os.Getenv("HOST") == "127.0.0.1" && os.Getenv("PORT") == "9200" {
		t.Error("ReadDotEnv changed the process environment")
	}
}

func TestConfigGatewayEnv(t *testing.T) {
	c := DefaultConfig()
	err := c.FromEnv(envMap(map[string]string{
		"ALWRITY_OPENAI_BASE_URL":            "http://127.0.0.1:9001/v1",
		"ALWRITY_ANTHROPIC_BASE_URL":         "https://anthropic.internal",
		"ALWRITY_GEMINI_BASE_URL":            "http://127.0.0.1:9003",
		"ALWRITY_MISTRAL_BASE_URL":           "http://127.0.0.1:9004/v1",
		"ALWRITY_GATEWAY_CONNECT_TIMEOUT":    "2s",
		"ALWRITY_GATEWAY_READ_TIMEOUT":       "90",
		"ALWRITY_GATEWAY_MAX_BODY_BYTES":     "1048576",
		"ALWRITY_GATEWAY_DEFAULT_MAX_TOKENS": "512",
		"ALWRITY_FAIL_OPEN":                  "true",
		"ALWRITY_FAIL_OPEN_KEY_MAX_AGE":      "1h",
		"ALWRITY_HEALTH_ERROR_RATE":          "35",
		"ALWRITY_HEALTH_WINDOW":              "10m",
		"ALWRITY_HEALTH_MIN_CALLS":           "50",
		"GOOGLE_API_KEY":                     "google-key",
	}))
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	want := map[string]string{"openai": "http://127.0.0.1:9001/v1", "anthropic": "https://anthropic.internal",
		"gemini": "http://127.0.0.1:9003", "mistral": "http://127.0.0.1:9004/v1"}
	if !reflect.DeepEqual(c.GatewayBaseURLs, want) {
		t.Errorf("GatewayBaseURLs = %v, want %v", c.GatewayBaseURLs, want)
	}
	if c.GatewayConnectTimeout != 2*time.Second || c.GatewayReadTimeout != 90*time.Second || c.GatewayMaxBodyBytes != 1<<20 ||
		c.GatewayDefaultMaxTokens != 512 || !c.FailOpen || c.FailOpenKeyMaxAge != time.Hour ||
		c.GatewayConfig(nil, time.Now).StaleKeyMaxAge != time.Hour {
		t.Errorf("gateway settings not taken from the environment: %+v", c)
	}
	if c.HealthErrorRate != 35 || c.HealthWindow != 10*time.Minute || c.HealthMinCalls != 50 {
		t.Errorf("health settings not taken from the environment: %d %v %d", c.HealthErrorRate, c.HealthWindow, c.HealthMinCalls)
	}
	if c.ProviderKeys["gemini"] != "google-key" {
		t.Errorf("GOOGLE_API_KEY is not the Gemini key when GEMINI_API_KEY is unset")
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	c = DefaultConfig()
	if err := c.FromEnv(envMap(map[string]string{"GEMINI_API_KEY": "gemini-key", "GOOGLE_API_KEY": "google-key"})); err != nil {
		t.Fatal(err)
	}
	if c.ProviderKeys["gemini"] != "gemini-key" {
		t.Errorf("GEMINI_API_KEY must win over GOOGLE_API_KEY, got %q", c.ProviderKeys["gemini"])
	}
}

func TestConfigGatewayInvalid(t *testing.T) {
	c := DefaultConfig()
	err := c.FromEnv(envMap(map[string]string{
		"ALWRITY_GATEWAY_CONNECT_TIMEOUT":    "soon",
		"ALWRITY_GATEWAY_MAX_BODY_BYTES":     "lots",
		"ALWRITY_FAIL_OPEN":                  "maybe",
		"ALWRITY_FAIL_OPEN_KEY_MAX_AGE":      "-5m",
		"ALWRITY_GATEWAY_DEFAULT_MAX_TOKENS": "-1",
		"ALWRITY_OPENAI_BASE_URL":            "ftp://user:secret@example.com",
		"ALWRITY_HEALTH_ERROR_RATE":          "120",
		"ALWRITY_HEALTH_WINDOW":              "1s",
		"ALWRITY_HEALTH_MIN_CALLS":           "0",
	}))
	for _, name := range []string{"ALWRITY_GATEWAY_CONNECT_TIMEOUT", "ALWRITY_GATEWAY_MAX_BODY_BYTES", "ALWRITY_FAIL_OPEN"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("FromEnv error %v does not name %s", err, name)
		}
	}
	verr := c.Validate()
	for _, name := range []string{"ALWRITY_OPENAI_BASE_URL", "ALWRITY_GATEWAY_DEFAULT_MAX_TOKENS", "ALWRITY_FAIL_OPEN_KEY_MAX_AGE",
		"ALWRITY_HEALTH_ERROR_RATE", "ALWRITY_HEALTH_WINDOW", "ALWRITY_HEALTH_MIN_CALLS"} {
		if verr == nil || !strings.Contains(verr.Error(), name) {
			t.Errorf("Validate error %v does not name %s", verr, name)
		}
	}
	if verr != nil && strings.Contains(verr.Error(), "secret") {
		t.Errorf("Validate echoes a base URL's credentials: %v", verr)
	}
}

// TestConfigInvoiceReview: a duration or seconds; garbage and values
// outside 0–31 days are named.
func TestConfigInvoiceReview(t *testing.T) {
	c := DefaultConfig()
	if err := c.FromEnv(envMap(map[string]string{"ALWRITY_INVOICE_REVIEW": "48h"})); err != nil || c.InvoiceReview != 48*time.Hour {
		t.Fatalf("48h: %v, %v", c.InvoiceReview, err)
	}
	if err := c.Validate(); err != nil && strings.Contains(err.Error(), "ALWRITY_INVOICE_REVIEW") {
		t.Fatalf("48h refused: %v", err)
	}
	c = DefaultConfig()
	if err := c.FromEnv(envMap(map[string]string{"ALWRITY_INVOICE_REVIEW": "later"})); err == nil || !strings.Contains(err.Error(), "ALWRITY_INVOICE_REVIEW") {
		t.Fatalf("garbage: %v; want an error naming ALWRITY_INVOICE_REVIEW", err)
	}
	for _, v := range []string{"-1h", "800h"} {
		c = DefaultConfig()
		if err := c.FromEnv(envMap(map[string]string{"ALWRITY_INVOICE_REVIEW": v})); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "ALWRITY_INVOICE_REVIEW") {
			t.Errorf("%s: Validate = %v; want an error naming ALWRITY_INVOICE_REVIEW", v, err)
		}
	}
}

// TestConfigMemoryLimit: sizes in binary or decimal units or bytes, off, the
// flag over the environment, and GOMEMLIMIT winning over both.
func TestConfigMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want int64
	}{
		{"48MiB", 48 << 20}, {"64MB", 64_000_000}, {"1GiB", 1 << 30}, {"50000000", 50_000_000},
		{"32 mib", 32 << 20}, {"0", 0}, {"off", 0},
	} {
		c := DefaultConfig()
		if err := c.FromEnv(envMap(map[string]string{"ALWRITY_MEMORY_LIMIT": tc.env})); err != nil || c.MemoryLimit != tc.want {
			t.Errorf("ALWRITY_MEMORY_LIMIT=%s: %d, %v; want %d", tc.env, c.MemoryLimit, err, tc.want)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("ALWRITY_MEMORY_LIMIT=%s does not validate: %v", tc.env, err)
		}
	}
	for _, bad := range []string{"lots", "-1", "12XB", "1.5GiB"} {
		c := DefaultConfig()
		if err := c.FromEnv(envMap(map[string]string{"ALWRITY_MEMORY_LIMIT": bad})); err == nil || !strings.Contains(err.Error(), "ALWRITY_MEMORY_LIMIT") {
			t.Errorf("ALWRITY_MEMORY_LIMIT=%s: %v; want an error naming it", bad, err)
		}
	}
	c := DefaultConfig()
	if err := c.FromEnv(envMap(map[string]string{"ALWRITY_MEMORY_LIMIT": "1MiB"})); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "ALWRITY_MEMORY_LIMIT") || !strings.Contains(err.Error(), "1MiB") {
		t.Errorf("a 1MiB limit validates: %v", err)
	}

	// The flag overrides the environment, and shows its value as a size.
	c = DefaultConfig()
	if err := c.FromEnv(envMap(map[string]string{"ALWRITY_MEMORY_LIMIT": "48MiB"})); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.ServerFlags(fs)
	if got := fs.Lookup("memory-limit").DefValue; got != "48MiB" {
		t.Errorf("--memory-limit default = %q, want the environment's 48MiB", got)
	}
	if err := fs.Parse([]string{"--memory-limit", "100MB"}); err != nil || c.MemoryLimit != 100_000_000 {
		t.Errorf("--memory-limit 100MB: %d, %v", c.MemoryLimit, err)
	}
	if err := fs.Parse([]string{"--memory-limit", "plenty"}); err == nil {
		t.Error("--memory-limit plenty was accepted")
	}

	// serve sets the limit only when GOMEMLIMIT, which the runtime reads
	// itself, is not set, and never a zero one.
	c = DefaultConfig()
	if n, ok := c.SoftMemoryLimit(envMap(nil)); !ok || n != DefaultMemoryLimit {
		t.Errorf("SoftMemoryLimit without GOMEMLIMIT = %d, %v; want the default", n, ok)
	}
	if _, ok := c.SoftMemoryLimit(envMap(map[string]string{"GOMEMLIMIT": "200MiB"})); ok {
		t.Error("SoftMemoryLimit overrides GOMEMLIMIT")
	}
	c.MemoryLimit = 0
	if _, ok := c.SoftMemoryLimit(envMap(nil)); ok {
		t.Error("SoftMemoryLimit sets a zero limit")
	}
}

// TestConfigDurationOutOfRange: a number of seconds that no time.Duration
// holds (or NaN) is refused naming the variable and quoting its value, not
// wrapped around into a wrong duration that Validate then misreports.
func TestConfigDurationOutOfRange(t *testing.T) {
	for _, name := range []string{"ALWRITY_GATEWAY_READ_TIMEOUT", "ALWRITY_WEBHOOK_TIMEOUT", "ALWRITY_RESERVATION_RETENTION"} {
		for _, v := range []string{"1e10", "1e12", "-1e12", "NaN", "Inf", "-Inf", "+Inf", "1e400"} {
			err := configProblems(map[string]string{name: v})
			if err == nil || !strings.Contains(err.Error(), name+" must be a duration") || !strings.Contains(err.Error(), fmt.Sprintf("got %q", v)) {
				t.Errorf("%s=%s: %v; want a problem naming %s and quoting the value", name, v, err, name)
				continue
			}
			if strings.Count(err.Error(), name) != 1 {
				t.Errorf("%s=%s: %v; want only the parse problem", name, v, err)
			}
		}
	}
	c := DefaultConfig()
	if err := c.FromEnv(envMap(map[string]string{"ALWRITY_GATEWAY_READ_TIMEOUT": "9e9"})); err != nil || c.GatewayReadTimeout != 9e9*time.Second {
		t.Errorf("9e9 seconds: %v, %v; want 9e9 s", c.GatewayReadTimeout, err)
	}
}

// TestConfigDatabaseURLFile: DATABASE_URL, which may hold a password, can
// be read from DATABASE_URL_FILE like the other secrets.
func TestConfigDatabaseURLFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "db")
	if err := os.WriteFile(file, []byte("postgres://u:p@db.example/billing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	if err := c.FromEnv(envMap(map[string]string{"DATABASE_URL_FILE": file})); err != nil || c.DatabaseURL != "postgres://u:p@db.example/billing" {
		t.Errorf("DATABASE_URL_FILE: %q, %v; want the file's URL", c.DatabaseURL, err)
	}
	c = DefaultConfig()
	if err := c.FromEnv(envMap(map[string]string{"DATABASE_URL": "sqlite:///env.db", "DATABASE_URL_FILE": file})); err != nil || c.DatabaseURL != "sqlite:///env.db" {
		t.Errorf("DATABASE_URL beside its file: %q, %v; want the variable to win", c.DatabaseURL, err)
	}
	c = DefaultConfig()
	if err := c.FromEnv(envMap(map[string]string{"DATABASE_URL_FILE": file + ".missing"})); err == nil || !strings.Contains(err.Error(), "DATABASE_URL_FILE") {
		t.Errorf("missing DATABASE_URL_FILE: %v; want a problem naming it", err)
	}
}

// TestEnvProblems: a flag given on the command line drops the problem of
// the setting it overrides, a command keeps only the problems of the
// settings it uses, and a problem of no one setting is always kept.
func TestEnvProblems(t *testing.T) {
	c := DefaultConfig()
	envErr := c.FromEnv(envMap(map[string]string{
		"PORT": "abc", "DEBUG": "maybe", "ALWRITY_WEBHOOK_TIMEOUT": "soon", "DATABASE_URL_FILE": filepath.Join(t.TempDir(), "nope"),
	}))
	envErr = errors.Join(errors.New("read .env: broken"), envErr)
	parsed := func(args ...string) *flag.FlagSet {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		c.ServerFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return fs
	}
	for _, tt := range []struct {
		fs         *flag.FlagSet
		uses       []string
		want, drop []string
	}{
		{parsed(), nil, []string{"read .env", "PORT", "DEBUG", "ALWRITY_WEBHOOK_TIMEOUT", "DATABASE_URL_FILE"}, nil},
		{parsed("--port", "8123", "--debug"), nil, []string{"read .env", "ALWRITY_WEBHOOK_TIMEOUT", "DATABASE_URL_FILE"}, []string{"PORT", "DEBUG"}},
		{parsed(), []string{"DATABASE_URL"}, []string{"read .env", "DATABASE_URL_FILE"}, []string{"PORT", "DEBUG", "ALWRITY_WEBHOOK_TIMEOUT"}},
		{parsed("--database-url", "sqlite:///x.db"), []string{"DATABASE_URL"}, []string{"read .env"}, []string{"PORT", "DATABASE_URL_FILE"}},
	} {
		got := fmt.Sprint(EnvProblems(envErr, tt.fs, tt.uses...))
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("uses %v: %q lacks %s", tt.uses, got, w)
			}
		}
		for _, d := range tt.drop {
			if strings.Contains(got, d) {
				t.Errorf("uses %v: %q still has %s", tt.uses, got, d)
			}
		}
	}
	if err := EnvProblems(nil, parsed()); err != nil {
		t.Errorf("EnvProblems(nil) = %v", err)
	}
}

// TestConfigCORSOrigins: ALWRITY_CORS_ORIGINS is a comma-separated list
// (spaces and empty items ignored), none by default; Validate names every
// item that is not "*" or scheme://host[:port].
func TestConfigCORSOrigins(t *testing.T) {
	if c := DefaultConfig(); c.CORSOrigins != nil {
		t.Fatalf("default origins %q, want none", c.CORSOrigins)
	}
	c := DefaultConfig()
	if err := c.FromEnv(envMap(map[string]string{"ALWRITY_CORS_ORIGINS": " https://app.alwrity.com, http://localhost:3000,,https://*.alwrity.dev "})); err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://app.alwrity.com", "http://localhost:3000", "https://*.alwrity.dev"}; !reflect.DeepEqual(c.CORSOrigins, want) {
		t.Fatalf("origins %q, want %q", c.CORSOrigins, want)
	}
	if err := c.Validate(); err != nil && strings.Contains(err.Error(), "ALWRITY_CORS_ORIGINS") {
		t.Fatalf("valid origins refused: %v", err)
	}
	c = DefaultConfig()
	if err := c.FromEnv(envMap(map[string]string{"ALWRITY_CORS_ORIGINS": "*"})); err != nil || c.Validate() != nil {
		t.Fatalf("*: %q, %v", c.CORSOrigins, c.Validate())
	}
	for _, bad := range []string{"app.alwrity.com", "https://app.alwrity.com/", "https://app.alwrity.com/path", "ftp://files.test",
		"https://", "https://a.test?x=1", "https://a.test#f", "https://user@a.test", "https://*.*.test", "https://a.test:port"} {
		c = DefaultConfig()
		if err := c.FromEnv(envMap(map[string]string{"ALWRITY_CORS_ORIGINS": "http://ok.test," + bad})); err != nil {
			t.Fatal(err)
		}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "ALWRITY_CORS_ORIGINS") || !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) ||
			strings.Contains(err.Error(), `"http://ok.test"`) {
			t.Errorf("%q: Validate = %v; want an error naming it alone", bad, err)
		}
	}
}
