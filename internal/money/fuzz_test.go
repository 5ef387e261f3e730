package money

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"regexp"
	"strconv"
	"testing"

	"github.com/shopspring/decimal"
)

// syntax is the grammar Parse documents, written independently of its
// hand-written scanner.
var syntax = regexp.MustCompile(`^[+-]?[0-9]+(\.[0-9]+)?([eE]([+-]?[0-9]+))?$`)

var parseSeeds = []string{
	"0.00003", "0.0000015", "0.0000000375", "0.00000015", "0.000000075", "2990",
	"29", "-1.5", "2990.00", "1e-6", "0.0000000000010", "0.0000000000001",
	"9223372.036854775807", "9223372.036854775808", "-9223372.036854775808",
	"1e400", "1e-400", "0e999", "abc", "", "  ", "NaN", "Inf", "0x10", ".5", "5.",
	"+1", "-0", "1E+2", "\u22121", "1e99999999999", "1_000",
}

func FuzzParse(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			checkParseError(t, s, err)
			return
		}
		if !syntax.MatchString(s) || len(s) > maxTextLen {
			t.Fatalf("Parse(%q) = %d; want ErrInvalid", s, a)
		}
		back, err := Parse(a.String())
		if err != nil || back != a {
			t.Fatalf("Parse(%q) = %d, but Parse(%q) = %d, %v", s, a, a.String(), back, err)
		}
		d, err := decimal.NewFromString(s)
		if err != nil || !d.Equal(a.Decimal()) {
			t.Fatalf("Parse(%q) = %s, but decimal reads %v, %v", s, a, d, err)
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok || r.Cmp(picoRat(a)) != 0 {
			t.Fatalf("Parse(%q) = %s, but big.Rat reads %v", s, a, r)
		}
	})
}

// checkParseError checks that a failure carries the right sentinel, using
// big.Rat as the oracle whenever the exponent is small enough to evaluate.
func checkParseError(t *testing.T, s string, err error) {
	m := syntax.FindStringSubmatch(s)
	if m == nil || len(s) > maxTextLen {
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("Parse(%q): %v; want ErrInvalid", s, err)
		}
		return
	}
	if exp, perr := strconv.ParseInt(m[3], 10, 32); m[3] != "" && (perr != nil || exp > 1000 || exp < -1000) {
		if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrPrecision) && !errors.Is(err, ErrOverflow) {
			t.Fatalf("Parse(%q): %v; want a sentinel error", s, err)
		}
		return
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("big.Rat cannot read %q, which matches the grammar", s)
	}
	picos := r.Mul(r, new(big.Rat).SetInt64(int64(Dollar)))
	switch {
	case !picos.IsInt():
		if !errors.Is(err, ErrPrecision) {
			t.Fatalf("Parse(%q): %v; want ErrPrecision", s, err)
		}
	case !picos.Num().IsInt64():
		if !errors.Is(err, ErrOverflow) {
			t.Fatalf("Parse(%q): %v; want ErrOverflow", s, err)
		}
	default:
		t.Fatalf("Parse(%q) failed with %v, but it is exactly %s picos", s, err, picos.Num())
	}
}

func FuzzUnmarshalJSON(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add([]byte(s))
		f.Add([]byte(strconv.Quote(s)))
	}
	for _, s := range []string{`null`, `true`, `{}`, `[]`, `"\u0030.5"`, `"1`, `1"`, ` 1 `, `"0.00003"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a := Amount(42)
		err := a.UnmarshalJSON(b)
		if err != nil {
			if a != 42 {
				t.Fatalf("UnmarshalJSON(%q) failed with %v but changed the amount to %d", b, err, a)
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrPrecision) && !errors.Is(err, ErrOverflow) {
				t.Fatalf("UnmarshalJSON(%q): %v; want a sentinel error", b, err)
			}
		} else {
			// Whatever was accepted must mean the same as the text inside.
			text := string(bytes.Trim(b, " \t\r\n"))
			var s string
			if json.Unmarshal(b, &s) == nil {
				text = s
			}
			if p, perr := Parse(text); perr != nil || p != a {
				t.Fatalf("UnmarshalJSON(%q) = %d, but Parse(%q) = %d, %v", b, a, text, p, perr)
			}
			out, _ := json.Marshal(a)
			var back Amount
			if err := json.Unmarshal(out, &back); err != nil || back != a {
				t.Fatalf("round trip of %d via %s = %d, %v", a, out, back, err)
			}
		}
		// Through encoding/json the outcome must be the same whenever the
		// document is valid JSON at all.
		if json.Valid(b) {
			var via Amount
			jerr := json.Unmarshal(b, &via)
			if (jerr == nil) != (err == nil) || (err == nil && via != a) {
				t.Fatalf("json.Unmarshal(%q) = %d, %v; direct call = %d, %v", b, via, jerr, a, err)
			}
		}
	})
}
