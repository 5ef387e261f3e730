package web

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/alwrity/alwrity-billing/internal/money"
)

// The formatters below turn exact figures into text for people. They are
// lossy on purpose ("12.3k tokens"), so nothing parses their output back
// except ParseCompact, which the browser tests use to compare what a page
// shows with the JSON API.

// Money formats an amount for a person: whole cents with thousands
// separators ($1,234.56); amounts under a cent keep up to three significant
// digits ($0.00155), so a per-call cost never shows as $0.00.
func Money(a money.Amount) string {
	if a == 0 || a >= money.Cent || a <= -money.Cent {
		return a.Dollars()
	}
	sign := ""
	if a < 0 {
		sign, a = "-", -a
	}
	// Three significant digits of a sub-cent amount: find the power of ten
	// of the first digit, then round the exact decimal there.
	d := a.Decimal()
	// Amounts in [0.001, 0.01) have their first digit in the third
	// place, so three significant digits end in the fifth; each further
	// leading zero adds a place.
	one := decimal.New(1, 0)
	places := int32(5)
	for p := d.Shift(3); p.LessThan(one); p = p.Shift(1) {
		places++
	}
	return sign + "$" + d.Round(places).String()
}

// Count formats a count with thousands separators: 1,234,567.
func Count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// compactUnits are the suffixes of Compact, largest first.
var compactUnits = []struct {
	suffix string
	size   float64
}{{"T", 1e12}, {"B", 1e9}, {"M", 1e6}, {"k", 1e3}}

// Compact formats a count briefly: 999, 1.2k, 12.3k, 123k, 4.5M, 1.2B. One
// decimal is kept below 100 of a unit; the value is rounded half away from
// zero, and a value that rounds up to the next unit moves to it (999,950
// is 1M, not 1000k).
func Compact(n int64) string {
	neg := n < 0
	f := math.Abs(float64(n))
	out := ""
	if f < 1000 {
		out = strconv.FormatInt(int64(f), 10)
	} else {
		for i := len(compactUnits) - 1; i >= 0; i-- {
			u := compactUnits[i]
			next := math.Inf(1)
			if i > 0 {
				next = compactUnits[i-1].size
			}
			v := f / u.size
			r := roundTo(v, decimalsFor(v))
			if r*u.size >= next && i > 0 {
				continue
			}
			out = strconv.FormatFloat(r, 'f', -1, 64) + u.suffix
			break
		}
	}
	if neg {
		return "-" + out
	}
	return out
}

func decimalsFor(v float64) int {
	if roundTo(v, 1) < 100 {
		return 1
	}
	return 0
}

func roundTo(v float64, decimals int) float64 {
	p := math.Pow10(decimals)
	return math.Round(v*p) / p
}

// ParseCompact reads what Compact or Count wrote ("12.3k", "1,234", "4.5M")
// back to an approximate number. Errors: text that is neither.
func ParseCompact(s string) (float64, error) {
	s = strings.TrimSpace(s)
	mult := 1.0
	for _, u := range compactUnits {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = rest, u.size
			break
		}
	}
	plain := strings.ReplaceAll(s, ",", "")
	if plain == "" || strings.ContainsAny(plain, "eEnNiIxX_+") {
		return 0, fmt.Errorf("%q is not a count", s)
	}
	v, err := strconv.ParseFloat(plain, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a count", s)
	}
	return v * mult, nil
}

// Percent formats a percentage with at most one decimal: 12.5 %, 80 %.
func Percent(p float64) string {
	return strconv.FormatFloat(roundTo(p, 1), 'f', -1, 64) + "%"
}

// Seconds formats a duration given in seconds in the unit that reads best:
// 850 ms, 1.42 s, 2 min 5 s.
func Seconds(s float64) string {
	switch {
	case s <= 0:
		return "0 ms"
	case s < 1:
		ms := roundTo(s*1000, 0)
		if ms >= 1000 {
			return "1 s"
		}
		if ms == 0 {
			return "<1 ms"
		}
		return strconv.FormatFloat(ms, 'f', -1, 64) + " ms"
	case s < 60:
		return strconv.FormatFloat(roundTo(s, 2), 'f', -1, 64) + " s"
	}
	d := time.Duration(math.Round(s)) * time.Second
	return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
}

// Millis formats a latency given in milliseconds (health figures).
func Millis(ms float64) string { return Seconds(ms / 1000) }

// Date formats a time as a day: 2026-11-15.
func Date(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02")
}

// DateTime formats a time to the minute in UTC: 2026-11-15 12:04 UTC.
func DateTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}
