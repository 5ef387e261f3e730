// Package money holds exact amounts of US dollars for billing.
//
// Prices for model tokens are fractions of a cent (for example $0.0000015 per
// token), and binary floating point cannot represent such values exactly, so
// invoices computed with float64 drift by fractions of a cent that customers
// and auditors notice. Every amount here is therefore an integer count of
// pico-dollars, and all parsing and printing goes through exact decimal text.
package money

import (
	"errors"
	"math/big"
)

// Amount is an exact amount of US dollars counted in pico-dollars (1e-12 USD).
//
// An int64 of pico-dollars spans about ±9.2 million dollars, which covers any
// single invoice while staying a plain integer that databases, JSON and the
// CPU handle natively; the pico resolution is fine enough that every per-token
// price we bill is an exact integer.
type Amount int64

// Units of Amount. They are typed so that mixing a bare integer into money
// arithmetic needs an explicit conversion, which makes unit mistakes visible.
const (
	// Pico is the smallest amount this package can represent, so it is the
	// unit every other amount is an exact multiple of.
	Pico Amount = 1
	// Micro is one millionth of a dollar, the scale at which per-token
	// prices are usually quoted.
	Micro = 1_000_000 * Pico
	// Cent is the smallest amount a card payment can charge, which is why
	// Dollars rounds to it.
	Cent = 10_000_000_000 * Pico
	// Dollar is one US dollar, the unit of every textual form of Amount.
	Dollar = 1_000_000_000_000 * Pico
)

// fracDigits is the number of decimal places of a dollar that an Amount can
// hold; text with more non-zero places than this cannot be stored exactly.
const fracDigits = 12

// Sentinel errors let callers tell a malformed request (ErrInvalid) from a
// well-formed amount that cannot be held exactly (ErrPrecision) or at all
// (ErrOverflow) with errors.Is, while the wrapped message keeps the detail.
var (
	// ErrInvalid reports text or input that is not a decimal amount at all,
	// so retrying with the same input can never succeed.
	ErrInvalid = errors.New("money: invalid amount")
	// ErrPrecision reports an amount with non-zero digits below one
	// pico-dollar; rounding it silently would make billing inexact.
	ErrPrecision = errors.New("money: amount is finer than one pico-dollar")
	// ErrOverflow reports an amount or a result outside the int64
	// pico-dollar range; wrapping around would turn a charge into a credit.
	ErrOverflow = errors.New("money: amount out of range")
)

// Float64 returns the amount in dollars as the nearest float64.
//
// It exists only for display ratios and percentages (such as "budget 83%
// used"), where a rounding error is harmless. Never use it for money
// arithmetic, comparisons, storage or serialisation: float64 cannot represent
// most prices exactly, and that is the very drift this package prevents.
func (a Amount) Float64() float64 {
	// big.Rat gives the correctly rounded result without any float
	// arithmetic of our own.
	f, _ := new(big.Rat).SetFrac64(int64(a), int64(Dollar)).Float64()
	return f
}
