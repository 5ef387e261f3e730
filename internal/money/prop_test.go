package money

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
	"pgregory.net/rapid"
)

// edges are the values where sign handling, carries and range checks tend to
// go wrong, drawn often so that rapid does not have to stumble on them.
var edges = []int64{
	0, 1, -1, 2, -2, 9, 10, 11, 99, 100,
	int64(Cent/2 - 1), int64(Cent / 2), int64(-Cent / 2), int64(Cent), int64(Dollar), -int64(Dollar),
	math.MaxInt64, math.MaxInt64 - 1, math.MinInt64, math.MinInt64 + 1,
	math.MaxInt64 / 2, math.MinInt64 / 2, math.MaxInt32, math.MinInt32,
}

func int64s() *rapid.Generator[int64] {
	return rapid.OneOf(
		rapid.Int64(),
		rapid.SampledFrom(edges),
		rapid.Int64Range(-1e15, 1e15),
		rapid.Int64Range(-1000, 1000),
	)
}

func amounts() *rapid.Generator[Amount] {
	return rapid.Map(int64s(), func(x int64) Amount { return Amount(x) })
}

func picoRat(a Amount) *big.Rat { return new(big.Rat).SetFrac64(int64(a), int64(Dollar)) }

// fits converts an exact big result back to an Amount, reporting whether it
// is within range; it is the oracle for the overflow checks.
func fits(x *big.Int) (Amount, bool) {
	if !x.IsInt64() {
		return 0, false
	}
	return Amount(x.Int64()), true
}

func checkOracle(t *rapid.T, what string, got Amount, err error, want *big.Int) {
	w, ok := fits(want)
	switch {
	case ok && (err != nil || got != w):
		t.Fatalf("%s = %d, %v; want %d", what, got, err, w)
	case !ok && !errors.Is(err, ErrOverflow):
		t.Fatalf("%s = %d, %v; want ErrOverflow (exact %s)", what, got, err, want)
	}
}

func TestPropStringRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := amounts().Draw(t, "a")
		s := a.String()
		if strings.ContainsAny(s, "eE") {
			t.Fatalf("String() = %q uses exponent notation", s)
		}
		got, err := Parse(s)
		if err != nil || got != a {
			t.Fatalf("Parse(%q) = %d, %v; want %d", s, got, err, a)
		}
		if r, ok := new(big.Rat).SetString(s); !ok || r.Cmp(picoRat(a)) != 0 {
			t.Fatalf("String() = %q is not exactly %d picos", s, a)
		}
		if got, err := FromDecimal(a.Decimal()); err != nil || got != a {
			t.Fatalf("FromDecimal(Decimal()) = %d, %v; want %d", got, err, a)
		}
		// The spelling of an exact decimal library, trailing zeros cut.
		if want := strings.TrimSuffix(strings.TrimRight(a.Decimal().StringFixed(fracDigits), "0"), "."); s != want {
			t.Fatalf("String() = %q; the decimal spelling is %q", s, want)
		}
	})
}

func TestPropJSONRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := amounts().Draw(t, "a")
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		var got Amount
		if err := json.Unmarshal(b, &got); err != nil || got != a {
			t.Fatalf("Unmarshal(%s) = %d, %v; want %d", b, got, err, a)
		}
		// Any exact decimal reader sees the same value we meant.
		d, err := decimal.NewFromString(string(b))
		if err != nil || !d.Equal(a.Decimal()) {
			t.Fatalf("decimal of %s = %v, %v; want %v", b, d, err, a.Decimal())
		}
		var raw json.Number
		if err := json.Unmarshal(b, &raw); err != nil || string(raw) != a.String() {
			t.Fatalf("%s is not a JSON number: %v", b, err)
		}
		// The quoted form is accepted too.
		quoted, _ := json.Marshal(a.String())
		got = 0
		if err := json.Unmarshal(quoted, &got); err != nil || got != a {
			t.Fatalf("Unmarshal(%s) = %d, %v; want %d", quoted, got, err, a)
		}
		// Text form round-trips.
		txt, _ := a.MarshalText()
		got = 0
		if err := got.UnmarshalText(txt); err != nil || got != a {
			t.Fatalf("UnmarshalText(%s) = %d, %v; want %d", txt, got, err, a)
		}
	})
}

func TestPropSQLRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := amounts().Draw(t, "a")
		v, err := a.Value()
		if err != nil {
			t.Fatal(err)
		}
		var got Amount
		if err := got.Scan(v); err != nil || got != a {
			t.Fatalf("Scan(Value()) = %d, %v; want %d", got, err, a)
		}
		got = 0
		if err := got.Scan(strconv.FormatInt(int64(a), 10)); err != nil || got != a {
			t.Fatalf("Scan(text) = %d, %v; want %d", got, err, a)
		}
	})
}

func TestPropAdd(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := amounts().Draw(t, "a"), amounts().Draw(t, "b")
		got, err := a.Add(b)
		want := new(big.Int).Add(big.NewInt(int64(a)), big.NewInt(int64(b)))
		checkOracle(t, "Add", got, err, want)
	})
}

func TestPropSum(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		xs := rapid.SliceOfN(amounts(), 0, 12).Draw(t, "xs")
		got, err := Sum(xs...)
		want := new(big.Int)
		for _, x := range xs {
			want.Add(want, big.NewInt(int64(x)))
		}
		checkOracle(t, "Sum", got, err, want)
	})
}

func TestPropMulInt(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, n := amounts().Draw(t, "a"), int64s().Draw(t, "n")
		got, err := a.MulInt(n)
		want := new(big.Int).Mul(big.NewInt(int64(a)), big.NewInt(n))
		checkOracle(t, "MulInt", got, err, want)
	})
}

// roundHalfAway rounds r to the nearest integer, ties away from zero, using
// only big.Rat so that it shares no code with MulRatio.
func roundHalfAway(r *big.Rat) *big.Int {
	abs := new(big.Rat).Abs(r)
	abs.Add(abs, big.NewRat(1, 2))
	n := new(big.Int).Quo(abs.Num(), abs.Denom()) // floor, as abs > 0
	if r.Sign() < 0 {
		n.Neg(n)
	}
	return n
}

func TestPropMulRatio(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := amounts().Draw(t, "a")
		num := int64s().Draw(t, "num")
		den := rapid.OneOf(int64s(), rapid.Int64Range(-3, 40)).Draw(t, "den")
		got, err := a.MulRatio(num, den)
		if den <= 0 {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("MulRatio(%d, %d) = %d, %v; want ErrInvalid", num, den, got, err)
			}
			return
		}
		r := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(int64(a)), big.NewInt(num)), big.NewInt(den))
		checkOracle(t, "MulRatio", got, err, roundHalfAway(r))
	})
}

func TestPropDollars(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := amounts().Draw(t, "a")
		s := a.Dollars()
		plain := strings.ReplaceAll(strings.Replace(s, "$", "", 1), ",", "")
		d, err := decimal.NewFromString(plain)
		if err != nil {
			t.Fatalf("Dollars() = %q: %v", s, err)
		}
		cents := roundHalfAway(new(big.Rat).SetFrac64(int64(a), int64(Cent)))
		if want := decimal.NewFromBigInt(cents, -2); !d.Equal(want) {
			t.Fatalf("Dollars() = %q; want %s", s, want.StringFixed(2))
		}
		if strings.HasPrefix(s, "-") && d.IsZero() {
			t.Fatalf("Dollars() = %q shows negative zero", s)
		}
	})
}
