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
	var buf [canonicalLen]byte
	return string(a.appendText(buf[:0]))
}

// canonicalLen bounds String's text: a sign, 7 whole digits ($9,223,372 is
// the largest amount), a point and fracDigits places.
const canonicalLen = 1 + 7 + 1 + fracDigits

// appendText appends String's text to b, in integer arithmetic: every API
// answer formats several amounts per row, and going through a big decimal
// cost more than the rest of a row's encoding.
func (a Amount) appendText(b []byte) []byte {
	u := uint64(a)
	if a < 0 {
		b = append(b, '-')
		u = -u // the magnitude, also of math.MinInt64
	}
	b = strconv.AppendUint(b, u/uint64(Dollar), 10)
	frac := u % uint64(Dollar)
	if frac == 0 {
		return b
	}
	var places [fracDigits]byte
	for i := fracDigits - 1; i >= 0; i-- {
		places[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := fracDigits
	for places[n-1] == '0' {
		n--
	}
	return append(append(b, '.'), places[:n]...)
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
