package web

import (
	"math"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/money"
)

func TestMoney(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string
	}{
		{"0", "$0.00"},
		{"1234.56", "$1,234.56"},
		{"1234.565", "$1,234.57"},
		{"29", "$29.00"},
		{"0.01", "$0.01"},
		{"0.00155", "$0.00155"},
		{"0.001554", "$0.00155"},
		{"0.0015551", "$0.00156"},
		{"0.009999", "$0.01"},
		{"0.0000375", "$0.0000375"},
		{"0.000000000001", "$0.000000000001"},
		{"-0.00155", "-$0.00155"},
		{"-12.5", "-$12.50"},
		{"1000000", "$1,000,000.00"},
	} {
		if got := Money(money.MustParse(tt.in)); got != tt.want {
			t.Errorf("Money(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCountAndCompact(t *testing.T) {
	for _, tt := range []struct {
		n              int64
		count, compact string
	}{
		{0, "0", "0"},
		{999, "999", "999"},
		{1000, "1,000", "1k"},
		{1234, "1,234", "1.2k"},
		{12_345, "12,345", "12.3k"},
		{99_949, "99,949", "99.9k"},
		{99_950, "99,950", "100k"},
		{123_456, "123,456", "123k"},
		{999_499, "999,499", "999k"},
		{999_500, "999,500", "1M"},
		{4_500_000, "4,500,000", "4.5M"},
		{1_234_567_890, "1,234,567,890", "1.2B"},
		{-12_345, "-12,345", "-12.3k"},
	} {
		if got := Count(tt.n); got != tt.count {
			t.Errorf("Count(%d) = %q, want %q", tt.n, got, tt.count)
		}
		if got := Compact(tt.n); got != tt.compact {
			t.Errorf("Compact(%d) = %q, want %q", tt.n, got, tt.compact)
		}
	}
}

func TestPercentAndDurations(t *testing.T) {
	for _, tt := range []struct {
		got, want string
	}{
		{Percent(0), "0%"}, {Percent(12.345), "12.3%"}, {Percent(80), "80%"}, {Percent(99.96), "100%"},
		{Seconds(0), "0 ms"}, {Seconds(0.0004), "<1 ms"}, {Seconds(0.85), "850 ms"}, {Seconds(0.9996), "1 s"},
		{Seconds(1.4249), "1.42 s"}, {Seconds(59.99), "59.99 s"}, {Seconds(125), "2 min 5 s"},
		{Millis(850), "850 ms"}, {Millis(1420), "1.42 s"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestParseCompact(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"12.3k", 12_300, true}, {"1,234", 1234, true}, {"4.5M", 4_500_000, true}, {"999", 999, true},
		{" 1B ", 1e9, true}, {"-2k", -2000, true},
		{"", 0, false}, {"k", 0, false}, {"1e3", 0, false}, {"NaN", 0, false}, {"Inf", 0, false}, {"12x", 0, false},
		{"0x10", 0, false}, {"1_000", 0, false}, {"+5", 0, false},
	} {
		got, err := ParseCompact(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("ParseCompact(%q) = %v, %v; want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// FuzzParseCompact checks the parser never panics or yields a non-finite
// number, and that what Compact and Count write reads back within the
// rounding Compact allows (half a unit of its last digit, under 0.5 %).
func FuzzParseCompact(f *testing.F) {
	for _, s := range []string{"12.3k", "1,234", "4.5M", "0", "-7", "1e9", "∞", "1.2.3k", ",,,", "9999999999999999999999T"} {
		f.Add(s, int64(12_345))
	}
	f.Fuzz(func(t *testing.T, s string, n int64) {
		if v, err := ParseCompact(s); err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
			t.Fatalf("ParseCompact(%q) = %v", s, v)
		}
		if n == math.MinInt64 {
			return
		}
		c := Compact(n)
		v, err := ParseCompact(c)
		if err != nil {
			t.Fatalf("ParseCompact(Compact(%d) = %q): %v", n, c, err)
		}
		if diff := math.Abs(v - float64(n)); diff > 0.005*math.Abs(float64(n))+0.5 {
			t.Fatalf("Compact(%d) = %q reads back as %v", n, c, v)
		}
		if v, err := ParseCompact(Count(n)); err != nil || v != float64(n) {
			t.Fatalf("ParseCompact(Count(%d) = %q) = %v, %v", n, Count(n), v, err)
		}
	})
}

// FuzzMoney checks that Money never prints $0.00 for a non-zero amount
// under a cent, and always has a dollar sign and no exponent.
func FuzzMoney(f *testing.F) {
	for _, v := range []int64{0, 1, 15_500_000, 9_999_999_999, 10_000_000_000, -1, 1 << 62} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v int64) {
		s := Money(money.Amount(v))
		if !strings.Contains(s, "$") || strings.ContainsAny(s, "eE") {
			t.Fatalf("Money(%d) = %q", v, s)
		}
		if v != 0 && money.Amount(v) < money.Cent && money.Amount(v) > -money.Cent && strings.TrimPrefix(s, "-") == "$0.00" {
			t.Fatalf("Money(%d) = %q hides a sub-cent amount", v, s)
		}
	})
}
