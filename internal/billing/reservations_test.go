package billing_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

func TestRefusalReportsHoldsUpToTheLimitsRoom(t *testing.T) {
	for _, c := range []struct {
		name                  string
		used, reserved, limit int64
		want                  int64
	}{
		{"holds within the room", 100, 40, 145, 140},
		{"holds fill the room", 100, 45, 145, 145},
		// A lease's recorded calls, counted in the usage and still in
		// the lease for a moment: never reported past the limit.
		{"holds counted twice", 140, 14, 145, 145},
		{"nothing held", 145, 0, 145, 145},
		// Settled usage is never hidden, also past the limit.
		{"usage past the limit", 150, 10, 145, 150},
		{"no room in the plan", 0, 3, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := billing.LimitInfo{Key: "openai_calls", Provider: "openai", Used: c.used, Reserved: c.reserved, Limit: c.limit, Requested: 1, Period: "2026-11"}
			if got := l.InUse(); got != c.want {
				t.Errorf("InUse() = %d, want %d", got, c.want)
			}
			if c.limit > 0 {
				want := "Used " + strconv.FormatInt(c.want, 10) + " of " + strconv.FormatInt(c.limit, 10) + " "
				if msg := l.RefusalMessage(); !strings.Contains(msg, want) {
					t.Errorf("RefusalMessage() = %q, want it to say %q", msg, want)
				}
			}
		})
	}
	cost := billing.LimitInfo{Key: "monthly_cost", Used: int64(money.MustParse("9")), Reserved: int64(money.MustParse("3")),
		Limit: int64(money.MustParse("10")), Money: true, Period: "2026-11"}
	if msg := cost.RefusalMessage(); !strings.Contains(msg, "Used $10.00 of $10.00") {
		t.Errorf("cost refusal: %q", msg)
	}
}
