package httpapi_test

import (
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/storetest"
)

var healthSpec = Obj{
	"status": Enum{"healthy", "warning", "critical"}, "window_seconds": "int", "recent_requests": "int",
	"recent_errors": "int", "error_rate": "float", "database": "string", "timestamp": "time",
	"providers": MapOf{Obj{"requests": "int", "errors": "int", "error_rate": "float", "p50_ms": "float", "p95_ms": "float"}},
}

func TestHealth(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)

		// Public, and healthy with no traffic.
		d := e.data(e.get("/api/subscription/health", ""))
		check(t, "health", d, healthSpec)
		if d["status"] != "healthy" || num(t, d["recent_requests"]) != "0" || float(t, d["error_rate"]) != 0 ||
			d["database"] != "ok" || d["timestamp"] != "2026-11-15T12:00:00Z" || len(obj(t, d["providers"])) != 0 ||
			num(t, d["window_seconds"]) != "900" {
			t.Errorf("idle health = %v", d)
		}

		ago := func(m int) time.Time { return defaultNow.Add(-time.Duration(m) * time.Minute) }
		e.record(
			call{user: "u1", provider: "openai", at: ago(1), rt: 0.1},
			call{user: "u2", provider: "openai", at: ago(2), rt: 0.3, status: 500},
			call{user: "u1", provider: "openai", at: ago(3), rt: 0.2},
			call{user: "u1", provider: "gemini", at: ago(4), rt: 1.0},
			// Outside the 15-minute window: never counted.
			call{user: "u1", provider: "gemini", at: ago(16), rt: 9, status: 503},
			call{user: "u1", provider: "mistral", at: ago(60), rt: 9, status: 503},
		)
		d = e.data(e.get("/api/subscription/health", ""))
		check(t, "health", d, healthSpec)
		if num(t, d["recent_requests"]) != "4" || num(t, d["recent_errors"]) != "1" || float(t, d["error_rate"]) != 25 ||
			d["status"] != "critical" {
			t.Errorf("health = %v", d)
		}
		ps := obj(t, d["providers"])
		if len(ps) != 2 {
			t.Errorf("providers = %v, want openai and gemini", ps)
		}
		o, g := obj(t, ps["openai"]), obj(t, ps["gemini"])
		if num(t, o["requests"]) != "3" || num(t, o["errors"]) != "1" || float(t, o["error_rate"]) != 33.33 ||
			float(t, o["p50_ms"]) != 200 || float(t, o["p95_ms"]) != 300 {
			t.Errorf("openai health = %v", o)
		}
		if num(t, g["requests"]) != "1" || num(t, g["errors"]) != "0" || float(t, g["p50_ms"]) != 1000 || float(t, g["p95_ms"]) != 1000 {
			t.Errorf("gemini health = %v", g)
		}

		// 1 failure in 16 calls is 6.25 %: a warning.
		e.record(many(12, call{user: "u3", provider: "anthropic", at: ago(5), rt: 0.05})...)
		d = e.data(e.get("/api/subscription/health", ""))
		if d["status"] != "warning" || float(t, d["error_rate"]) != 6.25 {
			t.Errorf("health = %v", d)
		}
		// Later, everything has left the window.
		e.setNow(defaultNow.Add(time.Hour))
		d = e.data(e.get("/api/subscription/health", ""))
		if d["status"] != "healthy" || num(t, d["recent_requests"]) != "0" {
			t.Errorf("health an hour later = %v", d)
		}
	})
}
