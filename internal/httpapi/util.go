package httpapi

import "math"

// round rounds a display ratio (never money) to n decimals.
func round(f float64, n int) float64 {
	p := math.Pow(10, float64(n))
	return math.Round(f*p) / p
}
