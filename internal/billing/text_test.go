package billing_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

func TestCleanText(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"/v1/chat/completions", 512, "/v1/chat/completions"},
		{"a\x00b", 512, "a\uFFFDb"},
		{"a\xffb", 512, "a\uFFFDb"},
		{"tab\tand\nnewline stay", 512, "tab\tand\nnewline stay"},
		{"héllo", 2, "h"}, // é is two bytes: never cut inside it
		{strings.Repeat("x", 600), 512, strings.Repeat("x", 512)},
	} {
		if got := billing.CleanText(c.in, c.max); got != c.want {
			t.Errorf("CleanText(%q, %d) = %q; want %q", c.in, c.max, got, c.want)
		}
	}
}

func TestCleanMethod(t *testing.T) {
	for in, want := range map[string]string{
		"POST": "POST", "get": "get", "M-SEARCH": "M-SEARCH", "": "OTHER",
		"POSTPOSTPOSTPOSTPOST": "OTHER", "PO ST": "OTHER", "P\x00": "OTHER", "PÖST": "OTHER",
	} {
		if got := billing.CleanMethod(in); got != want {
			t.Errorf("CleanMethod(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestValidateRefusesTextTheDatabasesCannotStore: PostgreSQL text holds
// no NUL and no invalid UTF-8; an event carrying either is a 4xx naming
// the field, not a failed insert (a 5xx) after validation passed.
func TestValidateRefusesTextTheDatabasesCannotStore(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	ok := billing.UsageEvent{EventID: "e1", UserID: "u1", Provider: "openai", Model: "gpt-4", Endpoint: "/v1/chat",
		Method: "POST", StatusCode: 200, Timestamp: now, ErrorMessage: "line one\r\nline two", Metadata: `{"a":"\u0000"}`}
	if fs := ok.Validate("body", now); len(fs) != 0 {
		t.Fatalf("valid event refused: %+v", fs)
	}
	for field, mutate := range map[string]func(*billing.UsageEvent){
		"body.endpoint":      func(e *billing.UsageEvent) { e.Endpoint = "/v1/\x00" },
		"body.error_message": func(e *billing.UsageEvent) { e.ErrorMessage = "bad \xff" },
		"body.method":        func(e *billing.UsageEvent) { e.Method = "PO ST" },
		"body.metadata":      func(e *billing.UsageEvent) { e.Metadata = "{\"a\":\"\xff\"}" },
		"body.model":         func(e *billing.UsageEvent) { e.Model = "gpt\x00" },
	} {
		e := ok
		mutate(&e)
		fs := e.Validate("body", now)
		if len(fs) != 1 || fs[0].Location != field {
			t.Errorf("%s: fields %+v; want exactly one, at %s", field, fs, field)
		}
	}
}

// FuzzCleanText: whatever goes in, what comes out is storable text within
// the bound, and text that was already storable and short is unchanged.
func FuzzCleanText(f *testing.F) {
	for _, s := range []string{"", "/v1/chat", "a\x00b", "\xff\xfe", "héllo wörld", strings.Repeat("é", 300)} {
		f.Add(s, 16)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		max = max%1024 + 1
		if max < 1 {
			max += 1024
		}
		got := billing.CleanText(s, max)
		if len(got) > max || !utf8.ValidString(got) || strings.ContainsRune(got, 0) {
			t.Fatalf("CleanText(%q, %d) = %q", s, max, got)
		}
		if utf8.ValidString(s) && !strings.ContainsRune(s, 0) && len(s) <= max && got != s {
			t.Fatalf("CleanText changed storable text %q to %q", s, got)
		}
	})
}
