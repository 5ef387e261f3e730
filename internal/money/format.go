package money

import (
	"strconv"
	"strings"

	"github.com/shopspring/decimal"
)

// Decimal returns the amount in dollars as an exact decimal, so callers that
// need decimal arithmetic (tax tables, reports) can start from a value that
// has not passed through float64.
func (a Amount) Decimal() decimal.Decimal {
	return decimal.New(int64(a), -fracDigits)
}

// String returns the exact amount in dollars as the shortest plain decimal
// text, such as "0.00155" or "29", so that logs, JSON and Parse all agree on
// one spelling and never lose a digit.
//
// It never uses exponent notation because many consumers (spreadsheets,
// humans, some JSON parsers) mishandle it.
func (a Amount) String() string {
	// StringFixed is used instead of decimal's String because the latter
	// obeys package-level switches (TrimTrailingZeros, UseScientificNotation)
	// that other code in the process might flip.
	s := a.Decimal().StringFixed(fracDigits)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// Dollars returns the amount rounded to whole cents, half away from zero, with
// thousands separators, such as "$1,234.56" or "-$0.01". It is meant for
// people reading invoices and dashboards; it is lossy, so never parse it back.
func (a Amount) Dollars() string {
	// Rounding half away from zero matches how people round by hand, so a
	// displayed total never surprises the reader by a cent.
	cents := int64(a / Cent)
	if rem := int64(a % Cent); rem >= int64(Cent)/2 {
		cents++
	} else if rem <= -int64(Cent)/2 {
		cents--
	}
	// |cents| is at most about 9.2e8, so negating it cannot overflow.
	var b strings.Builder
	if cents < 0 {
		// Amounts that round to zero print as "$0.00", never "-$0.00".
		b.WriteByte('-')
		cents = -cents
	}
	b.WriteByte('$')
	whole := strconv.FormatInt(cents/100, 10)
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	frac := cents % 100
	b.WriteByte('.')
	b.WriteByte(byte('0' + frac/10))
	b.WriteByte(byte('0' + frac%10))
	return b.String()
}
