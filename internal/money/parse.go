package money

import (
	"fmt"
	"math/big"

	"github.com/shopspring/decimal"
)

// maxTextLen bounds the text Parse will look at. The longest canonical amount
// is 21 bytes ("-9223372.036854775808"); the generous margin still admits
// padded zeros, while refusing megabyte-long digit strings whose big-integer
// conversion would cost quadratic time on attacker-controlled request bodies.
const maxTextLen = 256

// Parse reads decimal text in dollars, such as "0.00003", "-1.5", "2990.00"
// or "1e-6", and returns the exact Amount.
//
// The accepted syntax is an optional sign, one or more digits, an optional
// fraction of one or more digits, and an optional exponent; nothing else
// (no spaces, no leading or trailing dot, no hex, NaN or Inf) is accepted,
// because billing input that is not obviously a number should be rejected,
// not guessed at. Errors wrap ErrInvalid for malformed text, ErrPrecision
// when non-zero digits fall below one pico-dollar (trailing zeros are fine),
// and ErrOverflow when the value does not fit in an Amount.
func Parse(s string) (Amount, error) {
	a, err := parse(s)
	if err != nil {
		return 0, fmt.Errorf("parse %q: %w", clip(s), err)
	}
	return a, nil
}

// MustParse is Parse for amounts written into the source, such as price
// tables and tests, where a bad literal is a programming error that should
// stop the program at start-up rather than be handled at run time.
func MustParse(s string) Amount {
	a, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return a
}

// FromDecimal converts an exact decimal amount of dollars to an Amount under
// the same rules as Parse, so values computed with decimal arithmetic enter
// billing only when they are exactly representable.
func FromDecimal(d decimal.Decimal) (Amount, error) {
	a, err := fromDecimal(d)
	if err != nil {
		// The decimal itself is not printed: its text can be enormous
		// when the exponent is large.
		return 0, fmt.Errorf("from decimal: %w", err)
	}
	return a, nil
}

func parse(s string) (Amount, error) {
	if len(s) > maxTextLen {
		return 0, fmt.Errorf("longer than %d bytes: %w", maxTextLen, ErrInvalid)
	}
	nonZero, expNeg, hasExp, ok := scanNumber(s)
	if !ok {
		return 0, fmt.Errorf("not a decimal number: %w", ErrInvalid)
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		// The syntax is valid, so decimal refused the exponent as too
		// large in magnitude. A non-zero value that far out is certainly
		// out of range or below a pico-dollar.
		switch {
		case nonZero && hasExp && expNeg:
			return 0, ErrPrecision
		case nonZero && hasExp:
			return 0, ErrOverflow
		}
		return 0, fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	return fromDecimal(d)
}

// scanNumber checks s against [+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)? and
// reports whether the mantissa has a non-zero digit and whether an exponent,
// possibly negative, is present.
func scanNumber(s string) (nonZero, expNeg, hasExp, ok bool) {
	i := 0
	digits := func() int {
		start := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			if s[i] != '0' && !hasExp {
				nonZero = true
			}
			i++
		}
		return i - start
	}
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	if digits() == 0 {
		return false, false, false, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false, false, false, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		hasExp = true
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			expNeg = s[i] == '-'
			i++
		}
		if digits() == 0 {
			return false, false, false, false
		}
	}
	return nonZero, expNeg, hasExp, i == len(s)
}

// fromDecimal returns the bare sentinel errors so that each public caller
// can add its own context exactly once.
func fromDecimal(d decimal.Decimal) (Amount, error) {
	c := d.Coefficient()
	if c.Sign() == 0 {
		return 0, nil
	}
	// The amount in picos is c × 10^shift.
	shift := int64(d.Exponent()) + fracDigits
	if shift >= 0 {
		// |c| ≥ 1 and 10^19 exceeds MaxInt64, so larger shifts overflow;
		// checking first avoids building huge powers of ten.
		if shift > 18 {
			return 0, ErrOverflow
		}
		c.Mul(c, pow10(shift))
	} else {
		k := -shift
		// 10^k > 2^(3k), so a coefficient of at most 3k bits is smaller
		// than 10^k in magnitude and, being non-zero, cannot be a multiple
		// of it. This also keeps 10^k no larger than c itself below.
		if int64(c.BitLen()) <= 3*k {
			return 0, ErrPrecision
		}
		var r big.Int
		c.QuoRem(c, pow10(k), &r)
		if r.Sign() != 0 {
			return 0, ErrPrecision
		}
	}
	if !c.IsInt64() {
		return 0, ErrOverflow
	}
	return Amount(c.Int64()), nil
}

func pow10(n int64) *big.Int {
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(n), nil)
}

// clip shortens input quoted in error messages so that a hostile request
// cannot make logs arbitrarily large.
func clip(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
