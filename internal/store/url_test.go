package store

import (
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url     string
		dialect Dialect
		dsn     string
	}{
		{"sqlite:///./alwrity.db", SQLite, "./alwrity.db"},
		{"sqlite:///alwrity.db", SQLite, "alwrity.db"},
		{"sqlite:///data/sub/alwrity.db", SQLite, "data/sub/alwrity.db"},
		{"sqlite:////tmp/alwrity.db", SQLite, "/tmp/alwrity.db"},
		{"sqlite:////var/lib/alwrity/billing.db?cache=shared", SQLite, "/var/lib/alwrity/billing.db"},
		{"sqlite:///./x.db?mode=rwc&foo=bar", SQLite, "./x.db"},
		{"postgres://u:p@db.example:5432/billing?sslmode=disable", Postgres, "postgres://u:p@db.example:5432/billing?sslmode=disable"},
		{"postgresql://localhost/billing", Postgres, "postgresql://localhost/billing"},
		{"postgres://root@127.0.0.1:5432/test?sslmode=disable&search_path=t_1", Postgres, "postgres://root@127.0.0.1:5432/test?sslmode=disable&search_path=t_1"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			d, dsn, err := parseURL(tt.url)
			if err != nil {
				t.Fatalf("parseURL: %v", err)
			}
			if d != tt.dialect || dsn != tt.dsn {
				t.Fatalf("parseURL = %q, %q; want %q, %q", d, dsn, tt.dialect, tt.dsn)
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	const secret = "s3cr3t"
	tests := []struct{ name, url string }{
		{"empty", ""},
		{"plain path", "./alwrity.db"},
		{"sqlite without slashes", "sqlite:alwrity.db"},
		{"sqlite without a file", "sqlite://"},
		{"sqlite root only", "sqlite:///"},
		{"sqlite query only", "sqlite:///?cache=shared"},
		{"mysql", "mysql://u:" + secret + "@localhost/db"},
		{"mysql unparsable", "mysql://u:" + secret + "@localhost:port/db"},
		{"http", "http://localhost:5432/db"},
		{"postgres bad port", "postgres://u:" + secret + "@localhost:port/db"},
		{"postgres slash in password", "postgres://u:" + secret + "/x@localhost/db"},
		{"postgres bad escape", "postgres://u:" + secret + "%zz@localhost/db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, dsn, err := parseURL(tt.url)
			if err == nil {
				t.Fatalf("parseURL(%q) = %q, %q; want an error", tt.url, d, dsn)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error reveals the password: %v", err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	tests := []struct {
		name, url string
		want      string // "" when only the absence of the secret is checked
	}{
		{"password", "postgres://u:s3cr3t@db.example:5432/billing", "postgres://u:xxxxx@db.example:5432/billing"},
		{"password and query", "postgres://u:s3cr3t@h/db?sslmode=disable", "postgres://u:xxxxx@h/db?sslmode=disable"},
		{"escaped password", "postgres://u:s3%40cr3t@h/db", "postgres://u:xxxxx@h/db"},
		{"user only", "postgres://root@127.0.0.1:5432/test", "postgres://root@127.0.0.1:5432/test"},
		{"no user", "postgresql://localhost/db", "postgresql://localhost/db"},
		{"sqlite", "sqlite:///./alwrity.db", "sqlite:///./alwrity.db"},
		{"password query parameter", "postgres://u@h/db?password=s3cr3t&sslmode=disable", ""},
		{"unparsable port", "postgres://u:s3cr3t@h:port/db", "postgres://u:xxxxx@h:port/db"},
		{"unparsable slash in password", "postgres://u:s3cr3t/x@h/db", "postgres://u:xxxxx@h/db"},
		{"unparsable escape", "postgres://u:s3cr3t%zz@h/db", "postgres://u:xxxxx@h/db"},
		{"unparsable query password", "postgres://u@h:port/db?password=s3cr3t", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := redact(tt.url)
			if strings.Contains(got, "s3cr3t") || strings.Contains(got, "s3%40cr3t") {
				t.Fatalf("redact(%q) = %q still holds the password", tt.url, got)
			}
			if tt.want != "" && got != tt.want {
				t.Fatalf("redact(%q) = %q, want %q", tt.url, got, tt.want)
			}
		})
	}
}
