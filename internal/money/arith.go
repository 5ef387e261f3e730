package money

import (
	"fmt"
	"math"
	"math/big"
)

// Add returns a+b. It reports ErrOverflow instead of wrapping around, because
// a wrapped total would silently turn a large charge into a credit.
func (a Amount) Add(b Amount) (Amount, error) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, fmt.Errorf("%s + %s: %w", a, b, ErrOverflow)
	}
	return a + b, nil
}

// MulInt returns a×n, typically a per-token price times a token count. It
// reports ErrOverflow instead of wrapping around, because token counts come
// from usage reports we do not control.
func (a Amount) MulInt(n int64) (Amount, error) {
	x := int64(a)
	p := x * n
	// Division undoes the multiplication exactly when it did not overflow;
	// -1 × MinInt64 is the one case where the check itself overflows.
	if x != 0 && (p/x != n || (x == -1 && n == math.MinInt64)) {
		return 0, fmt.Errorf("%s × %d: %w", a, n, ErrOverflow)
	}
	return Amount(p), nil
}

// Sum returns the exact total of xs. It reports ErrOverflow only when the
// total itself does not fit, so the order of line items never decides whether
// an invoice can be summed (a running int64 total could overflow midway).
func Sum(xs ...Amount) (Amount, error) {
	var total Amount
	for i, x := range xs {
		t, err := total.Add(x)
		if err != nil {
			return sumBig(total, xs[i:])
		}
		total = t
	}
	return total, nil
}

// sumBig finishes a sum whose running int64 total overflowed; it is the rare
// path, so it trades speed for exactness.
func sumBig(partial Amount, rest []Amount) (Amount, error) {
	t := big.NewInt(int64(partial))
	var x big.Int
	for _, a := range rest {
		t.Add(t, x.SetInt64(int64(a)))
	}
	if !t.IsInt64() {
		return 0, fmt.Errorf("sum of %d amounts: %w", len(rest), ErrOverflow)
	}
	return Amount(t.Int64()), nil
}

// MulRatio returns a×num/den rounded to the nearest pico-dollar, half away
// from zero, for prorating a plan over days or projecting spend over a month.
//
// The product is formed in arbitrary precision, so a large amount times a
// large numerator cannot overflow before the division brings it back into
// range; only a result that itself does not fit reports ErrOverflow. A den of
// zero or less reports ErrInvalid: a negative divisor is almost always a
// swapped argument, and callers wanting a negative ratio can negate num.
func (a Amount) MulRatio(num, den int64) (Amount, error) {
	if den <= 0 {
		return 0, fmt.Errorf("%s × %d/%d: non-positive denominator: %w", a, num, den, ErrInvalid)
	}
	p := new(big.Int).Mul(big.NewInt(int64(a)), big.NewInt(num))
	sign := p.Sign()
	d := big.NewInt(den)
	var r big.Int
	p.QuoRem(p, d, &r) // truncates toward zero
	// Round half away from zero: step away from zero when 2|r| ≥ den.
	if r.Abs(&r).Lsh(&r, 1).Cmp(d) >= 0 {
		p.Add(p, big.NewInt(int64(sign)))
	}
	if !p.IsInt64() {
		return 0, fmt.Errorf("%s × %d/%d: %w", a, num, den, ErrOverflow)
	}
	return Amount(p.Int64()), nil
}
