package money

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Amount
		wantErr error
	}{
		// Seed prices: exact per-token prices must parse without drift.
		{in: "0.00003", want: 30_000_000},
		{in: "0.0000015", want: 1_500_000},
		{in: "0.0000000375", want: 37_500},
		{in: "0.00000015", want: 150_000},
		{in: "0.000000075", want: 75_000},
		{in: "2990", want: 2_990_000_000_000_000},

		{in: "29", want: 29 * Dollar},
		{in: "-1.5", want: -1_500_000_000_000},
		{in: "2990.00", want: 2990 * Dollar},
		{in: "1e-6", want: Micro},
		{in: "1E2", want: 100 * Dollar},
		{in: "2.5e+3", want: 2500 * Dollar},
		{in: "0.01", want: Cent},
		{in: "0.000000000001", want: Pico},
		{in: "0.0000000000010", want: Pico},
		{in: "10e-13", want: Pico},
		{in: "0", want: 0},
		{in: "-0", want: 0},
		{in: "+1", want: Dollar},
		{in: "007.50", want: 7_500_000_000_000},
		{in: "0e999", want: 0},
		{in: "0.0000000000000000", want: 0},
		{in: "9223372.036854775807", want: math.MaxInt64},
		{in: "-9223372.036854775808", want: math.MinInt64},

		{in: "0.0000000000001", wantErr: ErrPrecision},
		{in: "1.5e-12", wantErr: ErrPrecision},
		{in: "-0.0000000000015", wantErr: ErrPrecision},
		{in: "1e-99999999999", wantErr: ErrPrecision},
		{in: "9223372.036854775808", wantErr: ErrOverflow},
		{in: "-9223372.036854775809", wantErr: ErrOverflow},
		{in: "1e400", wantErr: ErrOverflow},
		{in: "1e6", want: 1_000_000 * Dollar},
		{in: "1e7", wantErr: ErrOverflow},
		{in: "1e99999999999", wantErr: ErrOverflow},
		{in: "99999999999999999999999999", wantErr: ErrOverflow},

		{in: "", wantErr: ErrInvalid},
		{in: "  ", wantErr: ErrInvalid},
		{in: " 1", wantErr: ErrInvalid},
		{in: "1 ", wantErr: ErrInvalid},
		{in: "abc", wantErr: ErrInvalid},
		{in: "NaN", wantErr: ErrInvalid},
		{in: "Inf", wantErr: ErrInvalid},
		{in: "-Infinity", wantErr: ErrInvalid},
		{in: "0x10", wantErr: ErrInvalid},
		{in: "0x1p-2", wantErr: ErrInvalid},
		{in: ".5", wantErr: ErrInvalid},
		{in: "5.", wantErr: ErrInvalid},
		{in: "-", wantErr: ErrInvalid},
		{in: "--1", wantErr: ErrInvalid},
		{in: "1e", wantErr: ErrInvalid},
		{in: "1e+", wantErr: ErrInvalid},
		{in: "1.2.3", wantErr: ErrInvalid},
		{in: "1,000", wantErr: ErrInvalid},
		{in: "1_000", wantErr: ErrInvalid},
		{in: "$1", wantErr: ErrInvalid},
		{in: "\u22121", wantErr: ErrInvalid}, // Unicode minus sign
		{in: "٣", wantErr: ErrInvalid},       // non-ASCII digit
		{in: "0e99999999999", wantErr: ErrInvalid},
		{in: strings.Repeat("0", 300) + "1", wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Parse(%q) = %d, %v; want error %v", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseErrorMentionsInput(t *testing.T) {
	_, err := Parse("0.0000000000001")
	if err == nil || !strings.Contains(err.Error(), `"0.0000000000001"`) {
		t.Fatalf("error %v does not quote the input", err)
	}
	_, err = Parse(strings.Repeat("9", 1000))
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("error for long input is %d bytes; want it clipped", len(err.Error()))
	}
}

func TestMustParse(t *testing.T) {
	if got := MustParse("0.00155"); got != 1_550_000_000 {
		t.Fatalf("MustParse = %d", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("MustParse did not panic on bad input")
		}
	}()
	MustParse("abc")
}

func TestFromDecimal(t *testing.T) {
	tests := []struct {
		in      decimal.Decimal
		want    Amount
		wantErr error
	}{
		{in: decimal.Decimal{}, want: 0},
		{in: decimal.New(3, -5), want: 30_000_000},
		{in: decimal.New(1000, -15), want: Pico},
		{in: decimal.New(1500, -15), wantErr: ErrPrecision},
		{in: decimal.New(10, -13), want: Pico},
		{in: decimal.New(1, -13), wantErr: ErrPrecision},
		{in: decimal.New(1, 1_000_000_000), wantErr: ErrOverflow},
		{in: decimal.New(1, -1_000_000_000), wantErr: ErrPrecision},
		{in: decimal.New(0, -1_000_000_000), want: 0},
		{in: decimal.New(-9, 6), want: -9_000_000 * Dollar},
		{in: decimal.New(-10, 6), wantErr: ErrOverflow},
		{in: decimal.New(9_223_372_036_854_775_807, -12), want: math.MaxInt64},
		{in: decimal.New(1, 7), wantErr: ErrOverflow},
	}
	for _, tt := range tests {
		got, err := FromDecimal(tt.in)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("FromDecimal(%v) = %d, %v; want error %v", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("FromDecimal(%v) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		in   Amount
		want string
	}{
		{0, "0"},
		{1_550_000_000, "0.00155"},
		{-1, "-0.000000000001"},
		{Pico, "0.000000000001"},
		{29 * Dollar, "29"},
		{-Dollar / 2, "-0.5"},
		{10 * Dollar, "10"},
		{1_234_567*Dollar + Cent, "1234567.01"},
		{Micro, "0.000001"},
		{37_500, "0.0000000375"},
		{math.MaxInt64, "9223372.036854775807"},
		{math.MinInt64, "-9223372.036854775808"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Amount(%d).String() = %q; want %q", int64(tt.in), got, tt.want)
		}
	}
}

// TestStringIgnoresDecimalGlobals guards against another package flipping
// shopspring/decimal's process-wide formatting switches.
func TestStringIgnoresDecimalGlobals(t *testing.T) {
	trim, sci := decimal.TrimTrailingZeros, decimal.UseScientificNotation
	defer func() { decimal.TrimTrailingZeros, decimal.UseScientificNotation = trim, sci }()
	decimal.TrimTrailingZeros, decimal.UseScientificNotation = false, true
	for a, want := range map[Amount]string{29 * Dollar: "29", 1_550_000_000: "0.00155", 0: "0"} {
		if got := a.String(); got != want {
			t.Errorf("Amount(%d).String() = %q; want %q", int64(a), got, want)
		}
	}
}

func TestDollars(t *testing.T) {
	tests := []struct {
		in   Amount
		want string
	}{
		{0, "$0.00"},
		{MustParse("1234.56"), "$1,234.56"},
		{-Cent, "-$0.01"},
		{-Cent / 2, "-$0.01"},
		{Cent / 2, "$0.01"},
		{Cent/2 - 1, "$0.00"},
		{-(Cent/2 - 1), "$0.00"},
		{-1, "$0.00"},
		{MustParse("999.995"), "$1,000.00"},
		{MustParse("999.994999999999"), "$999.99"},
		{100 * Dollar, "$100.00"},
		{1000 * Dollar, "$1,000.00"},
		{MustParse("-1234567.891"), "-$1,234,567.89"},
		{math.MaxInt64, "$9,223,372.04"},
		{math.MinInt64, "-$9,223,372.04"},
	}
	for _, tt := range tests {
		if got := tt.in.Dollars(); got != tt.want {
			t.Errorf("Amount(%d).Dollars() = %q; want %q", int64(tt.in), got, tt.want)
		}
	}
}

func TestFloat64(t *testing.T) {
	tests := []struct {
		in   Amount
		want float64
	}{
		{0, 0},
		{Dollar, 1},
		{-Dollar / 4, -0.25},
		{1_550_000_000, 0.00155},
		{Micro, 1e-6},
	}
	for _, tt := range tests {
		if got := tt.in.Float64(); got != tt.want {
			t.Errorf("Amount(%d).Float64() = %v; want %v", int64(tt.in), got, tt.want)
		}
	}
}

func TestJSON(t *testing.T) {
	type invoice struct {
		Total Amount  `json:"total"`
		Promo *Amount `json:"promo"`
	}
	b, err := json.Marshal(invoice{Total: 1_550_000_000})
	if err != nil || string(b) != `{"total":0.00155,"promo":null}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}

	good := map[string]Amount{
		`{"total":0.00155}`:      1_550_000_000,
		`{"total":"0.00155"}`:    1_550_000_000,
		`{"total":29}`:           29 * Dollar,
		`{"total":-1.5e0}`:       -1_500_000_000_000,
		`{"total":"\u0031.25"}`:  1_250_000_000_000,
		`{"total":1e-12}`:        Pico,
		`{"total":2990.0000000}`: 2990 * Dollar,
	}
	for in, want := range good {
		var v invoice
		if err := json.Unmarshal([]byte(in), &v); err != nil || v.Total != want {
			t.Errorf("Unmarshal(%s) = %d, %v; want %d", in, v.Total, err, want)
		}
	}

	bad := map[string]error{
		`{"total":null}`:                   ErrInvalid,
		`{"total":""}`:                     ErrInvalid,
		`{"total":" 1"}`:                   ErrInvalid,
		`{"total":"abc"}`:                  ErrInvalid,
		`{"total":true}`:                   ErrInvalid,
		`{"total":{}}`:                     ErrInvalid,
		`{"total":[1]}`:                    ErrInvalid,
		`{"total":0.0000000000001}`:        ErrPrecision,
		`{"total":"0.0000000000001"}`:      ErrPrecision,
		`{"total":9223372.036854775808}`:   ErrOverflow,
		`{"total":"-9223372.03685477581"}`: ErrOverflow,
	}
	for in, want := range bad {
		var v invoice
		if err := json.Unmarshal([]byte(in), &v); !errors.Is(err, want) {
			t.Errorf("Unmarshal(%s) = %d, %v; want error %v", in, v.Total, err, want)
		}
	}

	// A pointer field is how an optional amount is expressed.
	var v invoice
	if err := json.Unmarshal([]byte(`{"total":1,"promo":null}`), &v); err != nil || v.Promo != nil {
		t.Fatalf("optional promo: %v, %v", v.Promo, err)
	}
}

func TestUnmarshalJSONLeavesValueOnError(t *testing.T) {
	a := Dollar
	for _, in := range []string{`null`, `"x"`, `1e400`, `0.0000000000001`, ``} {
		if err := a.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("UnmarshalJSON(%s) succeeded", in)
		}
		if a != Dollar {
			t.Fatalf("UnmarshalJSON(%s) changed the amount to %d", in, a)
		}
	}
}

func TestText(t *testing.T) {
	m := map[Amount]int{Cent: 1, 29 * Dollar: 2}
	b, err := json.Marshal(m)
	if err != nil || string(b) != `{"0.01":1,"29":2}` {
		t.Fatalf("Marshal map = %s, %v", b, err)
	}
	var back map[Amount]int
	if err := json.Unmarshal(b, &back); err != nil || back[Cent] != 1 || back[29*Dollar] != 2 {
		t.Fatalf("Unmarshal map = %v, %v", back, err)
	}
	var a Amount
	if err := a.UnmarshalText([]byte("0.0000000000001")); !errors.Is(err, ErrPrecision) {
		t.Fatalf("UnmarshalText precision: %v", err)
	}
}

func TestSQL(t *testing.T) {
	v, err := Amount(-42).Value()
	if err != nil || v != int64(-42) {
		t.Fatalf("Value = %#v, %v", v, err)
	}
	good := []struct {
		src  any
		want Amount
	}{
		{int64(30_000_000), 30_000_000},
		{int32(-7), -7},
		{int(12), 12},
		{[]byte("9223372036854775807"), math.MaxInt64},
		{"-9223372036854775808", math.MinInt64},
		{"0", 0},
	}
	for _, tt := range good {
		var a Amount
		if err := a.Scan(tt.src); err != nil || a != tt.want {
			t.Errorf("Scan(%#v) = %d, %v; want %d", tt.src, a, err, tt.want)
		}
	}
	bad := []struct {
		src  any
		want error
	}{
		{nil, ErrInvalid},
		{1.5, ErrInvalid},
		{"0.00003", ErrInvalid},
		{"", ErrInvalid},
		{" 1", ErrInvalid},
		{[]byte("abc"), ErrInvalid},
		{"9223372036854775808", ErrOverflow},
		{true, ErrInvalid},
	}
	for _, tt := range bad {
		a := Dollar
		if err := a.Scan(tt.src); !errors.Is(err, tt.want) || a != Dollar {
			t.Errorf("Scan(%#v) = %d, %v; want error %v and no change", tt.src, a, err, tt.want)
		}
	}
}

func TestArithmetic(t *testing.T) {
	if _, err := Amount(math.MaxInt64).Add(1); !errors.Is(err, ErrOverflow) {
		t.Errorf("MaxInt64+1: %v", err)
	}
	if _, err := Amount(math.MinInt64).Add(-1); !errors.Is(err, ErrOverflow) {
		t.Errorf("MinInt64-1: %v", err)
	}
	// The total fits even though a running total would overflow midway.
	if got, err := Sum(math.MaxInt64, 1, -1); err != nil || got != math.MaxInt64 {
		t.Errorf("Sum(Max, 1, -1) = %d, %v", got, err)
	}
	if got, err := Sum(); err != nil || got != 0 {
		t.Errorf("Sum() = %d, %v", got, err)
	}
	if _, err := Sum(math.MaxInt64, math.MaxInt64, -1); !errors.Is(err, ErrOverflow) {
		t.Errorf("Sum overflow: %v", err)
	}
	if got, err := MustParse("0.0000015").MulInt(1_000_000); err != nil || got != MustParse("1.5") {
		t.Errorf("price × tokens = %s, %v", got, err)
	}
	if _, err := Amount(-1).MulInt(math.MinInt64); !errors.Is(err, ErrOverflow) {
		t.Errorf("-1 × MinInt64: %v", err)
	}
	if _, err := Amount(math.MinInt64).MulInt(-1); !errors.Is(err, ErrOverflow) {
		t.Errorf("MinInt64 × -1: %v", err)
	}
	ratio := []struct {
		a        Amount
		num, den int64
		want     Amount
	}{
		{5, 1, 2, 3},
		{-5, 1, 2, -3},
		{5, -1, 2, -3},
		{1, 1, 2, 1},
		{-1, 1, 2, -1},
		{1, 1, 3, 0},
		{-1, 1, 3, 0},
		{29 * Dollar, 10, 30, MustParse("9.666666666667")},
		{math.MaxInt64, math.MaxInt64, math.MaxInt64, math.MaxInt64},
		{math.MinInt64, 3, 3, math.MinInt64},
	}
	for _, tt := range ratio {
		if got, err := tt.a.MulRatio(tt.num, tt.den); err != nil || got != tt.want {
			t.Errorf("%d.MulRatio(%d, %d) = %d, %v; want %d", int64(tt.a), tt.num, tt.den, got, err, tt.want)
		}
	}
	if _, err := Dollar.MulRatio(1, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("den 0: %v", err)
	}
	if _, err := Dollar.MulRatio(1, -1); !errors.Is(err, ErrInvalid) {
		t.Errorf("den -1: %v", err)
	}
	if _, err := Amount(math.MinInt64).MulRatio(-1, 1); !errors.Is(err, ErrOverflow) {
		t.Errorf("MinInt64 × -1/1: %v", err)
	}
}
