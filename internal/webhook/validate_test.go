package webhook

import (
	"net/url"
	"slices"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/webhooks"
)

func TestValidateEndpoint(t *testing.T) {
	cases := []struct {
		url    string
		events []string
		bad    []string // the fields named
		want   []string
	}{
		{"https://example.com/hook", []string{"usage.limit_reached", "alert.created", "alert.created"}, nil,
			[]string{"alert.created", "usage.limit_reached"}},
		{"http://127.0.0.1:8080/x?token=1", webhooks.EventTypes(), nil, []string{"alert.created", "subscription.changed", "invoice.issued", "usage.limit_reached"}},
		{"", []string{"alert.created"}, []string{"body.url"}, nil},
		{"ftp://example.com", []string{"alert.created"}, []string{"body.url"}, nil},
		{"https://", []string{"alert.created"}, []string{"body.url"}, nil},
		{"https://u:p@example.com", []string{"alert.created"}, []string{"body.url"}, nil},
		{"https://example.com/#x", []string{"alert.created"}, []string{"body.url"}, nil},
		{"https://example.com", nil, []string{"body.events"}, nil},
		{"https://example.com", []string{"alert.created", "ping"}, []string{"body.events[1]"}, nil},
		{"mailto:x", []string{"x"}, []string{"body.url", "body.events[0]"}, nil},
	}
	for _, c := range cases {
		got, err := ValidateEndpoint(c.url, c.events)
		if c.bad == nil {
			if err != nil || !slices.Equal(got, c.want) {
				t.Errorf("ValidateEndpoint(%q, %v) = %v, %v; want %v", c.url, c.events, got, err, c.want)
			}
			continue
		}
		var e *billing.Error
		if err == nil || billing.ErrorCode(err) != billing.CodeInvalid {
			t.Errorf("ValidateEndpoint(%q, %v) = %v, want invalid", c.url, c.events, err)
			continue
		}
		e = err.(*billing.Error)
		var locs []string
		for _, f := range e.Fields {
			locs = append(locs, f.Location)
		}
		if !slices.Equal(locs, c.bad) {
			t.Errorf("ValidateEndpoint(%q, %v) named %v, want %v", c.url, c.events, locs, c.bad)
		}
	}
}

// FuzzValidateEndpoint: any URL text either is refused or is an http(s)
// URL with a host and no credentials.
func FuzzValidateEndpoint(f *testing.F) {
	for _, s := range []string{"https://example.com/hook", "http://[::1]:80/", "https://u@h", "http://%41", "https://h/#", " http://h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if _, err := ValidateEndpoint(raw, []string{webhooks.EventAlertCreated}); err != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil {
			t.Fatalf("accepted %q", raw)
		}
	})
}
